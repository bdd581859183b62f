"""Hostile lines in the staged-training data (hypothesis): code-cached manifests through the stage data set.

Every line must end as an indexed example that loads, as a counted skip at indexing (a ``DataIssue`` naming
the manifest, the line and the problem) or, for what only the full read can see (codes outside the codebooks),
as a counted failure at load time that the loop's ``DataHealth`` tallies: no other exception, no hang, and
lines that were valid are never lost.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from omni.data.dataset import DataConfig, build_stage_data
from omni.data.index import SourceConfig
from omni.data.plan import RowKey
from omni.model import OmniModel
from tests.helpers.stage_data import stage_data
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)
from tests.test_fuzz_data import alarm

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MAX_SEQ_LEN = 256
OUTCOMES: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    print("\nstage data fuzz outcomes:", json.dumps(dict(sorted(OUTCOMES.items())), indent=1))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny code-cached corpus and model, good lines to mutate, and hostile code shards beside them."""
    data = stage_data(tmp_path_factory)
    model = OmniModel.from_pretrained(data / "model").eval()
    good = {stem: [json.loads(x) for x in (data / f"{stem}.codes.jsonl").read_text().splitlines()[:8]]
            for stem in ("asr_train", "spoken_chat_train", "tts_train")}
    shards = data / "fuzz_shards"
    shards.mkdir(exist_ok=True)
    k = model.cfg.num_codebooks
    size = min(model.cfg.codebook_sizes)
    save_file({"x": torch.full((20, k), size + 3, dtype=torch.int16)}, str(shards / "out_of_range.safetensors"))
    save_file({"x": torch.zeros(20, 3, dtype=torch.int16)}, str(shards / "wrong_k.safetensors"))
    save_file({"x": torch.zeros(20, k, dtype=torch.float32)}, str(shards / "float.safetensors"))
    save_file({"x": torch.zeros(5000, k, dtype=torch.int16)}, str(shards / "too_long.safetensors"))
    save_file({"x": torch.zeros(0, k, dtype=torch.int16)}, str(shards / "empty.safetensors"))
    (shards / "corrupt.safetensors").write_bytes(os.urandom(64))
    return data, model, good


HOSTILE_REFS = [{"path": "fuzz_shards/out_of_range.safetensors", "key": "x"},
                {"path": "fuzz_shards/wrong_k.safetensors", "key": "x"},
                {"path": "fuzz_shards/float.safetensors", "key": "x"},
                {"path": "fuzz_shards/too_long.safetensors", "key": "x"},
                {"path": "fuzz_shards/empty.safetensors", "key": "x"},
                {"path": "fuzz_shards/corrupt.safetensors", "key": "x"},
                {"path": "fuzz_shards/missing.safetensors", "key": "x"},
                {"path": "fuzz_shards/wrong_k.safetensors", "key": "no-such-key"},
                {"path": "../../../etc/passwd", "key": "x"}, {"path": "", "key": ""}, {"path": 3}, "codes", None, 7]


@st.composite
def hostile_line(draw, good: dict) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["valid", "bytes", "non_utf8", "codes_ref", "field_types", "turns", "task"]))
    stem = draw(st.sampled_from(sorted(good)))
    row = json.loads(json.dumps(draw(st.sampled_from(good[stem]))))
    if kind == "bytes":
        return kind, draw(st.binary(max_size=120)).replace(b"\n", b" ").replace(b"\r", b" ")
    if kind == "non_utf8":
        return kind, json.dumps(row).encode()[:-2] + b"\xff\xfe\"}"
    holder = row["conversation"][draw(st.integers(0, len(row["conversation"]) - 1))] if "conversation" in row else row
    if kind == "codes_ref":
        holder["codes"] = draw(st.sampled_from(HOSTILE_REFS))
    elif kind == "field_types":
        field = draw(st.sampled_from(["text", "audio", "duration", "id", "language"]))
        holder[field] = draw(st.none() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
                             | st.lists(st.integers(), max_size=2))
    elif kind == "turns" and "conversation" in row:
        op = draw(st.sampled_from(["empty", "role", "drop_text", "not_a_list"]))
        if op == "empty":
            row["conversation"] = []
        elif op == "role":
            holder["role"] = draw(st.sampled_from(["robot", "", "system", 3]))
        elif op == "drop_text":
            for t in row["conversation"]:
                t.pop("text", None)
                t.pop("audio", None)
        else:
            row["conversation"] = "hello"
    elif kind == "task":
        row["task"] = draw(st.sampled_from(["nope", "", "preference", "kto", 5]))
    return kind, json.dumps(row).encode()


