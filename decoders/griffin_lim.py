"""Griffin-Lim: log-mel -> waveform with no learned weights, the baseline a trained vocoder is compared with.

The mel's magnitudes are mapped back to a linear spectrogram by non-negative least squares on the
filterbank (``librosa.feature.inverse.mel_to_stft``), then a phase is found by Griffin-Lim's alternating
projections (``librosa.griffinlim``, with momentum). Same interface as :class:`~decoders.vocoder.HiFiGANVocoder`
at inference: ``(B, M, T)`` log-mel in the shared front end's convention (:mod:`decoders.mel`) ->
``(B, T * hop)`` waveform.

It is slow (tens of FFTs per frame, NNLS per frame) and buzzy, but intelligible: a trained vocoder that
a speech recogniser understands less well than Griffin-Lim has not learned to vocode yet.
"""

from __future__ import annotations

import numpy as np
import torch

from decoders.mel import MelConfig


class GriffinLimVocoder:
    """Log-mel -> waveform by mel inversion and Griffin-Lim phase retrieval.

    Args:
        mel: the mel front end the log-mels were computed with.
        n_iter: Griffin-Lim iterations (32 is librosa's default).
    """

    def __init__(self, mel: MelConfig | None = None, n_iter: int = 32):
        if n_iter < 1:
            raise ValueError(f"n_iter must be >= 1, got {n_iter}")
        self.mel = mel or MelConfig()
        self.n_iter = n_iter

    @property
    def hop_length(self) -> int:
        """Output samples per mel frame."""
        return self.mel.hop_length

    @property
    def sample_rate(self) -> int:
        """Rate of the output waveform."""
        return self.mel.sample_rate

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, M, T) natural-log mel magnitudes -> (B, T * hop) float32 waveform."""
        import librosa

        m = self.mel
        if mel.dim() != 3 or mel.shape[1] != m.n_mels:
            raise ValueError(f"mel must be (B, {m.n_mels}, T), got {tuple(mel.shape)}")
        out = []
        for x in mel.detach().float().cpu().numpy():  # (M, T)
            frames = x.shape[-1]
            stft = librosa.feature.inverse.mel_to_stft(np.exp(x), sr=m.sample_rate, n_fft=m.n_fft, power=1.0,
                                                       fmin=m.fmin, fmax=m.fmax)  # (n_fft // 2 + 1, T)
            y = librosa.griffinlim(stft, n_iter=self.n_iter, hop_length=m.hop_length, win_length=m.win_length,
                                   n_fft=m.n_fft, center=True, random_state=0)  # ((T - 1) * hop,)
            # librosa's frame i is centred on sample i * hop, the front end's on i * hop + hop / 2
            y = np.pad(y, (m.hop_length // 2, 0))[: frames * m.hop_length]
            y = np.pad(y, (0, frames * m.hop_length - len(y)))  # (T * hop,)
            out.append(torch.from_numpy(np.clip(y, -1.0, 1.0).astype(np.float32)))
        return torch.stack(out)
