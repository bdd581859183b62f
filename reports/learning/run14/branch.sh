#!/usr/bin/env bash
# Branch a finished recipe run: a new output root whose steps before FROM are the base run's (symlinked,
# so the pipeline counts them finished), with its own copy of the judge's cache; then run the named recipe
# from FROM there.  Usage: branch.sh BASE_ROOT NEW_ROOT FROM RECIPE [--until STEP]
set -euo pipefail
base=$1 new=$2 from=$3 recipe=$4; shift 4
steps=$(python - "$recipe" <<'PY'
import sys, yaml
print(" ".join(s["name"] for s in yaml.safe_load(open(sys.argv[1]))["stages"]))
PY
)
mkdir -p "$new"
for s in $steps; do
  [ "$s" = "$from" ] && break
  [ -e "$new/$s" ] || ln -s "$base/$s" "$new/$s"
done
[ -d "$base/judge_cache" ] && [ ! -e "$new/judge_cache" ] && cp -r "$base/judge_cache" "$new/judge_cache"
omni train pipeline "$recipe" output_root="$new" --from "$from" "$@"
