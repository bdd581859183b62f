"""Packing and bucketing: packed loss = sum of separate losses, no cross-example attention, layouts, bin packing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from omni.data.batching import (
    LoadedRow,
    bucketed_order,
    collate_rows,
    duration_buckets,
    pack_lengths,
)
from omni.data.dataset import TASK_NAMES, build_stage_data
from omni.data.plan import RowKey
from omni.model import OmniExample, OmniModel
from omni.model.batch import IGNORE
from omni.training.stage_task import stage_loss
from tests.helpers.stage_data import stage_data
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return stage_data(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(data):
    """One example of every task family of the tiny data (speech in/out, images, documents, text), loaded."""
    from omni.config import load_config
    from omni.training.stage import StageConfig
    from tests.helpers.stage_data import stage_overrides

    model = OmniModel.from_pretrained(data / "model")
    cfg = load_config(Path(__file__).parents[1] / "configs/stages/audio_pretrain_2.yaml", StageConfig,
                      overrides=stage_overrides(data, data / "unused"))
    sd = build_stage_data(cfg.data, model, seed=0, batch_size=4, rank=0, world=1)
    keys = [(0, i, item) for i in range(len(cfg.data.sources)) for item in (0, 1)]
    rows = [sd.dataset[RowKey(0, (k,))] for k in keys]
    assert all(r.examples and not r.failed for r in rows)
    return model, rows


def example_losses(model, rows, packed):
    """Per-example summed loss (text + audio) of one batch, read back through example_index / frame_example."""
    batch = collate_rows(rows, model.token_ids.pad, packed=packed, num_codebooks=model.cfg.num_codebooks)
    with torch.no_grad():
        out = model(batch.model, return_loss=False)
    from omni.model.losses import audio_frame_logprobs, text_token_logprobs

    nll = -text_token_logprobs(out.text_logits, batch.model.labels)  # (B, T)
    n = len(batch.ids)
    per = torch.zeros(n, dtype=nll.dtype).index_add(0, batch.example_index[batch.example_index >= 0],
                                                   nll[batch.example_index >= 0])
    codes = batch.model.audio_codes[batch.model.audio_target]
    frames = -audio_frame_logprobs(out.audio_logits, codes).sum(-1)
    per = per.index_add(0, batch.frame_example[batch.model.audio_target], frames.to(per.dtype))
    total = stage_loss(out, batch, len(TASK_NAMES)).total
    return per, float(total), batch


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_packed_loss_equals_the_sum_of_separate_losses(loaded, dtype):
    model, rows = loaded
    model = model.to(dtype)
    alone = torch.cat([example_losses(model, [r], packed=False)[0] for r in rows])  # one example per forward
    packs = [LoadedRow(0, [e for r in group for e in r.examples], [t for r in group for t in r.tasks],
                       [i for r in group for i in r.ids]) for group in (rows[:5], rows[5:9], rows[9:])]
    per, total, batch = example_losses(model, packs, packed=True)
    assert batch.model.attention_mask is None and batch.model.input_ids.shape[0] == 3
    assert len(set(TASK_NAMES[t] for t in batch.example_task.tolist())) >= 5  # speech, images, documents, text
    tol = 1e-9 if dtype == torch.float64 else 1e-5  # per example (the losses are float32 sums in both cases)
    torch.testing.assert_close(per, alone, rtol=tol, atol=tol)
    # the batch total (a float32 sum over ~1000 terms in another order) and a padded batch of the same examples
    _, padded_total, _ = example_losses(model, rows, packed=False)
    for value in (total, padded_total):
        assert value == pytest.approx(float(alone.double().sum()), rel=1e-6)
    model.float()


def test_packed_examples_do_not_attend_to_each_other(loaded):
    model, rows = loaded
    model = model.double()
    a, b = rows[0].examples[0], rows[4].examples[0]
    with torch.no_grad():
        alone = model(collate_rows([rows[4]], model.token_ids.pad, False, 8).model, return_loss=False).hidden_states
        for first in (rows[0], rows[2]):  # whatever precedes b in the row, b's states are the same
            pack = LoadedRow(0, [first.examples[0], b], [0, 0], ["x", "y"])
            batch = collate_rows([pack], model.token_ids.pad, True, 8)
            hidden = model(batch.model, return_loss=False).hidden_states  # (1, T, D)
            start = len(first.examples[0])
            torch.testing.assert_close(hidden[0, start:start + len(b)], alone[0, :len(b)], rtol=1e-10, atol=1e-10)
    assert len(a) > 0
    model.float()


def test_collate_layouts_match_the_docstring():
    def ex(ids, targets):
        ids = torch.tensor(ids)
        labels = torch.where(torch.tensor(targets, dtype=torch.bool), ids, torch.full_like(ids, IGNORE))
        return OmniExample(ids, labels, torch.zeros(0, 8, dtype=torch.long), torch.zeros(0, dtype=torch.bool))

    a, b, c = ex([5, 6, 3], [0, 1, 1]), ex([8, 3], [0, 1]), ex([9, 9, 9, 3], [0, 1, 1, 1])
    packed = collate_rows([LoadedRow(0, [a, b], [0, 1], ["a", "b"]), LoadedRow(0, [c], [2], ["c"])], pad_id=0,
                          packed=True, num_codebooks=8, pad_to_multiple_of=6)
    assert packed.model.input_ids.tolist() == [[5, 6, 3, 8, 3, 0], [9, 9, 9, 3, 0, 0]]
    assert packed.model.position_ids.tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 1]]
    assert packed.model.labels.tolist() == [[-100, 6, 3, -100, 3, -100], [-100, 9, 9, 3, -100, -100]]
    assert packed.example_index.tolist() == [[0, 0, 0, 1, 1, -1], [2, 2, 2, 2, -1, -1]]
    assert packed.example_task.tolist() == [0, 1, 2] and packed.num_tokens == 9 and packed.num_positions == 12
    padded = collate_rows([LoadedRow(0, [a], [0], ["a"]), LoadedRow(0, [c], [2], ["c"])], pad_id=0, packed=False,
                          num_codebooks=8, pad_to_multiple_of=1)
    assert padded.model.attention_mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert padded.example_index.tolist() == [[0, 0, 0, -1], [1, 1, 1, 1]]
    # a micro-batch whose examples all failed: one padding row, no targets, the failures reported
    empty = collate_rows([LoadedRow(3, [], [], [], failed=["m.jsonl:4: bad"])], 0, True, 8)
    assert empty.model.num_target_tokens == 0 and empty.failed == ["m.jsonl:4: bad"] and empty.step == 3


def test_best_fit_decreasing_packs_tightly_and_keeps_every_example():
    rng = np.random.default_rng(0)
    lengths = rng.integers(16, 512, size=400)
    rows = pack_lengths(lengths, 1024)
    assert sorted(i for r in rows for i in r) == list(range(400))
    assert all(lengths[r].sum() <= 1024 for r in rows)
    assert lengths.sum() / (len(rows) * 1024) > 0.95
    assert pack_lengths([3, 3, 4], 6) == [[2], [0, 1]]  # hand-worked: 4 opens a row, 3 does not fit next to it
    with pytest.raises(ValueError, match="does not fit"):
        pack_lengths([7], 6)


def test_duration_buckets_are_5_second_bins_over_0_to_30():
    sec = np.array([0.0, 4.99, 5.0, 12.0, 29.9, 31.0, 300.0])
    assert duration_buckets(sec).tolist() == [0, 0, 1, 2, 5, 5, 5]
    buckets = np.array([0, 1, 0, 1, 0, 1, 2])
    order = bucketed_order(range(7), buckets, chunk=2, rng=np.random.default_rng(0))
    assert sorted(order) == list(range(7))
    chunks = [order[k:k + 2] for k in range(0, 4, 2)]  # full chunks share a bucket
    assert all(len({int(buckets[i]) for i in c}) == 1 for c in chunks)
