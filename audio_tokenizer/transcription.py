"""Transcription objective: a frozen causal LM reads the quantized frames and predicts the transcript.

Any ``transformers`` causal LM in a local directory works (Qwen2.5 in the
full recipe, the tiny LM of ``omni train lm`` in the tiny one). A small
adapter maps quantized frames into the LM's embedding space; the LM sees,
per utterance::

    [adapter(q_1) ... adapter(q_T)] [<eos>] [tok_1 ... tok_L <eos>] [pad ...]
     loss on:                            ^ from here on: tok_1 ... <eos>

The end-of-text token between audio and text (``separator``) puts the LM in
the start-of-document state it knows from text; the audio frames before it
are extra context, so the loss can only beat the LM's text-only prior when
the codes carry information about the words (``text_nll_without_audio`` in
the evaluation is that prior).

The LM is frozen (``requires_grad=False``, eval mode) and kept outside the
trained module, so checkpoints hold only tokenizer-side weights; gradients
still flow through it into the adapter, the quantizer (rotation trick) and
the encoder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from omni.config import check, option
from omni.integrity import verify_checksums
from omni.text.losses import token_nll


@dataclass
class TranscriptionConfig:
    """The frozen-LM transcription objective."""

    lm_path: str | None = option(
        None, help="Local directory of a causal LM and its tokenizer (AutoModelForCausalLM / AutoTokenizer); "
        "null disables the objective. Checked when training starts, never downloaded.")
    weight: float = option(1.0, help="Weight of the transcription loss (per-token NLL averaged per utterance); 0 "
                           "drops the loss and its adapter (the CTC head still spells the LM tokenizer's tokens).")
    adapter_hidden: int = option(0, help="Hidden size of the 2-layer MLP adapter; 0 uses the LM's hidden size.")
    max_text_tokens: int = option(256, help="Transcripts are cut to this many tokens (plus end-of-text).")
    separator: bool = option(
        True, help="Insert the LM's end-of-text token between the audio frames and the transcript (not scored).")
    lm_dtype: Literal["float32", "bfloat16", "float16"] = option(
        "float32", help="Dtype the frozen LM is loaded in (bfloat16 halves a large LM's memory on GPU).")

    def __post_init__(self) -> None:
        check(self.weight >= 0, "weight", "must be >= 0")
        check(self.adapter_hidden >= 0, "adapter_hidden", "must be >= 0")
        check(self.max_text_tokens >= 1, "max_text_tokens", "must be >= 1")
        check(self.lm_path is None or bool(self.lm_path.strip()), "lm_path", "must be a directory path or null")

    @property
    def enabled(self) -> bool:
        """True when an LM is configured and the weight is positive."""
        return self.lm_path is not None and self.weight > 0


class FrozenLM:
    """A causal LM and its tokenizer, loaded from a local directory and frozen.

    Raises:
        FileNotFoundError: ``path`` is not a local model directory.
    """

    def __init__(self, path: str | os.PathLike, dtype: str = "float32"):
        from transformers import AutoModelForCausalLM

        from omni.text.tokenizer import load_tokenizer

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: language model directory not found (expected config.json; build a tiny one "
                                    "with 'omni train lm', models are never downloaded)")
        self.path = path
        self.tokenizer = load_tokenizer(path)
        verify_checksums(path)
        self.model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, use_safetensors=True,
                                                          dtype=getattr(torch, dtype))
        self.model.requires_grad_(False)
        self.model.eval()
        if self.tokenizer.eos_token_id is None:
            raise ValueError(f"{path}: the tokenizer has no end-of-text token")

    @property
    def hidden_size(self) -> int:
        """Width of the LM's input embeddings."""
        return self.model.get_input_embeddings().embedding_dim

    def to(self, device: torch.device | str) -> FrozenLM:
        """Move the LM to ``device``."""
        self.model.to(device)
        return self

    def encode_text(self, text: str, max_tokens: int) -> list[int]:
        """Token ids of a transcript, cut to ``max_tokens``, with end-of-text appended."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
        return ids + [self.tokenizer.eos_token_id]


class TranscriptionAdapter(nn.Module):
    """Quantized frames (B, T, in_dim) -> LM input embeddings (B, T, lm_dim): a 2-layer MLP."""

    def __init__(self, in_dim: int, lm_dim: int, hidden: int = 0):
        super().__init__()
        hidden = hidden or lm_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, lm_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_lm_inputs(audio: torch.Tensor, audio_lengths: torch.Tensor, text_embeds: torch.Tensor, text_ids: torch.Tensor,
                    text_lengths: torch.Tensor, context: torch.Tensor | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Place each utterance's audio frames, then the context tokens, then its text, then padding.

    Args:
        audio: (B, T, H) adapted audio frames; audio_lengths (B,) valid frames.
        text_embeds: (B, L, H) embeddings of text_ids (B, L); text_lengths (B,) valid tokens.
        context: (C, H) embeddings placed between audio and text in every row (not scored), or None.

    Returns:
        inputs_embeds (B, N, H), attention_mask (B, N) long, labels (B, N) with -100 except on text tokens;
        N = max(audio_lengths + C + text_lengths).

    Example (T_0 = 2 frames, text "a b" + eos; T_1 = 1 frame, "c" + eos; one context token S)::

        inputs:  [q q S a b E]   labels: [-100 -100 -100 a b E]         mask: [1 1 1 1 1 1]
                 [q S c E 0 0]           [-100 -100 c E -100 -100]            [1 1 1 1 0 0]
    """
    batch, _, hidden = audio.shape
    n_context = 0 if context is None else context.shape[0]
    total = audio_lengths + n_context + text_lengths  # (B,)
    n = int(total.max())
    embeds = audio.new_zeros(batch, n, hidden)
    labels = torch.full((batch, n), -100, dtype=torch.long, device=audio.device)
    mask = torch.zeros(batch, n, dtype=torch.long, device=audio.device)
    for b in range(batch):
        t, length = int(audio_lengths[b]), int(text_lengths[b])
        embeds[b, :t] = audio[b, :t]
        if n_context:
            embeds[b, t:t + n_context] = context.to(audio.dtype)
        start = t + n_context
        embeds[b, start:start + length] = text_embeds[b, :length].to(audio.dtype)
        labels[b, start:start + length] = text_ids[b, :length]
        mask[b, :start + length] = 1
    return embeds, mask, labels


def transcription_nll(lm: Any, audio: torch.Tensor, audio_lengths: torch.Tensor, text_ids: torch.Tensor,
                      text_lengths: torch.Tensor, context_ids: list[int] | tuple[int, ...] = (),
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL of each transcript given its audio frames, under a (frozen) causal LM.

    Args:
        lm: a ``transformers`` causal LM.
        audio: (B, T, H) adapted frames; audio_lengths (B,).
        text_ids: (B, L) transcript ids ending in end-of-text; text_lengths (B,).
        context_ids: token ids placed between audio and text (e.g. the end-of-text separator), not scored.

    Returns:
        nll (B,) summed over each transcript's tokens, and count (B,) of those tokens.
    """
    embedding = lm.get_input_embeddings()
    text_embeds = embedding(text_ids.clamp_min(0))  # (B, L, H)
    context = embedding(torch.tensor(list(context_ids), device=text_ids.device)) if context_ids else None  # (C, H)
    embeds, mask, labels = build_lm_inputs(audio, audio_lengths, text_embeds, text_ids, text_lengths, context)
    logits = lm(inputs_embeds=embeds.to(lm.dtype), attention_mask=mask).logits  # (B, N, V)
    return token_nll(logits, labels)
