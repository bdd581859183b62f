"""Word error rate by voice family and voice of one or more `omni eval asr` / codes-gate results.jsonl files.
usage: python reports/learning/run18/by_voice.py RESULTS.jsonl [RESULTS.jsonl ...]"""
import collections
import json
import sys


def rates(path: str) -> dict[str, tuple[int, float]]:
    """Return {group: (reference words, WER)} with 'espeak' and 'flite' families and 'all' added."""
    errors, words = collections.Counter(), collections.Counter()
    for line in open(path):
        row = json.loads(line)
        if row.get("status", "ok") != "ok":
            continue
        w = row["words"]
        for group in (row["group"], row["group"].split(":")[0] + " (all)", "all"):
            errors[group] += w["substitutions"] + w["deletions"] + w["insertions"]
            words[group] += w["reference_length"]
    return {g: (words[g], errors[g] / words[g]) for g in sorted(words)}


if __name__ == "__main__":
    tables = [rates(p) for p in sys.argv[1:]]
    groups = sorted(set().union(*tables), key=lambda g: (g != "all", "(all)" not in g, g))
    print("group".ljust(30) + "".join(f"{i:>16}" for i in range(len(tables))))
    for g in groups:
        cells = [f"{t[g][0]:>6} {100 * t[g][1]:>7.1f}%" if g in t else " " * 16 for t in tables]
        print(g.ljust(30) + "".join(f"{c:>16}" for c in cells))
