"""Losses of the speech decoder as pure functions: flow matching, mel L1, HiFi-GAN adversarial terms.

Every function returns a SUM over its loss units (mel frames or examples), so
the shared training loop can normalise exactly over processes and
accumulation steps; divide by the unit count for the usual mean.

The adversarial (least-squares) and feature-matching terms call ESPnet's
HiFi-GAN loss modules (``espnet2.gan_tts.hifigan.loss``), which average over
the discriminators (and, for feature matching, over their layers); they are
stateless, so one instance of each is kept here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@dataclass
class CFMPath:
    """A point on the optimal-transport conditional path and its target velocity.

    Attributes:
        y: (B, M, T) ``(1 - (1 - sigma_min) t) z + t x1``.
        u: (B, M, T) ``x1 - (1 - sigma_min) z`` (constant along the path).
    """

    y: torch.Tensor
    u: torch.Tensor


def ot_cfm_path(x1: torch.Tensor, z: torch.Tensor, t: torch.Tensor, sigma_min: float) -> CFMPath:
    """Optimal-transport conditional flow (Lipman et al. 2023, eq. 20-23), as in Matcha-TTS.

    Args:
        x1: (B, M, T) data (target mel).
        z: (B, M, T) noise sample x0 ~ N(0, I).
        t: (B,) times in [0, 1].
        sigma_min: width of the path's end point around x1.
    """
    t = t.view(-1, 1, 1).to(x1.dtype)  # (B, 1, 1)
    y = (1 - (1 - sigma_min) * t) * z + t * x1
    u = x1 - (1 - sigma_min) * z
    return CFMPath(y=y, u=u)


def flow_matching_loss(pred: torch.Tensor, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over valid frames of the per-frame mean squared velocity error.

    ``loss / mask.sum()`` is Matcha-TTS's ``mse(pred * mask, u * mask, 'sum') / (sum(mask) * M)``.

    Args:
        pred: (B, M, T) estimated velocity.
        u: (B, M, T) target velocity.
        mask: (B, 1, T) 1 on frames that count, 0 elsewhere.

    Returns:
        scalar tensor.
    """
    err = (pred - u).pow(2).mean(dim=1, keepdim=True)  # (B, 1, T)
    return (err * mask).sum()


def mel_l1_loss(mel_hat: torch.Tensor, mel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over frames of the per-frame mean absolute log-mel error.

    Args:
        mel_hat, mel: (B, M, T) log-mel spectrograms.
        mask: optional (B, 1, T) frame mask.

    Returns:
        scalar tensor; divide by the frame count for HiFi-GAN's L1 mel loss.
    """
    err = (mel_hat - mel).abs().mean(dim=1, keepdim=True)  # (B, 1, T)
    return (err * mask).sum() if mask is not None else err.sum()


@functools.cache
def _espnet_losses():
    try:
        from espnet2.gan_tts.hifigan.loss import (
            DiscriminatorAdversarialLoss,
            FeatureMatchLoss,
            GeneratorAdversarialLoss,
        )
    except ImportError as e:  # pragma: no cover - install problem
        raise ImportError(
            "the HiFi-GAN losses need ESPnet; install it without touching torch: pip install -c "
            ".venv/torch-constraint.txt --no-deps espnet humanfriendly typeguard torch_complex editdistance"
        ) from e
    return (GeneratorAdversarialLoss(loss_type="mse"), DiscriminatorAdversarialLoss(loss_type="mse"),
            FeatureMatchLoss(average_by_layers=True, average_by_discriminators=True))


Outputs = list[list[torch.Tensor]]
"""Discriminator outputs: per sub-discriminator, its feature maps then its final score (B, 1, ...)."""


def generator_adversarial_loss(fake_outputs: Outputs) -> torch.Tensor:
    """Least-squares generator loss ``mean_d E[(D_d(G(s)) - 1)^2]``, averaged over discriminators.

    Args:
        fake_outputs: discriminator outputs on generated audio.

    Returns:
        scalar: the batch MEAN (multiply by the batch size for a sum over examples).
    """
    return _espnet_losses()[0](fake_outputs)


def discriminator_adversarial_loss(fake_outputs: Outputs, real_outputs: Outputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares discriminator loss terms ``E[(D(x) - 1)^2]`` and ``E[D(G(s))^2]``.

    Returns:
        (real, fake) scalars, each the batch mean averaged over discriminators.
    """
    return _espnet_losses()[1](fake_outputs, real_outputs)


def feature_matching_loss(fake_outputs: Outputs, real_outputs: Outputs) -> torch.Tensor:
    """L1 between discriminator feature maps of generated and real audio (real side detached).

    Returns:
        scalar: mean over layers and discriminators of each layer's mean absolute difference.
    """
    return _espnet_losses()[2](fake_outputs, real_outputs)


def stft_magnitude(wav: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """|STFT| of (B, S) waveforms with a Hann window (centred frames): (B, n_fft // 2 + 1, frames)."""
    spec = torch.stft(wav.float(), n_fft, hop_length=hop, win_length=win,
                      window=torch.hann_window(win, device=wav.device), center=True, return_complex=True)
    return torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-7)


def multi_resolution_stft_loss(wav_hat: torch.Tensor, wav: torch.Tensor,
                               resolutions: list[tuple[int, int, int]]) -> torch.Tensor:
    """ParallelWaveGAN's multi-resolution STFT loss, summed over the examples of the batch.

    For each resolution (n_fft, hop, win): spectral convergence ``||S - S_hat||_F / ||S||_F`` plus the mean
    absolute log-magnitude error ``mean |log S - log S_hat|``, per example; the two are averaged over the
    resolutions. The fine resolutions resolve the harmonics of the voice, which a mel loss alone teaches slowly.

    Args:
        wav_hat, wav: (B, S) generated and real waveforms.
        resolutions: (n_fft, hop, win) triples.

    Returns:
        scalar: sum over the B examples (divide by B for ParallelWaveGAN's batch mean).
    """
    total = wav.new_zeros(wav.shape[0])
    for n_fft, hop, win in resolutions:
        s_hat, s = stft_magnitude(wav_hat, n_fft, hop, win), stft_magnitude(wav, n_fft, hop, win)  # (B, F, N)
        sc = torch.linalg.norm((s - s_hat).flatten(1), dim=1) / torch.linalg.norm(s.flatten(1), dim=1)  # (B,)
        mag = (s.log() - s_hat.log()).abs().flatten(1).mean(1)  # (B,)
        total = total + sc + mag
    return (total / len(resolutions)).sum()
