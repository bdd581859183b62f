"""Text-LM warm-up (``omni train lm CONFIG``): a causal LM trained on manifest text, saved for ``from_pretrained``.

Tiny recipes have no pretrained LLM on disk, so this builds one: a small Qwen2
(``transformers``) from the config below, with a byte-level BPE tokenizer
trained on the corpus text (:mod:`omni.text.tokenizer`), trained with the
shared loop on every text of the manifests. It can also continue training a
local pretrained causal LM (``init_from``), with that model's own tokenizer.

The result, ``<output_dir>/model``, loads anywhere with
``AutoModelForCausalLM.from_pretrained(dir)`` and ``AutoTokenizer.from_pretrained(dir)``;
the audio tokenizer's transcription objective uses it as its frozen LM, and the
staged-training recipes use it as the "text LM warm-up" stage.

Each text is one sequence ``<eos> t_1 ... t_n <eos>``: the leading end-of-text
token starts the document, so every real token and the final end-of-text are
predicted (loss units = predicted tokens).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from omni.config import check, option
from omni.integrity import verify_checksums, write_checksums
from omni.text.losses import token_nll
from omni.training.config import LoopConfig, OptimConfig
from omni.training.trainer import StepOutput, TrainContext, TrainResult

MODEL_DIR = "model"
TOKENIZER_DIR = "text_tokenizer"


@dataclass
class TinyLMConfig:
    """A small Qwen2 built from scratch (ignored with ``init_from``)."""

    hidden_size: int = option(128, help="Hidden size.")
    layers: int = option(2, help="Decoder layers.")
    heads: int = option(4, help="Attention heads; must divide hidden_size.")
    kv_heads: int = option(2, help="Key/value heads (grouped-query attention); must divide heads.")
    intermediate_size: int = option(384, help="MLP size.")
    max_position_embeddings: int = option(2048, help="Longest sequence (tokens), audio frames included when it reads audio.")
    rope_theta: float = option(10000.0, help="Rotary embedding base.")
    tie_word_embeddings: bool = option(False, help="Share the input embedding and the output layer.")

    def __post_init__(self) -> None:
        for name in ("hidden_size", "layers", "heads", "kv_heads", "intermediate_size", "max_position_embeddings"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(self.hidden_size % self.heads == 0, "heads", f"must divide hidden_size ({self.hidden_size})")
        check(self.heads % self.kv_heads == 0, "kv_heads", f"must divide heads ({self.heads})")
        check(self.rope_theta > 0, "rope_theta", "must be > 0")


@dataclass
class LMTrainConfig:
    """``omni train lm``: which model, which text, how long."""

    train_manifests: list[str] = option(help="Manifests whose text (transcripts, turns, segments, answers) trains the LM.")
    loop: LoopConfig = option(help="Steps, batch (texts), checkpoints, logging; the LM is saved to output_dir/model.")
    dev_manifests: list[str] = option(default_factory=list, help="Manifests whose text measures dev perplexity.")
    init_from: str | None = option(
        None, help="Local directory of a pretrained causal LM (and its tokenizer) to continue training; null builds "
        "the tiny Qwen2 below. Checked when training starts, never downloaded.")
    tokenizer_path: str | None = option(
        None, help="Local tokenizer directory to use; null trains a byte-level BPE on the training text (or uses "
        "init_from's tokenizer).")
    vocab_size: int = option(1024, help="Vocabulary of the BPE trained on the corpus text (bytes and specials included).")
    bpe_min_frequency: int = option(2, help="BPE never merges pairs seen fewer times.")
    model: TinyLMConfig = option(default_factory=TinyLMConfig, help="Architecture built when init_from is null.")
    max_tokens: int = option(256, help="Texts are cut to this many tokens.")
    optim: OptimConfig = option(default_factory=lambda: OptimConfig(lr=3e-3, warmup_steps=20),
                                help="AdamW and its schedule.")

    def __post_init__(self) -> None:
        check(bool(self.train_manifests), "train_manifests", "needs at least one manifest")
        check(self.vocab_size >= 260, "vocab_size", f"must be >= 260 (256 bytes + specials), got {self.vocab_size}")
        check(self.bpe_min_frequency >= 1, "bpe_min_frequency", "must be >= 1")
        check(self.max_tokens >= 1, "max_tokens", "must be >= 1")
        for name in ("init_from", "tokenizer_path"):
            value = getattr(self, name)
            check(value is None or bool(value.strip()), name, "must be a directory path or null")


@dataclass
class TextBatch:
    """Padded token sequences.

    Attributes:
        input_ids: (B, L) ids, padded with the pad id.
        attention_mask: (B, L) 1 on tokens.
        labels: (B, L) ids, -100 on padding (position 0 is never predicted).

    Example (pad = end-of-text E = 0; texts [5 6] and [7])::

        input_ids = [[0 5 6 0], [0 7 0 0]]   attention_mask = [[1 1 1 1], [1 1 1 0]]
        labels    = [[0 5 6 0], [0 7 0 -100]]
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor


