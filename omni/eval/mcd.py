"""Mel-cepstral distortion (MCD) between two utterances, aligned by dynamic time warping.

Cepstra: the natural-log *amplitude* mel spectrum ``L_k = ln(max(sqrt(mel power_k), 1e-5))``
(librosa's mel filterbank, M = ``n_mels`` bands; the floor as in HiFi-GAN's mel), turned into cepstra
with the convention of SPTK's mel-cepstrum, ``L(w) = c_0 + 2 sum_d c_d cos(d w)``, i.e.
``c_d = DCT-II(L)_d / (2M)`` (``librosa.feature.mfcc`` on L with the unnormalised DCT, divided by 2M).
A mel filterbank stands in for SPTK's all-pass frequency warping, so figures are close to, not equal
to, SPTK-based MCDs. With ``c_d`` the cepstra of frame t of one utterance and ``c'_d`` those of the
frame aligned with it::

    MCD(t) = 10 / ln(10) * sqrt(2 * sum_{d=1..D} (c_d - c'_d)^2)      [dB; c_0 (energy) excluded]
    MCD    = mean of MCD(t) over the DTW path

The 10/ln10 * sqrt(2) factor turns a natural-log cepstral distance into decibels (Kubichek 1993). The
path is ``librosa.sequence.dtw`` on the Euclidean distance between c_1..c_D frames. Silence at both
ends is trimmed first (``librosa.effects.trim``, ``top_db``) so leading pauses do not dominate. Figures
depend on these settings (mel bands, D, frame rate): compare MCDs computed with the same
:class:`McdConfig` only. Identical inputs give 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omni.config import check, option

DB_FACTOR = 10.0 / np.log(10.0) * np.sqrt(2.0)


@dataclass
class McdConfig:
    """Cepstral analysis settings of the mel-cepstral distortion."""

    sample_rate: int = option(24000, help="Both signals are resampled to this rate (Hz) before analysis.")
    n_fft: int = option(1024, help="FFT size.")
    hop_length: int = option(240, help="Hop in samples (240 = 10 ms at 24 kHz).")
    n_mels: int = option(80, help="Mel bands of the log spectrum.")
    n_cepstra: int = option(24, help="D: cepstral coefficients compared (c_1..c_D; c_0 is excluded).")
    top_db: float | None = option(40.0, help="Trim leading/trailing silence quieter than this below the peak (null: no trim).")

    def __post_init__(self) -> None:
        check(self.sample_rate > 0, "sample_rate", "must be > 0")
        check(self.n_fft > 0 and self.hop_length > 0, "hop_length", "n_fft and hop_length must be > 0")
        check(1 <= self.n_cepstra < self.n_mels, "n_cepstra", f"must be in [1, n_mels) = [1, {self.n_mels})")
        check(self.top_db is None or self.top_db > 0, "top_db", "must be > 0 or null")


def mel_cepstra(samples: np.ndarray, sample_rate: int, cfg: McdConfig) -> np.ndarray:
    """Cepstra c_0..c_D of each frame: (frames, D + 1)."""
    import librosa

    from omni.audio.io import resample

    y = np.asarray(samples, dtype=np.float32)
    if sample_rate != cfg.sample_rate:
        y = resample(y, sample_rate, cfg.sample_rate)
    if cfg.top_db is not None and len(y) > cfg.n_fft:
        y, _ = librosa.effects.trim(y, top_db=cfg.top_db, frame_length=cfg.n_fft, hop_length=cfg.hop_length)
    mel = librosa.feature.melspectrogram(y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                                         n_mels=cfg.n_mels, power=2.0)  # (M, F)
    log_amp = np.log(np.maximum(np.sqrt(mel), 1e-5))  # (M, F) natural log of the amplitude
    c = librosa.feature.mfcc(S=log_amp, n_mfcc=cfg.n_cepstra + 1, dct_type=2, norm=None)  # (D + 1, F)
    return (c / (2 * cfg.n_mels)).T  # (F, D + 1)


def mcd_aligned(c1: np.ndarray, c2: np.ndarray) -> float:
    """MCD of two already aligned cepstra sequences (F, D + 1) each (c_0 in column 0 is excluded)."""
    diff = np.asarray(c1)[:, 1:] - np.asarray(c2)[:, 1:]  # (F, D)
    return float(np.mean(DB_FACTOR * np.sqrt(np.sum(diff**2, axis=1))))


def mcd_dtw(c1: np.ndarray, c2: np.ndarray) -> float:
    """MCD of cepstra sequences (F1, D + 1) and (F2, D + 1), frames aligned by DTW over c_1..c_D."""
    import librosa

    _, path = librosa.sequence.dtw(X=np.asarray(c1)[:, 1:].T, Y=np.asarray(c2)[:, 1:].T, metric="euclidean")
    path = path[::-1]  # (L, 2) pairs in time order
    return mcd_aligned(c1[path[:, 0]], c2[path[:, 1]])


def mel_cepstral_distortion(a: np.ndarray, sr_a: int, b: np.ndarray, sr_b: int, cfg: McdConfig | None = None) -> float:
    """MCD (dB) between waveforms ``a`` (T1,) at ``sr_a`` and ``b`` (T2,) at ``sr_b`` (see module docstring)."""
    cfg = cfg or McdConfig()
    return mcd_dtw(mel_cepstra(a, sr_a, cfg), mel_cepstra(b, sr_b, cfg))
