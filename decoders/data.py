"""Training data for the decoders: manifest rows -> unpadded examples -> padded batch dataclasses.

* Vocoder: any row with top-level ``audio`` (``tts_*.jsonl`` of the corpus: 24 kHz reply voice); a random
  segment of ``segment_frames`` mel frames (zero-padded when the clip is shorter).
* Flow decoder: rows with ``audio`` and ``codes`` (``{"path", "key"}``, written by ``omni data tokenize``);
  the target mel is computed from the audio with the shared front end, and the codes (T, K) at 12.5 Hz are
  aligned to it (4 frames per token), then a random window of at most ``max_tokens`` tokens is cut.

Random crops draw from torch's global RNG, which the training loop seeds and restores on resume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from decoders.flow import validate_codes
from decoders.mel import MelFrontEnd
from omni.audio.io import load_audio
from omni.data.codes import CodesReader
from omni.data.manifest import ManifestRow, load_manifest, resolve_media


@dataclass
class AudioItem:
    """One manifest audio reference, resolved."""

    id: str
    path: Path
    manifest: Path
    offset: float
    duration: float | None
    speaker: str | None
    row: ManifestRow


def audio_items(manifests: list[str | os.PathLike], need_codes: bool = False) -> list[AudioItem]:
    """Rows with top-level audio (and codes, when ``need_codes``) from every manifest.

    Raises:
        ValueError: a manifest holds no usable row, or (``need_codes``) a row with audio has no codes.
    """
    items: list[AudioItem] = []
    for manifest in manifests:
        manifest = Path(manifest)
        rows = [r for r in load_manifest(manifest) if r.audio]
        if not rows:
            raise ValueError(f"{manifest}: no row with top-level 'audio'")
        for r in rows:
            if need_codes and r.codes is None:
                raise ValueError(f"{manifest}: row '{r.id}' has audio but no 'codes' (run 'omni data tokenize' "
                                 f"on this manifest first)")
            items.append(AudioItem(r.id, resolve_media(manifest, r.audio), manifest, r.offset or 0.0,
                                   r.duration if r.offset is not None else None, r.speaker, r))
    return items


@dataclass
class VocoderBatch:
    """Waveform segments and their log-mels.

    Attributes:
        wav: (B, S) segments of S = segment_frames * hop samples.
        mel: (B, M, segment_frames).
    """

    wav: torch.Tensor
    mel: torch.Tensor


class VocoderDataset(torch.utils.data.Dataset):
    """Random fixed-length segments of manifest audio.

    Args:
        manifests: JSONL manifests with top-level audio.
        front_end: the shared mel front end (its sample rate is the vocoder's).
        segment_frames: mel frames per segment; None returns whole clips (batch size 1, evaluation).
    """

    def __init__(self, manifests: list[str | os.PathLike], front_end: MelFrontEnd, segment_frames: int | None):
        self.items = audio_items(manifests)
        self.front_end = front_end
        self.segment_frames = segment_frames

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        it = self.items[i]
        hop = self.front_end.cfg.hop_length
        wav = torch.from_numpy(load_audio(it.path, self.front_end.cfg.sample_rate, offset=it.offset,
                                          duration=it.duration).samples)  # (T,)
        if self.segment_frames is None:
            wav = wav[: (len(wav) // hop) * hop]
        else:
            seg = self.segment_frames * hop
            if len(wav) <= seg:
                wav = torch.nn.functional.pad(wav, (0, seg - len(wav)))
            else:
                start = int(torch.randint(0, (len(wav) - seg) // hop + 1, ()).item()) * hop
                wav = wav[start:start + seg]
        with torch.no_grad():
            mel = self.front_end(wav)[0]  # (M, S / hop)
        return wav, mel


def collate_vocoder(items: list[tuple[torch.Tensor, torch.Tensor]]) -> VocoderBatch:
    """Stack equal-length segments: ``[(wav (S,), mel (M, F))] * B -> VocoderBatch(wav (B, S), mel (B, M, F))``."""
    return VocoderBatch(wav=torch.stack([w for w, _ in items]), mel=torch.stack([m for _, m in items]))


@dataclass
class FlowExample:
    """One unpadded flow-decoder example: mel (M, N r), codes (N, K), speaker table index."""

    mel: torch.Tensor
    codes: torch.Tensor
    speaker: int


@dataclass
class FlowBatch:
    """Padded flow-decoder batch.

    Example with r = 4 frames per token, lengths 3 and 2 tokens::

        codes      (2, 3, K)   row 1: [c0, c1, 0]
        code_mask  (2, 3)      [[1, 1, 1], [1, 1, 0]]
        mel        (2, M, 12)  row 1: frames 8..11 filled with the silence floor
        mel_mask   (2, 1, 12)  [[1 x 12], [1 x 8, 0 x 4]]
        speaker    (2,)        speaker table rows (0 = unknown)
        prompt_frames (2,)     leading frames given as prompt (not scored), e.g. [3, 0]
    """

    mel: torch.Tensor
    mel_mask: torch.Tensor
    codes: torch.Tensor
    code_mask: torch.Tensor
    speaker: torch.Tensor
    prompt_frames: torch.Tensor

    @property
    def loss_frames(self) -> float:
        """Frames scored by the loss: valid frames minus prompt frames."""
        return float(self.mel_mask.sum() - self.prompt_frames.sum())


class FlowDataset(torch.utils.data.Dataset):
    """Manifest rows with audio and cached codes -> (target mel, codes) windows.

    Args:
        manifests: JSONL manifests whose rows carry ``audio`` and ``codes``.
        front_end: the shared mel front end.
        codebook_sizes: per-level codebook sizes (codes are validated against them).
        frames_per_token: mel frames per token (r).
        max_tokens: longest window in tokens (a random window of longer utterances); None = whole utterance.
        speakers: speaker names of the model's table (row = index + 1; others 0).
        max_misalignment: tokens by which the codes may differ from the audio length before it is an error.
    """

    def __init__(self, manifests: list[str | os.PathLike], front_end: MelFrontEnd, codebook_sizes: list[int],
                 frames_per_token: int, max_tokens: int | None, speakers: list[str] | None = None,
                 max_misalignment: int = 3):
        self.items = audio_items(manifests, need_codes=True)
        self.front_end, self.sizes, self.r = front_end, codebook_sizes, frames_per_token
        self.max_tokens, self.speakers, self.tolerance = max_tokens, speakers or [], max_misalignment
        self.readers = {m: CodesReader(m) for m in {it.manifest for it in self.items}}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> FlowExample:
        it = self.items[i]
        name = f"{it.manifest}: row '{it.id}'"
        codes = validate_codes(self.readers[it.manifest].load(it.row.codes), self.sizes, name=f"{name} codes")
        wav = torch.from_numpy(load_audio(it.path, self.front_end.cfg.sample_rate, offset=it.offset,
                                          duration=it.duration).samples)
        with torch.no_grad():
            mel = self.front_end(wav)[0]  # (M, F)
        n = min(codes.shape[0], mel.shape[1] // self.r)
        if abs(codes.shape[0] - mel.shape[1] / self.r) > self.tolerance or n == 0:
            raise ValueError(f"{name}: {codes.shape[0]} code frames do not match {mel.shape[1]} mel frames "
                             f"({mel.shape[1] / self.r:.1f} tokens of audio); are these the codes of this audio?")
        start = 0
        if self.max_tokens is not None and n > self.max_tokens:
            start = int(torch.randint(0, n - self.max_tokens + 1, ()).item())
            n = self.max_tokens
        speaker = self.speakers.index(it.speaker) + 1 if it.speaker in self.speakers else 0
        return FlowExample(mel=mel[:, start * self.r:(start + n) * self.r], codes=codes[start:start + n],
                           speaker=speaker)


def collate_flow(items: list[FlowExample], pad_value: float, prompt_prob: float = 0.0,
                 prompt_max_ratio: float = 0.0) -> FlowBatch:
    """Pad examples to the longest (see :class:`FlowBatch`); padded mel frames hold ``pad_value``.

    With probability ``prompt_prob`` an example gets a prompt of ``floor(U[0, prompt_max_ratio) x length)``
    frames (torch's global RNG).
    """
    b, k = len(items), items[0].codes.shape[1]
    n = max(it.codes.shape[0] for it in items)
    r = items[0].mel.shape[1] // items[0].codes.shape[0]
    m = items[0].mel.shape[0]
    codes = torch.zeros(b, n, k, dtype=torch.long)
    code_mask = torch.zeros(b, n)
    mel = torch.full((b, m, n * r), pad_value)
    mel_mask = torch.zeros(b, 1, n * r)
    for i, it in enumerate(items):
        t = it.codes.shape[0]
        codes[i, :t], code_mask[i, :t] = it.codes, 1
        mel[i, :, :t * r], mel_mask[i, :, :t * r] = it.mel, 1
    lengths = mel_mask.sum(dim=(1, 2))  # (B,)
    use = torch.rand(b) < prompt_prob
    prompt = torch.where(use, (lengths * torch.rand(b) * prompt_max_ratio).floor(), torch.zeros(b)).long()
    return FlowBatch(mel=mel, mel_mask=mel_mask, codes=codes, code_mask=code_mask,
                     speaker=torch.tensor([it.speaker for it in items], dtype=torch.long), prompt_frames=prompt)
