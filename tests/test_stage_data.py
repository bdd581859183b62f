"""Stage data: per-rank sharding, mixture by ratio, epochs without gaps or repeats, buckets, packing, bad input."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from omni.data import index as index_mod
from omni.data.dataset import DataConfig, DataHealth, build_stage_data
from omni.data.formatters import DataError
from omni.data.index import SourceConfig, read_shards
from omni.data.plan import RowKey, largest_remainder
from omni.model import OmniModel
from tests.helpers.stage_data import stage_data
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return stage_data(tmp_path_factory)


@pytest.fixture(scope="module")
def model(data):
    return OmniModel.from_pretrained(data / "model")


def cfg(data, **kw) -> DataConfig:
    sources = [SourceConfig(name="asr", manifests=[str(data / "asr_train.codes.jsonl")], task="asr", ratio=0.25),
               SourceConfig(name="text", manifests=[str(data / "text_train.jsonl")], ratio=0.75)]
    return DataConfig(**{"sources": sources, "max_seq_len": 256, "shards": 2, **kw})


def keys_of(batches) -> list[list[tuple]]:
    return [[e for key in mb for e in key.examples] for mb in batches]


def test_each_process_parses_only_its_own_shard(data, model, monkeypatch):
    src = SourceConfig(name="asr", manifests=[str(data / "asr_train.codes.jsonl")] * 2)
    lines = read_shards(src, [0, 1, 2], 3)
    assert [len(v) for v in lines.values()] == [30, 29, 29]  # 88 lines dealt round-robin
    assert [r.line for r in lines[1][:3]] == [2, 5, 8]
    parsed = []
    real = index_mod.parse_row
    monkeypatch.setattr(index_mod, "parse_row", lambda text, line: parsed.append(line) or real(text, line))
    one = build_stage_data(cfg(data), model, seed=0, batch_size=4, rank=1, world=2)
    assert one.index.shards == [1] and all(j == 1 for j, _ in one.index.parts)
    assert one.index.num_rows == 22 + 30  # half of 44 asr lines and of 60 text lines
    assert set(parsed) <= {r.line for p in one.index.parts.values() for r in p.rows}


def test_where_keeps_only_the_matching_rows_and_deals_them_round_robin(data, model, tmp_path):
    rows = [json.loads(x) for x in (data / "image_qa.jsonl").read_text().splitlines()]
    rows[0]["meta"] = {"kind": "colour", "n": 1, "seen": True}
    rows[1]["meta"] = {"kind": "shape", "n": 2}
    rows[2]["meta"] = {"kind": "colour", "n": 2, "seen": False}
    manifest = tmp_path / "qa.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n", encoding="utf-8")
    colour = SourceConfig(name="c", manifests=[str(manifest)], where={"meta.kind": "colour"})
    assert [r.line for rs in read_shards(colour, [0], 1).values() for r in rs] == [1, 3, 7]  # the bad line is kept
    assert {j: [r.line for r in rs] for j, rs in read_shards(colour, [0, 1], 2).items()} == {0: [1, 7], 1: [3]}
    two = SourceConfig(name="c", manifests=[str(manifest)], where={"meta.n": "2", "meta.seen": "false"})
    assert [r.line for r in read_shards(two, [0], 1)[0]] == [3, 7]
    qa = SourceConfig(name="c", manifests=[str(manifest)], where={"task": "image_qa", "meta.kind": "shape"},
                      max_rows=1)
    assert [r.line for r in read_shards(qa, [0], 1)[0]] == [2]  # max_rows counts the kept rows
    with pytest.raises(Exception, match="where"):
        SourceConfig(name="c", manifests=[str(manifest)], where={"meta..kind": "x"})
    # a misspelt value keeps nothing: a clear error with the values the field takes, not a silently empty source
    clean = tmp_path / "clean.jsonl"
    clean.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    typo = SourceConfig(name="qa_color", manifests=[str(clean)], where={"meta.kind": "color"})
    with pytest.raises(DataError, match=r"qa_color.*matches none of the \d+ lines.*meta.kind takes .*colour, shape\)"):
        read_shards(typo, [0], 1)


def test_mixture_follows_the_ratios_and_epochs_never_skip_or_repeat(data, model):
    sd = build_stage_data(cfg(data, epoch_size=80, shards=1, packing=False, bucket_seconds=0), model, 0, 4, 0, 1)
    plan = sd.plan
    epochs = [Counter((i, item) for (_, i, item), in plan.epoch_rows(0, e)) for e in range(4)]
    for ep in epochs:
        assert sum(c for (i, _), c in ep.items() if i == 0) == 20 and sum(ep.values()) == 80  # 0.25 / 0.75 of 80
    # asr (44 examples, 20 a epoch) is read in shuffled passes: the first 40 draws are distinct, and by the 60th
    # every example has come once
    first_two = [item for e in (0, 1) for (_, i, item), in plan.epoch_rows(0, e) if i == 0]
    three = [item for e in (0, 1, 2) for (_, i, item), in plan.epoch_rows(0, e) if i == 0]
    assert len(set(first_two)) == 40 and sorted(set(three)) == list(range(44))
    again = build_stage_data(cfg(data, epoch_size=80, shards=1, packing=False, bucket_seconds=0), model, 0, 4, 0, 1)
    assert again.plan.epoch_rows(0, 2) == plan.epoch_rows(0, 2)  # deterministic for a seed
    other = build_stage_data(cfg(data, epoch_size=80, shards=1, packing=False, bucket_seconds=0), model, 1, 4, 0, 1)
    assert other.plan.epoch_rows(0, 0) != plan.epoch_rows(0, 0)
    assert largest_remainder(np.array([0.2, 0.4, 0.4]), 7).tolist() == [1, 3, 3]


def test_one_process_with_two_shards_reads_what_two_processes_read(data, model):
    both = build_stage_data(cfg(data), model, 0, 8, rank=0, world=1).plan
    ranks = [build_stage_data(cfg(data), model, 0, 8, rank=r, world=2).plan for r in range(2)]
    single = keys_of(both.micro_batches(0, 6, 0, 1, 2))
    split = [keys_of(p.micro_batches(0, 6, r, 2, 1)) for r, p in enumerate(ranks)]
    for step in range(6):
        global_one = sorted(single[2 * step] + single[2 * step + 1])
        global_two = sorted(split[0][step] + split[1][step])
        assert global_one == global_two and len(global_one) >= 8  # 8 packed rows
    # resuming at step 4 replays exactly the tail
    assert keys_of(both.micro_batches(4, 6, 0, 1, 2)) == single[8:]
    pos = both.position(5)  # the data position a checkpoint at step 5 stores
    assert (pos["step"], pos["rows_per_shard"], pos["num_shards"]) == (5, 20, 2)
    for j, where in pos["shards"].items():
        before = sum(len(both.epoch_rows(int(j), e)) for e in range(where["epoch"]))
        assert before + where["row"] == 20 and where["row"] < len(both.epoch_rows(int(j), where["epoch"]))
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        build_stage_data(cfg(data, shards=3), model, 0, 6, rank=0, world=2)


def test_packing_fills_rows_and_crosses_epochs_without_loss(data, model):
    c = cfg(data, max_seq_len=200, shards=1)
    c.sources[0].ratio, c.sources[1].ratio = 44, 60  # the natural ratio: an epoch is one pass of each source
    sd = build_stage_data(c, model, 0, 2, 0, 1)
    plan, parts = sd.plan, sd.index.parts
    rows0, rows1 = plan.epoch_rows(0, 0), plan.epoch_rows(0, 1)
    for row in rows0 + rows1:
        assert sum(int(parts[(0, i)].lengths[item]) for _, i, item in row) <= 200
    assert sorted(e for r in rows0 for e in r) == sorted(set(e for r in rows0 for e in r))  # no repeat in an epoch
    assert len([e for r in rows0 for e in r]) == sd.index.num_examples
    tokens = sum(int(parts[(0, i)].lengths[item]) for r in rows0 for _, i, item in r)
    assert tokens / (len(rows0) * 200) > 0.9
    stream = plan.shard_rows(0, 0, len(rows0) + 3)
    assert stream == rows0 + rows1[:3]  # step boundaries cross epochs without dropping or repeating


def test_duration_buckets_group_each_steps_rows(data, model):
    c = cfg(data, packing=False, bucket_seconds=1.0, max_seconds=30.0, shards=1)
    c.sources[1].ratio = 0.0  # speech only, 1 s bins
    sd = build_stage_data(c, model, 0, 4, 0, 1)
    rows = sd.plan.epoch_rows(0, 0)
    seconds = [sd.index.parts[(0, i)].seconds[item] for (_, i, item), in rows]
    full = len(rows) // 4 * 4
    mixed = [k for k in range(0, full, 4) if len({int(s // 1.0) for s in seconds[k:k + 4]}) > 1]
    assert len(mixed) <= 4  # only chunks made of the buckets' leftovers mix bins
    unbucketed = cfg(data, packing=False, bucket_seconds=0.0, shards=1)
    unbucketed.sources[1].ratio = 0.0
    rows = build_stage_data(unbucketed, model, 0, 4, 0, 1).plan.epoch_rows(0, 0)
    secs = [sd.index.parts[(0, i)].seconds[item] for (_, i, item), in rows]
    assert len([k for k in range(0, full, 4) if len({int(s) for s in secs[k:k + 4]}) > 1]) > len(mixed)


def write_bad_manifest(data: Path, out: Path) -> Path:
    lines = (data / "asr_train.codes.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines]
    bad = [
        "{not json",
        json.dumps({k: v for k, v in rows[1].items() if k != "codes"}),  # audio never tokenized
        json.dumps({**rows[2], "codes": {**rows[2]["codes"], "key": "missing"}}),
        json.dumps({**rows[3], "codes": {"path": "codes/none.safetensors", "key": "x"}}),
    ]
    out.mkdir(parents=True, exist_ok=True)
    codes_dir = data / "codes"
    shutil.copytree(codes_dir, out / "codes", dirs_exist_ok=True)
    manifest = out / "asr.codes.jsonl"
    manifest.write_text("\n".join(bad + lines[4:]) + "\n")
    return manifest


def test_bad_lines_are_skipped_logged_and_counted(data, model, tmp_path, caplog):
    manifest = write_bad_manifest(data, tmp_path)
    c = DataConfig(sources=[SourceConfig(name="asr", manifests=[str(manifest)], task="asr")], max_seq_len=256,
                   max_bad_fraction=0.2)
    with caplog.at_level(logging.WARNING, logger="omni.data"):
        sd = build_stage_data(c, model, 0, 4, 0, 1)
    st = sd.index.stats[0]
    assert (st.rows, st.bad, st.examples) == (44, 4, 40)
    problems = [i.problem for i in sd.index.issues]
    assert "invalid JSON" in problems[0] and "no cached codes" in problems[1]
    assert "missing" in problems[2] and "codes shard not found" in problems[3]
    assert sum("skipping" in r.message for r in caplog.records) == 4
    with pytest.raises(DataError, match=r"source 'asr': 4 of 44 lines \(9%\) could not be used.*max_bad_fraction"):
        build_stage_data(DataConfig(sources=c.sources, max_seq_len=256, max_bad_fraction=0.05), model, 0, 4, 0, 1)


def test_examples_that_fail_during_training_are_skipped_until_too_many(data, model, tmp_path, caplog):
    manifest = write_bad_manifest(data, tmp_path)
    c = DataConfig(sources=[SourceConfig(name="asr", manifests=[str(manifest)], task="asr")], max_seq_len=256,
                   max_bad_fraction=0.2, packing=False)
    sd = build_stage_data(c, model, 0, 4, 0, 1)
    for shard in (tmp_path / "codes").rglob("*.safetensors"):
        shard.write_bytes(b"corrupted after indexing")  # the data breaks while training runs
    with caplog.at_level(logging.WARNING, logger="omni.data"):
        row = sd.dataset[RowKey(0, ((0, 0, 0),))]
    assert row.examples == [] and len(row.failed) == 1 and "cannot read codes" in row.failed[0]
    assert any("skipping example asr.codes.jsonl:5" in r.message for r in caplog.records)
    batch = sd.collate([row])
    assert batch.model.num_target_tokens == 0  # the step goes on without it
    health = DataHealth(total_rows=44, bad_at_index=4, max_fraction=0.2)
    health.update(batch.failed)
    health.update(batch.failed)  # the same example failing again counts once
    assert len(health.failed) == 1
    with pytest.raises(DataError, match=r"9 of 44 lines .* failed to load, more than data.max_bad_fraction = 0.2"):
        for k in range(1, 8):
            health.update(sd.dataset[RowKey(0, ((0, 0, k),))].failed)
