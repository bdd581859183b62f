"""The decoder side's one mel front end: flow-matching targets, vocoder input and vocoder losses.

A log-magnitude mel spectrogram in the HiFi-GAN / CosyVoice convention: the
waveform is reflect-padded by ``(n_fft - hop) / 2`` on each side, framed
without centring (so ``T`` samples give exactly ``T // hop`` frames, and frame
``i`` covers samples ``i * hop .. (i + 1) * hop`` at its centre), windowed
with a Hann window, ``|STFT|`` (torch), projected on librosa's Slaney mel
filterbank and ``log(clamp(x, floor))``.

At 24 kHz the default hop of 480 samples gives 50 frames/s: exactly 4 mel
frames per 12.5 Hz audio token, and the vocoder's upsampling factors multiply
to 480.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import torch
import torch.nn.functional as F

from omni.config import check, option


@dataclass
class MelConfig:
    """Mel spectrogram settings shared by the flow decoder, the vocoder and their losses."""

    sample_rate: int = option(24000, help="Waveform sample rate in Hz.")
    n_fft: int = option(1920, help="FFT size in samples (1920 = 80 ms at 24 kHz).")
    hop_length: int = option(480, help="Samples between frames (480 = 20 ms at 24 kHz: 50 frames/s).")
    win_length: int = option(1920, help="Hann window length in samples (<= n_fft).")
    n_mels: int = option(80, help="Mel bands.")
    fmin: float = option(0.0, help="Lowest filterbank frequency in Hz.")
    fmax: float | None = option(None, help="Highest filterbank frequency in Hz; null = sample_rate / 2.")
    log_floor: float = option(1e-5, help="Magnitudes are clamped to at least this before the natural log.")

    def __post_init__(self) -> None:
        check(self.sample_rate >= 1000, "sample_rate", f"must be >= 1000 Hz, got {self.sample_rate}")
        check(self.hop_length >= 1, "hop_length", f"must be >= 1, got {self.hop_length}")
        check(self.n_fft >= self.hop_length, "n_fft", f"must be >= hop_length ({self.hop_length}), got {self.n_fft}")
        check((self.n_fft - self.hop_length) % 2 == 0, "n_fft",
              f"n_fft - hop_length must be even (symmetric padding), got {self.n_fft} - {self.hop_length}")
        check(1 <= self.win_length <= self.n_fft, "win_length", f"must be in [1, n_fft={self.n_fft}]")
        check(self.n_mels >= 1, "n_mels", "must be >= 1")
        top = self.fmax if self.fmax is not None else self.sample_rate / 2
        check(0 <= self.fmin < top, "fmin", f"must be >= 0 and below fmax ({top})")
        check(top <= self.sample_rate / 2, "fmax", f"must be <= sample_rate / 2 = {self.sample_rate / 2}")
        check(self.log_floor > 0, "log_floor", "must be > 0")

    @property
    def frame_rate(self) -> float:
        """Mel frames per second."""
        return self.sample_rate / self.hop_length


class MelFrontEnd(torch.nn.Module):
    """Waveform -> log-mel spectrogram (differentiable, for targets and losses).

    Args:
        cfg: mel settings.
    """

    def __init__(self, cfg: MelConfig):
        super().__init__()
        self.cfg = cfg
        basis = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin,
                                    fmax=cfg.fmax)  # (M, n_fft // 2 + 1), Slaney norm
        self.register_buffer("mel_basis", torch.from_numpy(basis).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples."""
        return num_samples // self.cfg.hop_length

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """Linear STFT magnitude.

        Args:
            wav: (B, T) or (T,) float waveform.

        Returns:
            (B, n_fft // 2 + 1, T // hop) magnitudes.
        """
        cfg = self.cfg
        if wav.dim() == 1:
            wav = wav.unsqueeze(0)  # (1, T)
        if wav.dim() != 2:
            raise ValueError(f"waveform must be (T,) or (B, T), got shape {tuple(wav.shape)}")
        if wav.shape[-1] < cfg.hop_length:
            raise ValueError(f"waveform of {wav.shape[-1]} samples is shorter than one hop ({cfg.hop_length})")
        pad = (cfg.n_fft - cfg.hop_length) // 2
        mode = "reflect" if wav.shape[-1] > pad else "constant"
        x = F.pad(wav.float().unsqueeze(1), (pad, pad), mode=mode).squeeze(1)  # (B, T + n_fft - hop)
        spec = torch.stft(x, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                          window=self.window.to(x.device), center=False, return_complex=True)  # (B, F, frames)
        return torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Log-mel spectrogram.

        Args:
            wav: (B, T) or (T,) float waveform at ``cfg.sample_rate``.

        Returns:
            (B, n_mels, T // hop_length) natural-log mel magnitudes.
        """
        mag = self.magnitude(wav)  # (B, F, N)
        mel = torch.matmul(self.mel_basis.to(mag.device), mag)  # (B, M, N)
        return torch.log(torch.clamp(mel, min=self.cfg.log_floor))

    @property
    def floor_value(self) -> float:
        """The log-mel value of silence (``log(log_floor)``); padding value for mel batches."""
        return float(torch.log(torch.tensor(self.cfg.log_floor)))