@FUZZ
@given(data=st.data())
def test_hostile_stage_lines_are_indexed_skipped_or_counted_at_load(setup, data):
    root, model, good = setup
    # the last line is always valid: a manifest with no usable line is refused as a whole (a clear DataError)
    lines = [*data.draw(st.lists(hostile_line(good), min_size=1, max_size=10)),
             ("valid", json.dumps(good["asr_train"][0]).encode())]
    manifest = root / "fuzz.codes.jsonl"
    manifest.write_bytes(b"\n".join(raw for _, raw in lines) + b"\n")
    cfg = DataConfig(sources=[SourceConfig(name="fuzz", manifests=[str(manifest)])], max_seq_len=MAX_SEQ_LEN,
                     max_bad_fraction=1.0, shards=1)
    with alarm(60):
        built = build_stage_data(cfg, model, seed=0, batch_size=2, rank=0, world=1, warn=lambda s: None)
    index, stats = built.index, built.index.stats[0]
    nonblank = sum(1 for _, raw in lines if raw.strip())
    assert stats.rows == nonblank and stats.examples + stats.bad + stats.too_long == stats.rows
    skipped = {i.line for i in index.issues}
    assert len(skipped) == stats.bad
    assert all(i.manifest == str(manifest) and 1 <= i.line <= len(lines) and i.problem for i in index.issues)
    part = index.parts[(0, 0)]
    indexed = {part.rows[g[0]].line for g in part.items}
    for n, (kind, _raw) in enumerate(lines, start=1):
        if kind == "valid":
            assert n in indexed, f"line {n} was valid but not indexed"
    # every indexed example loads, or fails with a reason the loop counts (never another exception)
    with alarm(60):
        loaded = built.dataset[RowKey(0, tuple((0, 0, i) for i in range(len(part.items))))]
    assert len(loaded.examples) + len(loaded.failed) == len(part.items)
    for failure in loaded.failed:
        assert failure.startswith(f"{manifest.name}:") and "codes outside the codebooks" in failure
    sizes = torch.tensor(model.cfg.codebook_sizes)
    for ex in loaded.examples:
        assert len(ex) <= MAX_SEQ_LEN and bool((ex.audio_codes.reshape(-1, len(sizes)) < sizes).all())
    problems = {i.line: i.problem for i in index.issues}
    failed_lines = {int(f.split(":")[1].split("+")[0]) for f in loaded.failed}
    for n, (kind, _raw) in enumerate(lines, start=1):
        outcome = ("blank" if not _raw.strip() else "load failure" if n in failed_lines else "indexed" if n in indexed else
                   "skipped: " + problems[n].split(":")[-1].strip()[:32] if n in problems else "too long")
        OUTCOMES[f"{kind} -> {outcome}"] += 1
    built.health.update(loaded.failed)  # max_bad_fraction 1.0: counted, never fatal
    assert len(built.health.failed) == len(loaded.failed)


def test_each_hostile_codes_reference_is_skipped_counted_or_refused_at_load(setup):
    """The hostile code references one by one on an ASR line, then a good line: only the good line trains; the
    out-of-range codes (visible only to the full read) fail at load, the 5000-frame codes are too long, every
    other reference is a skip at indexing that names the problem."""
    root, model, good = setup
    manifest = root / "fuzz_refs.codes.jsonl"
    rows = [dict(good["asr_train"][0], id=f"r{i}", codes=ref) for i, ref in enumerate(HOSTILE_REFS)]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in [*rows, good["asr_train"][1]]))
    cfg = DataConfig(sources=[SourceConfig(name="refs", manifests=[str(manifest)])], max_seq_len=MAX_SEQ_LEN,
                     max_bad_fraction=1.0, shards=1)
    built = build_stage_data(cfg, model, seed=0, batch_size=2, rank=0, world=1, warn=lambda s: None)
    stats, part = built.index.stats[0], built.index.parts[(0, 0)]
    loaded = built.dataset[RowKey(0, tuple((0, 0, i) for i in range(len(part.items))))]
    problems = {i.line: i.problem for i in built.index.issues}
    line = {name: HOSTILE_REFS.index(ref) + 1 for name, ref in zip(
        ("out_of_range", "wrong_k", "float", "too_long", "empty", "corrupt", "missing"), HOSTILE_REFS)}
    assert loaded.ids == [f"{manifest.name}:{len(HOSTILE_REFS) + 1}"]  # only the good line
    assert stats.too_long == 1 and loaded.failed == [f"{manifest.name}:{line['out_of_range']}: row 'r0' audio: "
                                                     "codes outside the codebooks [64, 48, 32, 32, 16, 16, 16, 16] "
                                                     "(cached with another audio tokenizer?)"]
    assert sorted(problems) == [n for n in range(1, len(HOSTILE_REFS) + 1)
                                if n not in (line["out_of_range"], line["too_long"])]
    assert "shape (20, 3)" in problems[line["wrong_k"]] and "not integer codes" in problems[line["float"]]
    assert "empty codes" in problems[line["empty"]] and "shard not found" in problems[line["missing"]]
    assert "header" in problems[line["corrupt"]] and "leaves the manifest's directory" in problems[9]
