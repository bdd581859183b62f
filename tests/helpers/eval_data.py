"""Shared test data for the evaluation tests: a tiny random bundle and manifests over the mini corpus.

Both are built once per pytest session under the session's base temp directory. The fixtures ``bundle_dir``
(the bundle's directory) and ``bundle`` (it loaded) are imported into a test module::

    from tests.helpers.eval_data import bundle, bundle_dir  # noqa: F401 (fixtures)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.speech_data import mini_corpus


def eval_bundle(tmp_path_factory) -> Path:
    """A tiny random checkpoint bundle (voices flite:rms and espeak:en-us+m1)."""
    from omni.bundle import tiny_bundle

    out = tmp_path_factory.getbasetemp() / "eval_tiny_bundle"
    if not (out / "bundle.yaml").is_file():
        tiny_bundle(out, seed=0)
    return out


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    return eval_bundle(tmp_path_factory)


@pytest.fixture(scope="module")
def bundle(bundle_dir):
    from omni.bundle import load_bundle

    return load_bundle(bundle_dir)


def corpus_rows(tmp_path_factory, name: str, n: int) -> list[dict]:
    """The first ``n`` rows of a mini-corpus manifest, audio paths made absolute."""
    corpus = mini_corpus(tmp_path_factory)
    rows = []
    for line in (corpus / name).read_text().splitlines()[:n]:
        row = json.loads(line)
        if "audio" in row:
            row["audio"] = str(corpus / row["audio"])
        rows.append(row)
    return rows


def write_jsonl(path: Path, rows: list, raw_lines: list[str] = ()) -> Path:
    """Rows as JSON lines, then ``raw_lines`` as they are (bad lines for error tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(s + "\n" for s in raw_lines))
    return path