class TextDataset(torch.utils.data.Dataset):
    """Texts as ``[eos] + tokens + [eos]`` id lists."""

    def __init__(self, texts: list[str], tokenizer: Any, max_tokens: int):
        if not texts:
            raise ValueError("no text to train on (the manifests hold no text)")
        eos = tokenizer.eos_token_id
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        self.sequences = [[eos] + seq[:max_tokens] + [eos] for seq in ids]

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> list[int]:
        return self.sequences[i]


def collate_text(sequences: list[list[int]], pad_id: int) -> TextBatch:
    """Right-pad id lists into a :class:`TextBatch`."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    labels = torch.full((len(sequences), length), -100, dtype=torch.long)
    mask = torch.zeros(len(sequences), length, dtype=torch.long)
    for b, seq in enumerate(sequences):
        ids[b, : len(seq)] = torch.tensor(seq)
        labels[b, : len(seq)] = torch.tensor(seq)
        mask[b, : len(seq)] = 1
    return TextBatch(ids, mask, labels)


class _PadCollate:
    """Picklable collate with a fixed pad id (DataLoader workers)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, sequences: list[list[int]]) -> TextBatch:
        return collate_text(sequences, self.pad_id)


def lm_nll(model: nn.Module, batch: TextBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token NLL of a batch and the number of predicted tokens."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (B, L, V)
    nll, count = token_nll(logits, batch.labels)
    return nll.sum(), count.sum()


class LMTask:
    """Causal-LM :class:`~omni.training.trainer.TrainTask`: loss units are predicted tokens."""

    phases = ("main",)

    def batch_weight(self, batch: TextBatch) -> float:
        return float((batch.labels[:, 1:] != -100).sum())

    def compute_loss(self, model: nn.Module, batch: TextBatch, phase: str) -> StepOutput:
        nll, _ = lm_nll(model, batch)
        return StepOutput(loss=nll)


def evaluate_lm(model: nn.Module, ctx: TrainContext, data: TextDataset, pad_id: int, batch_size: int) -> dict[str, float]:
    """Dev NLL per token and perplexity, sharded over processes."""
    acc = ctx.accelerator
    mine = list(range(acc.process_index, len(data), acc.num_processes))
    totals = torch.zeros(2, dtype=torch.float64, device=acc.device)
    for start in range(0, len(mine), batch_size):
        batch = collate_text([data[i] for i in mine[start:start + batch_size]], pad_id)
        batch = TextBatch(*(t.to(acc.device) for t in (batch.input_ids, batch.attention_mask, batch.labels)))
        nll, count = lm_nll(model, batch)
        totals += torch.stack([nll.double(), count.double()])
    totals = acc.reduce(totals, reduction="sum")
    nll = float(totals[0]) / max(float(totals[1]), 1.0)
    return {"nll": nll, "perplexity": math.exp(min(nll, 50.0))}


def build_lm(cfg: LMTrainConfig, tokenizer: Any) -> nn.Module:
    """The causal LM to train: ``init_from`` loaded locally, or a tiny Qwen2 sized to the tokenizer."""
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

    if cfg.init_from is not None:
        path = Path(cfg.init_from)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: language model directory not found (init_from; models are never downloaded)")
        verify_checksums(path)
        return AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
    m = cfg.model
    # No pad_token_id: Qwen2 makes it the embedding's padding_idx, whose row starts at zero and never gets a
    # gradient. Our pad is the end-of-text token that starts every text, so position 0 would stay an exact
    # zero vector through every layer, each RMSNorm would scale its gradient by 1/sqrt(eps) = 1000, and the
    # gradient would grow ~400x per layer at width 1024 (NaN at 24 layers). Padding needs no padding_idx:
    # attention_mask and labels (-100) mask it; the tokenizer keeps its pad token.
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=m.hidden_size, intermediate_size=m.intermediate_size,
        num_hidden_layers=m.layers, num_attention_heads=m.heads, num_key_value_heads=m.kv_heads,
        max_position_embeddings=m.max_position_embeddings, tie_word_embeddings=m.tie_word_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": m.rope_theta},
        eos_token_id=tokenizer.eos_token_id, pad_token_id=None, bos_token_id=tokenizer.eos_token_id,
    )
    return Qwen2ForCausalLM(config)


