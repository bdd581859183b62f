"""Whisper log-mel front end as a batched torch module (runs on GPU and inside the training loop).

Numerically the same as ``transformers.WhisperFeatureExtractor`` for the same
settings (the parity tests hold it to 1e-4): a 400-point Hann-window STFT
with a 10 ms hop, the extractor's own Slaney mel filter bank (80 or 128
bins), power spectrum, ``log10(max(mel, 1e-10))``, clamp to ``max - 8`` per
utterance, then ``(x + 4) / 4``.

Unlike the extractor, clips are not padded to 30 s: a clip of ``S`` samples
gives ``S // hop`` frames (what the extractor gives with ``padding="longest"``
on that clip alone). In a padded batch each clip is reflect-padded at its own
end, exactly as ``torch.stft(center=True)`` pads it alone, and its max is
taken over its own frames, so every clip's features do not depend on what
else is in the batch. Frames past a clip's length are set to 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from omni.config import check, option


@dataclass
class FrontendConfig:
    """Whisper log-mel settings (the defaults are Whisper's)."""

    sample_rate: int = option(16000, help="Input sample rate in Hz; other rates are resampled to it before encoding.")
    n_mels: int = option(80, help="Mel bins: 128 for whisper-large-v3, 80 for older Whisper sizes.")
    n_fft: int = option(400, help="STFT size in samples (25 ms at 16 kHz).")
    hop_length: int = option(160, help="STFT hop in samples (10 ms at 16 kHz): the mel frame rate is sample_rate / hop_length.")

    def __post_init__(self) -> None:
        check(self.sample_rate >= 8000, "sample_rate", f"must be >= 8000 Hz, got {self.sample_rate}")
        check(self.n_mels >= 8, "n_mels", f"must be >= 8, got {self.n_mels}")
        check(self.n_fft >= 16 and self.n_fft % 2 == 0, "n_fft", f"must be an even number >= 16, got {self.n_fft}")
        check(0 < self.hop_length <= self.n_fft, "hop_length", f"must be in 1..n_fft, got {self.hop_length}")

    def feature_extractor(self):
        """The ``transformers.WhisperFeatureExtractor`` with the same settings (the parity reference)."""
        from transformers import WhisperFeatureExtractor

        return WhisperFeatureExtractor(feature_size=self.n_mels, sampling_rate=self.sample_rate,
                                       hop_length=self.hop_length, n_fft=self.n_fft)


@dataclass
class MelFeatures:
    """A padded batch of log-mel features.

    Attributes:
        mel: (B, n_mels, F) normalised log-mel; frames past a clip's length are 0.
        lengths: (B,) valid frames per clip (``samples // hop_length``).
    """

    mel: torch.Tensor
    lengths: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """(B, F) True on valid frames."""
        return torch.arange(self.mel.shape[-1], device=self.mel.device)[None, :] < self.lengths[:, None]


class WhisperFrontend(nn.Module):
    """Waveforms (B, S) -> Whisper log-mel (B, n_mels, S_max // hop)."""

    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        self.cfg = cfg
        # the extractor's own filter bank (n_fft // 2 + 1, n_mels): same numbers, no re-implementation
        filters = torch.from_numpy(cfg.feature_extractor().mel_filters).float()
        self.register_buffer("mel_filters", filters.T.contiguous(), persistent=False)  # (n_mels, n_freq)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    def num_frames(self, num_samples: torch.Tensor | int) -> torch.Tensor | int:
        """Mel frames of a clip of ``num_samples`` samples."""
        return num_samples // self.cfg.hop_length

    @property
    def min_samples(self) -> int:
        """Shortest clip the STFT's reflect padding accepts."""
        return self.cfg.n_fft // 2 + 1

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> MelFeatures:
        """Log-mel features of a padded batch.

        Args:
            wav: (B, S) float waveforms at ``cfg.sample_rate``, zero- (or anything-) padded past each length.
            lengths: (B,) valid samples per clip; None means every clip is S long.

        Returns:
            MelFeatures with mel (B, n_mels, S // hop) and lengths (B,).
        """
        if wav.dim() != 2:
            raise ValueError(f"expected waveforms of shape (B, S), got {tuple(wav.shape)}")
        batch, samples = wav.shape
        device = wav.device
        if lengths is None:
            lengths = torch.full((batch,), samples, dtype=torch.long, device=device)
        lengths = lengths.to(device=device, dtype=torch.long)
        if int(lengths.min()) < self.min_samples:
            raise ValueError(f"every clip needs at least {self.min_samples} samples, got {int(lengths.min())}")
        with torch.autocast(device_type=device.type, enabled=False):  # log-mel in float32 even under AMP
            return self._features(wav.float(), lengths)

    def _features(self, wav: torch.Tensor, lengths: torch.Tensor) -> MelFeatures:
        samples, device = wav.shape[1], wav.device
        pad = self.cfg.n_fft // 2
        # per-clip reflect padding as torch.stft(center=True) does: index j of the padded clip reads sample
        # |j - pad| mirrored at the clip's own end; positions past the end are clamped (masked out later)
        pos = torch.arange(samples + 2 * pad, device=device)[None, :] - pad  # (1, S + 2 pad)
        last = (lengths - 1)[:, None]  # (B, 1)
        idx = pos.abs()
        idx = torch.where(idx > last, 2 * last - idx, idx).clamp(0, samples - 1)  # (B, S + 2 pad)
        padded = wav.gather(1, idx)  # (B, S + 2 pad)
        spec = torch.stft(padded, self.cfg.n_fft, self.cfg.hop_length, window=self.window, center=False,
                          return_complex=True)  # (B, n_freq, S // hop + 1)
        power = (spec[..., :-1].abs() ** 2).contiguous()  # (B, n_freq, F): the extractor drops the last frame
        mel = self.mel_filters @ power  # (B, n_mels, F)
        log_mel = torch.clamp(mel, min=1e-10).log10()
        frames = self.num_frames(lengths)  # (B,)
        valid = torch.arange(log_mel.shape[-1], device=device)[None, :] < frames[:, None]  # (B, F)
        peak = log_mel.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=(1, 2), keepdim=True)  # (B, 1, 1)
        log_mel = torch.maximum(log_mel, peak - 8.0)
        log_mel = (log_mel + 4.0) / 4.0
        return MelFeatures(log_mel.masked_fill(~valid[:, None, :], 0.0), frames)
