"""HiFi-GAN vocoder: log-mel -> waveform, built on ESPnet's ``espnet2.gan_tts.hifigan`` modules.

The generator (transposed-conv upsampling + multi-receptive-field residual
blocks) and the multi-scale + multi-period discriminator are ESPnet's; this
module holds their configs, checks that the upsampling factors multiply to the
mel hop (8 x 5 x 4 x 3 = 480 at 24 kHz), and saves/loads the generator as
safetensors + JSON config. The V1 generator (channels 512, kernels 3/7/11,
dilations 1/3/5) has about 13.9 M parameters.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from decoders.io import load_config_json, load_weights, save_pretrained
from decoders.mel import MelConfig
from omni.config import check, option

KIND = "vocoder"
_INSTALL = ("pip install -c .venv/torch-constraint.txt --no-deps espnet humanfriendly typeguard torch_complex "
            "editdistance (see the Makefile's setup target)")


def _espnet_hifigan():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from espnet2.gan_tts import hifigan
    except ImportError as e:  # pragma: no cover - install problem
        raise ImportError(f"the HiFi-GAN vocoder needs ESPnet's modules; install them with: {_INSTALL}") from e
    return hifigan


@dataclass
class GeneratorConfig:
    """HiFi-GAN generator (V1 widths by default, upsampling for a 480-sample hop)."""

    channels: int = option(512, help="Channels after the input conv; halved at every upsampling layer (V1: 512).")
    kernel_size: int = option(7, help="Kernel of the input and output convs (odd).")
    upsample_scales: list[int] = option(
        default_factory=lambda: [8, 5, 4, 3], help="Upsampling factors; their product must equal mel.hop_length.")
    resblock_kernel_sizes: list[int] = option(
        default_factory=lambda: [3, 7, 11], help="Kernel of each multi-receptive-field residual block.")
    resblock_dilations: list[list[int]] = option(
        default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]], help="Dilations of each residual block.")

    def __post_init__(self) -> None:
        check(self.channels >= 2 ** len(self.upsample_scales), "channels",
              f"must be >= 2^{len(self.upsample_scales)} (halved at each upsampling), got {self.channels}")
        check(self.kernel_size % 2 == 1, "kernel_size", f"must be odd, got {self.kernel_size}")
        check(len(self.upsample_scales) >= 1 and all(s >= 1 for s in self.upsample_scales), "upsample_scales",
              "needs at least one factor, each >= 1")
        check(len(self.resblock_kernel_sizes) >= 1, "resblock_kernel_sizes", "needs at least one block")
        check(len(self.resblock_dilations) == len(self.resblock_kernel_sizes), "resblock_dilations",
              f"needs one dilation list per residual block ({len(self.resblock_kernel_sizes)})")


@dataclass
class DiscriminatorConfig:
    """HiFi-GAN multi-scale + multi-period discriminator (paper settings by default)."""

    scales: int = option(3, help="Multi-scale discriminators (raw audio, then x2 and x4 average-pooled).")
    periods: list[int] = option(default_factory=lambda: [2, 3, 5, 7, 11], help="Periods of the multi-period discriminators.")
    scale_channels: int = option(128, help="First-layer channels of each scale discriminator.")
    period_channels: int = option(32, help="First-layer channels of each period discriminator.")
    max_channels: int = option(1024, help="Channel cap of both kinds of discriminator.")

    def __post_init__(self) -> None:
        check(self.scales >= 0, "scales", "must be >= 0")
        check(all(p >= 2 for p in self.periods), "periods", "each must be >= 2")
        check(self.scales + len(self.periods) >= 1, "periods", "needs at least one discriminator in all")
        check(self.scale_channels >= 16 and self.scale_channels % 16 == 0, "scale_channels",
              "must be a multiple of 16 (grouped convs), >= 16")
        check(self.period_channels >= 1, "period_channels", "must be >= 1")
        check(self.max_channels >= max(self.scale_channels, self.period_channels), "max_channels",
              "must be >= scale_channels and period_channels")


@dataclass
class VocoderConfig:
    """HiFi-GAN vocoder: mel front end, generator, discriminators and loss weights."""

    mel: MelConfig = option(default_factory=MelConfig, help="Mel front end (the flow decoder's must match).")
    generator: GeneratorConfig = option(default_factory=GeneratorConfig, help="Generator.")
    discriminator: DiscriminatorConfig = option(default_factory=DiscriminatorConfig, help="Discriminators (training only).")
    lambda_mel: float = option(45.0, help="Weight of the L1 mel loss (HiFi-GAN: 45).")
    lambda_stft: float = option(
        0.0, help="Weight of the multi-resolution STFT loss (spectral convergence + log magnitude, ParallelWaveGAN) "
        "at stft_resolutions; 0 leaves it out (HiFi-GAN).")
    stft_resolutions: list[list[int]] = option(
        default_factory=lambda: [[512, 120, 480], [1024, 240, 960], [2048, 480, 1920]],
        help="(n_fft, hop, window) of each STFT of the multi-resolution loss (24 kHz defaults).")
    lambda_fm: float = option(2.0, help="Weight of the feature-matching loss (HiFi-GAN: 2).")
    lambda_adv: float = option(1.0, help="Weight of the least-squares adversarial loss.")

    def __post_init__(self) -> None:
        prod = math.prod(self.generator.upsample_scales)
        check(prod == self.mel.hop_length, "generator.upsample_scales",
              f"their product ({prod}) must equal mel.hop_length ({self.mel.hop_length})")
        check(all(len(r) == 3 and r[2] <= r[0] and min(r) >= 1 for r in self.stft_resolutions), "stft_resolutions",
              "each must be [n_fft, hop, window] with window <= n_fft")
        for name in ("lambda_mel", "lambda_stft", "lambda_fm", "lambda_adv"):
            check(getattr(self, name) >= 0, name, "must be >= 0")


def build_generator(cfg: VocoderConfig) -> nn.Module:
    """ESPnet ``HiFiGANGenerator``: (B, M, T) log-mel -> (B, 1, T hop) waveform in [-1, 1]."""
    g = cfg.generator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.nn.utils.weight_norm deprecation inside ESPnet
        return _espnet_hifigan().HiFiGANGenerator(
            in_channels=cfg.mel.n_mels, out_channels=1, channels=g.channels, kernel_size=g.kernel_size,
            upsample_scales=list(g.upsample_scales), upsample_kernel_sizes=[2 * s for s in g.upsample_scales],
            resblock_kernel_sizes=list(g.resblock_kernel_sizes),
            resblock_dilations=[list(d) for d in g.resblock_dilations])


def build_discriminator(cfg: VocoderConfig) -> nn.Module:
    """ESPnet ``HiFiGANMultiScaleMultiPeriodDiscriminator``: (B, 1, L) -> per discriminator, feature maps + score."""
    d = cfg.discriminator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _espnet_hifigan().HiFiGANMultiScaleMultiPeriodDiscriminator(
            scales=d.scales,
            scale_discriminator_params={
                "in_channels": 1, "out_channels": 1, "kernel_sizes": [15, 41, 5, 3], "channels": d.scale_channels,
                "max_downsample_channels": d.max_channels, "max_groups": 16, "bias": True,
                "downsample_scales": [2, 2, 4, 4, 1], "nonlinear_activation": "LeakyReLU",
                "nonlinear_activation_params": {"negative_slope": 0.1}},
            periods=list(d.periods),
            period_discriminator_params={
                "in_channels": 1, "out_channels": 1, "kernel_sizes": [5, 3], "channels": d.period_channels,
                "downsample_scales": [3, 3, 3, 3, 1], "max_downsample_channels": d.max_channels, "bias": True,
                "nonlinear_activation": "LeakyReLU", "nonlinear_activation_params": {"negative_slope": 0.1},
                "use_weight_norm": True, "use_spectral_norm": False})


class HiFiGANVocoder(nn.Module):
    """Log-mel -> waveform (generator only; the discriminators live in the training module).

    Args:
        cfg: vocoder settings.
    """

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.cfg = cfg
        self.generator = build_generator(cfg)
        self.folded: list[str] = []  # generator modules whose weight norm was folded (``fold_weight_norm``)

    @property
    def hop_length(self) -> int:
        """Output samples per mel frame."""
        return self.cfg.mel.hop_length

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, M, T) log-mel -> (B, T hop) waveform."""
        if mel.dim() != 3 or mel.shape[1] != self.cfg.mel.n_mels:
            raise ValueError(f"mel must be (B, {self.cfg.mel.n_mels}, T), got {tuple(mel.shape)}")
        return self.generator(mel).squeeze(1)  # (B, 1, L) -> (B, L)

    def fold_weight_norm(self) -> HiFiGANVocoder:
        """Fold the generator's weight norm into plain conv weights, for inference (returns self).

        Weight norm recomputes every conv weight as ``g v / |v|`` on each call; folded, the convs use the
        product directly (same outputs within float rounding). Idempotent. Inference only: the ``g`` / ``v``
        parameters a training optimizer holds are replaced. ``save_pretrained`` still writes the weight-norm
        form, so saved weights load into a folded or an unfolded vocoder alike.
        """
        if not self.folded:
            self.folded = [name for name, m in self.generator.named_modules() if hasattr(m, "weight_g")]
            self.generator.remove_weight_norm()
        return self

    def weight_norm_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict in the weight-norm form (``weight_g``, ``weight_v``), folded or not.

        A folded weight ``w`` is written as ``v = w``, ``g = |w|`` (norm over all but dim 0, as
        ``torch.nn.utils.weight_norm`` sets them), which gives back ``w`` when the weight norm is applied.
        """
        state = self.state_dict()
        for name in self.folded:
            w = state.pop(f"generator.{name}.weight")  # (out, in, k) conv, (in, out, k) transposed conv
            state[f"generator.{name}.weight_g"] = torch.norm_except_dim(w, 2, 0)  # (dim 0, 1, 1)
            state[f"generator.{name}.weight_v"] = w
        return state

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write the generator's ``model.safetensors`` (weight-norm form) and ``config.json``."""
        save_pretrained(directory, self, self.cfg, KIND, state_dict=self.weight_norm_state_dict())

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, fold_weight_norm: bool = True) -> HiFiGANVocoder:
        """Load a vocoder saved by ``save_pretrained`` (local directory only), in eval mode.

        Args:
            directory: the saved model.
            fold_weight_norm: fold the weight norm for inference (see ``fold_weight_norm``); pass False
                to fine-tune the loaded weights.
        """
        model = cls(load_config_json(directory, VocoderConfig, KIND))
        load_weights(directory, model)
        model.eval()
        return model.fold_weight_norm() if fold_weight_norm else model