def lm_tokenizer(cfg: LMTrainConfig, texts: list[str], run_dir: Path, is_main: bool) -> Any:
    """The run's tokenizer: given, init_from's, or a BPE trained once on ``texts`` and kept in the run directory."""
    from omni.text.tokenizer import load_tokenizer, train_bpe_tokenizer

    if cfg.tokenizer_path is not None:
        return load_tokenizer(cfg.tokenizer_path)
    if cfg.init_from is not None:
        return load_tokenizer(cfg.init_from)
    from accelerate import PartialState

    saved = run_dir / TOKENIZER_DIR
    if is_main and not (saved / "tokenizer.json").is_file():
        tok = train_bpe_tokenizer(texts, vocab_size=cfg.vocab_size, min_frequency=cfg.bpe_min_frequency)
        tok.save_pretrained(str(saved))
    # every rank waits here exactly once: a rank that looked only after the main process had written the file
    # must not skip the barrier (it would enter the next collective while the main process waits here)
    PartialState().wait_for_everyone()
    return load_tokenizer(saved)


@dataclass
class LMRun:
    """Outcome of :func:`train_lm`."""

    result: TrainResult
    model_dir: Path | None


def train_lm(cfg: LMTrainConfig) -> LMRun:
    """Train (or resume) the LM and save model + tokenizer to ``<output_dir>/model``."""
    from functools import partial

    from accelerate import PartialState
    from accelerate.utils import set_seed

    from omni.text.tokenizer import manifest_texts
    from omni.training.export import fit_for_export
    from omni.training.optim import build_optimizer, build_scheduler
    from omni.training.trainer import Trainer

    state = PartialState(cpu=cfg.loop.cpu or not torch.cuda.is_available())
    run_dir = Path(cfg.loop.output_dir)
    for path in [*cfg.train_manifests, *cfg.dev_manifests]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: manifest not found")
    texts = manifest_texts(cfg.train_manifests)
    tokenizer = lm_tokenizer(cfg, texts, run_dir, state.is_main_process)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    set_seed(cfg.loop.seed)
    model = build_lm(cfg, tokenizer)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model only "
                         f"{model.get_input_embeddings().num_embeddings} embeddings")
    data = TextDataset(texts, tokenizer, cfg.max_tokens)
    dev = TextDataset(manifest_texts(cfg.dev_manifests), tokenizer, cfg.max_tokens) if cfg.dev_manifests else None
    n_params = sum(p.numel() for p in model.parameters())
    state.print(f"{len(data)} training texts, {len(dev) if dev else 0} dev texts; vocabulary {len(tokenizer)}; "
                f"{n_params:,} parameters")
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.loop.max_steps)
    pad_id = tokenizer.pad_token_id
    evaluate = partial(evaluate_lm, data=dev, pad_id=pad_id, batch_size=cfg.loop.batch_size) if dev else None
    trainer = Trainer(cfg.loop, LMTask(), model, data, _PadCollate(pad_id), {"main": optimizer}, {"main": scheduler},
                      evaluate=evaluate, grad_clip=cfg.optim.grad_clip)
    model_dir = run_dir / MODEL_DIR
    fit = fit_for_export(trainer, cfg, model_dir / "config.json")
    if not fit.result.complete:
        return LMRun(fit.result, None)
    if not fit.write_export:
        return LMRun(fit.result, model_dir)
    if trainer.acc.is_main_process:
        unwrapped = trainer.acc.unwrap_model(trainer.model)
        tmp = run_dir / f".{MODEL_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        unwrapped.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        write_checksums(tmp)
        shutil.rmtree(model_dir, ignore_errors=True)
        tmp.replace(model_dir)
        state.print(f"saved the LM and its tokenizer to {model_dir}")
    return LMRun(fit.result, model_dir)
