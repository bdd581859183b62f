"""Auxiliary CTC transcription objective on the quantized frames.

The frozen-LM objective (:mod:`audio_tokenizer.transcription`) lets a small LM *read* the frames, which a
tiny LM can satisfy from its text prior without the frames saying much. CTC asks more of the codes: a
light head (one 3-wide convolution and a linear layer) must spell the transcript's tokens from the
quantized frames alone, frame by frame, so the codes have to carry what was said.

Targets are the same LM-tokenizer ids the LM objective uses, without the end-of-text token; the blank is
an extra class after the vocabulary. At 12.5 frames per second a BPE transcript is shorter than its frame
sequence (about 3 tokens per second of speech); clips where it is not (an infeasible alignment) score 0
(``zero_infinity``) and count in ``CTCResult.infeasible``.

The trained head is saved beside the tokenizer (``<tokenizer>/ctc``, with the tokenizer of its targets):
:class:`CodesTranscriber` reads speech from the codes alone with it, greedily, which is the tokenizer's
phonetic-content gate (``omni eval asr MANIFEST --recognizer codes-ctc --model-dir <tokenizer>``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class CTCHead(nn.Module):
    """quantized (B, T, D) -> log-probabilities (B, T, V + 1); class V is the blank."""

    def __init__(self, dim: int, vocab_size: int, hidden: int = 256):
        super().__init__()
        self.conv = nn.Conv1d(dim, hidden, kernel_size=3, padding=1)
        self.out = nn.Linear(hidden, vocab_size + 1)
        self.blank = vocab_size

    def forward(self, quantized: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """lengths (B,): valid frames; padding frames are zeroed first so they never leak into valid ones."""
        if lengths is not None:
            valid = torch.arange(quantized.shape[1], device=quantized.device)[None, :] < lengths[:, None]  # (B, T)
            quantized = quantized * valid[..., None]
        h = F.gelu(self.conv(quantized.transpose(1, 2))).transpose(1, 2)  # (B, T, H)
        return self.out(h).log_softmax(-1)  # (B, T, V + 1)


@dataclass
class CTCResult:
    """Per-utterance CTC loss per target token (B,), 0 where a clip has no transcript or no feasible alignment."""

    loss: torch.Tensor
    infeasible: int


def ctc_per_token(log_probs: torch.Tensor, frame_lengths: torch.Tensor, text_ids: torch.Tensor,
                  text_lengths: torch.Tensor, blank: int, drop_last: bool = True) -> CTCResult:
    """CTC negative log-likelihood of each transcript, divided by its token count.

    Args:
        log_probs: (B, T, V + 1) frame log-probabilities.
        frame_lengths: (B,) valid frames.
        text_ids: (B, L) target ids, padded; ``text_lengths`` (B,) valid ids (including a final end-of-text
            token when ``drop_last``, which is then not a target).
    """
    lengths = (text_lengths - int(drop_last)).clamp_min(0)  # (B,)
    if int(lengths.max()) == 0:
        return CTCResult(log_probs.new_zeros(log_probs.shape[0]), 0)
    targets = text_ids[:, : int(lengths.max())].clamp_max(blank - 1)  # (B, L'); padding is masked by lengths
    nll = F.ctc_loss(log_probs.transpose(0, 1).float(), targets, frame_lengths, lengths, blank=blank,
                     reduction="none", zero_infinity=True)  # (B,)
    feasible = frame_lengths >= lengths
    infeasible = int(((~feasible) & (lengths > 0)).sum())
    loss = torch.where((lengths > 0) & feasible, nll / lengths.clamp_min(1), torch.zeros_like(nll))
    return CTCResult(loss, infeasible)


def greedy_ctc(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int) -> list[list[int]]:
    """Best path per frame, repeats merged, blanks dropped.

    Args:
        log_probs: (B, T, V + 1) frame log-probabilities (or logits: only the argmax is used).
        lengths: (B,) valid frames.
        blank: the blank class.

    Returns:
        one id list per clip. Example: frame argmax [5 5 b 5 7 7 b] -> [5, 5, 7].
    """
    best = log_probs.argmax(-1).cpu()  # (B, T)
    out = []
    for b, n in enumerate(lengths.tolist()):
        path = best[b, :n].tolist()
        out.append([t for i, t in enumerate(path) if t != blank and (i == 0 or t != path[i - 1])])
    return out


# ---- the head saved with the tokenizer: a transcriber that reads the codes alone -----------------------

CTC_DIR = "ctc"
_CONFIG = "config.json"
_WEIGHTS = "model.safetensors"


def save_ctc_head(directory: str | os.PathLike, head: CTCHead, text_tokenizer: Any) -> Path:
    """Write the head (``config.json``, ``model.safetensors``, checksums) and the tokenizer of its targets
    into ``directory`` (created; normally ``<saved tokenizer>/ctc``)."""
    from safetensors.torch import save_model

    from omni.integrity import write_checksums

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    config = {"kind": "ctc_head", "dim": head.conv.in_channels, "vocab_size": head.blank, "hidden": head.conv.out_channels}
    (d / _CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    save_model(head, str(d / _WEIGHTS), metadata={"format": "pt", "kind": "ctc_head"})
    text_tokenizer.save_pretrained(str(d))
    write_checksums(d)
    return d


class CodesTranscriber:
    """Speech -> text from the audio tokenizer's codes alone, with the CTC head trained beside it.

    ``wav -> codes (T, K) -> summed code vectors (T, dim_q) -> CTC head -> greedy path -> text``: the codes
    are all the head sees, so its WER measures the phonetic content of the codes (the tokenizer's gate).

    Args:
        tokenizer: the audio tokenizer.
        head: its CTC head.
        text_tokenizer: the tokenizer of the head's targets (decodes the ids).
    """

    def __init__(self, tokenizer: Any, head: CTCHead, text_tokenizer: Any):
        self.tokenizer = tokenizer.eval()
        self.head = head.eval().to(tokenizer.device)
        self.text_tokenizer = text_tokenizer

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> CodesTranscriber:
        """Load a saved tokenizer directory that holds a ``ctc/`` head (``omni train tokenizer`` with
        ``ctc_weight > 0`` writes one).

        Raises:
            FileNotFoundError: no tokenizer there, or it was trained without the CTC objective.
        """
        from safetensors.torch import load_model

        from audio_tokenizer.model import AudioTokenizer
        from omni.integrity import verify_checksums
        from omni.text.tokenizer import load_tokenizer

        d = Path(path) / CTC_DIR
        if not (d / _CONFIG).is_file():
            raise FileNotFoundError(f"{d}: no CTC head beside the tokenizer (train it with ctc_weight > 0; "
                                    "tokenizers saved before the head was kept do not have one)")
        verify_checksums(d)
        config = json.loads((d / _CONFIG).read_text(encoding="utf-8"))
        head = CTCHead(config["dim"], config["vocab_size"], config["hidden"])
        load_model(head, str(d / _WEIGHTS))
        return cls(AudioTokenizer.from_pretrained(path, device=device), head, load_tokenizer(d))

    @torch.no_grad()
    def transcribe_codes(self, codes: list[torch.Tensor]) -> list[str]:
        """Codes (T_b, K) of each clip -> its text."""
        from audio_tokenizer.model import pad_codes

        batch = pad_codes(codes)
        q = self.tokenizer.quantizer.decode_codes(batch.codes.to(self.tokenizer.device))  # (B, T, dim_q)
        lengths = batch.lengths.to(q.device)
        ids = greedy_ctc(self.head(q, lengths), lengths, self.head.blank)
        return [self.text_tokenizer.decode(i, skip_special_tokens=True).strip() for i in ids]

    def transcribe(self, wavs: list[np.ndarray], sample_rate: int) -> list[str]:
        """Waveforms (any rate, mono) -> texts."""
        return self.transcribe_codes(self.tokenizer.encode_many(wavs, sample_rate, batch_size=max(1, len(wavs))))
