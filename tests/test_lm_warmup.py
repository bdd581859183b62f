"""Text-LM warm-up: padded layout, loss falls, saved model and tokenizer load with from_pretrained, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from transformers import AutoModelForCausalLM, AutoTokenizer

from omni.config import ConfigError, from_data
from omni.data.manifest import ManifestRow, write_manifest
from omni.text.lm import LMTask, LMTrainConfig, TextDataset, build_lm, collate_text, train_lm
from omni.text.tokenizer import train_bpe_tokenizer
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.speech_data import one_thread  # noqa: F401 (fixture: run on one thread)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lm_text")
    sentences = [f"turn {w} the {r} lights." for w in ("on", "off") for r in ("kitchen", "bedroom", "garden")]
    sentences += [f"what is {a} plus {b}?" for a in ("one", "two", "three") for b in ("four", "five")]
    write_manifest(root / "train.jsonl", [ManifestRow(id=f"t{i}", task="text", text=s) for i, s in enumerate(sentences * 3)])
    write_manifest(root / "dev.jsonl", [ManifestRow(id="d0", task="text", text="turn on the garden lights.")])
    return root / "train.jsonl", root / "dev.jsonl"


def config(manifests, out: Path, **loop) -> LMTrainConfig:
    return from_data(LMTrainConfig, {
        "train_manifests": [str(manifests[0])], "dev_manifests": [str(manifests[1])], "vocab_size": 300,
        "bpe_min_frequency": 1, "model": {"hidden_size": 32, "layers": 1, "heads": 4, "kv_heads": 2, "intermediate_size": 64},
        "optim": {"lr": 1e-2, "warmup_steps": 2},
        "loop": {"output_dir": str(out), "max_steps": 30, "batch_size": 8, "log_every": 5, "save_every": 10,
                 "eval_every": 0, "progress": False, **loop},
    })


def test_collate_layout_matches_the_docstring():
    batch = collate_text([[0, 5, 6, 0], [0, 7, 0]], pad_id=0)
    assert batch.input_ids.tolist() == [[0, 5, 6, 0], [0, 7, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch.labels.tolist() == [[0, 5, 6, 0], [0, 7, 0, -100]]


def test_first_backward_of_a_deep_lm_has_finite_bounded_gradients():
    """Issue 19: the end-of-text id that starts every text is also the pad id; given to Qwen2 as pad_token_id it
    became the embedding's padding_idx (a zero row that never trains), so position 0 stayed exactly zero in
    every layer and each RMSNorm scaled its gradient by 1/sqrt(eps) = 1000. Before the fix this 32 x 64 model
    had NaN in 49 of 387 gradient tensors (29 layers: 13; 28: none, max 3e37); 2 layers x 1024 had max |grad|
    ~1e3 (all in layer 0's v_proj.bias); after it, max |grad| is ~0.5 at any depth."""
    torch.manual_seed(0)
    sentences = ["turn on the kitchen lights.", "what is two plus three?", "set a timer.", "play some music."]
    tok = train_bpe_tokenizer(sentences * 3, vocab_size=300, min_frequency=1)
    cfg = from_data(LMTrainConfig, {"train_manifests": ["unused"], "loop": {"output_dir": "unused"}, "model": {
        "hidden_size": 64, "layers": 32, "heads": 4, "kv_heads": 2, "intermediate_size": 192}})
    model = build_lm(cfg, tok)
    data = TextDataset(sentences, tok, cfg.max_tokens)
    batch = collate_text([data[i] for i in range(len(data))], tok.pad_token_id)  # right-padded
    task = LMTask()
    (task.compute_loss(model, batch, "main").loss / task.batch_weight(batch)).backward()  # the trainer's scaling
    grads = dict(model.named_parameters())
    assert [n for n, p in grads.items() if not torch.isfinite(p.grad).all()] == []
    worst = max(grads.items(), key=lambda item: float(item[1].grad.abs().max()))
    assert float(worst[1].grad.abs().max()) < 2.0, (worst[0], float(worst[1].grad.abs().max()))
    # the end-of-text embedding is an ordinary trained row, not a frozen zero
    embed = model.get_input_embeddings()
    assert embed.padding_idx is None
    assert float(embed.weight.detach()[tok.eos_token_id].norm()) > 0 and float(embed.weight.grad[tok.eos_token_id].norm()) > 0


def test_trains_saves_and_loads_with_from_pretrained(manifests, tmp_path):
    from omni.training.checkpoint import run_complete

    assert not run_complete(tmp_path / "lm")
    run = train_lm(config(manifests, tmp_path / "lm"))
    assert run.result.complete and run.model_dir == tmp_path / "lm" / "model" and run_complete(tmp_path / "lm")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((tmp_path / "lm" / "tensorboard").rglob("events*"))))
    events.Reload()
    losses = [e.value for e in events.Scalars("loss")]
    assert losses[-1] < 0.5 * losses[0]
    assert run.result.last_metrics["eval/perplexity"] < 10.0  # vs ~300 (the vocabulary) untrained
    model = AutoModelForCausalLM.from_pretrained(str(run.model_dir), local_files_only=True)
    tok = AutoTokenizer.from_pretrained(str(run.model_dir), local_files_only=True)
    ids = tok("turn on the", add_special_tokens=False)["input_ids"]
    prompt = torch.tensor([[tok.eos_token_id] + ids])
    out = model.generate(prompt, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert tok.decode(out[0, prompt.shape[1]:]).strip()[:3] in {"kit", "bed", "gar"}  # a room comes next
    # a finished run is not trained again and keeps its export
    AcceleratorState._reset_state(reset_partial_state=True)
    stamp = (run.model_dir / "model.safetensors").stat().st_mtime_ns
    again = train_lm(config(manifests, tmp_path / "lm"))
    assert again.result.complete and (again.model_dir / "model.safetensors").stat().st_mtime_ns == stamp


def test_config_errors_name_the_field(manifests, tmp_path):
    with pytest.raises(ConfigError, match="kv_heads"):
        from_data(LMTrainConfig, {"train_manifests": ["x"], "loop": {"output_dir": "o"}, "model": {"kv_heads": 3}})
    cfg = config(manifests, tmp_path / "x")
    cfg.init_from = str(tmp_path / "qwen2.5-0.5b")
    with pytest.raises(FileNotFoundError, match="tokenizer directory not found"):
        train_lm(cfg)


@pytest.mark.parametrize("is_main", [True, False])
@pytest.mark.parametrize("exists", [True, False])
def test_every_rank_meets_the_tokenizer_barrier_once(manifests, tmp_path, monkeypatch, is_main, exists):
    """Whatever a rank sees on disk (the main process may already have written the BPE when a slow rank
    looks), it calls the barrier exactly once; a rank skipping it deadlocked the 2-process pipeline test."""
    import accelerate

    from omni.text import lm

    calls = []
    monkeypatch.setattr(accelerate, "PartialState", lambda: type("S", (), {"wait_for_everyone": lambda s: calls.append(1)})())
    cfg = config(manifests, tmp_path)
    texts = ["turn on the lights", "what time is it", "set an alarm"] * 20
    if exists or not is_main:  # a non-main rank only ever reads a tokenizer the main process wrote
        lm.lm_tokenizer(cfg, texts, tmp_path, is_main=True)
        calls.clear()
    tok = lm.lm_tokenizer(cfg, texts, tmp_path, is_main=is_main)
    assert calls == [1] and len(tok) > 256
