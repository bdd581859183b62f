"""Training the HiFi-GAN vocoder on the shared training loop (``omni train vocoder CONFIG``).

Two phases per step (two optimizers), in HiFi-GAN's order of use of the generated audio:

1. ``generator``: y_hat = G(mel); loss = lambda_mel L1(mel(y_hat), mel) [+ lambda_stft MR-STFT(y_hat, y)]
   + lambda_adv LS-adv(D(y_hat)) + lambda_fm FM(D(y_hat), D(y)); the generated audio is kept (detached) for
   phase 2.
2. ``discriminator``: LS loss on D(y) (-> 1) and D(y_hat) (-> 0) with the y_hat of phase 1.

The first ``adversarial_start`` steps train the generator on the mel loss alone (as ParallelWaveGAN
starts its discriminator late): no discriminator runs, which makes a step 4-10x cheaper on a CPU
(the discriminators cost more than a small generator), and the mel loss alone already makes speech a
recogniser understands; the adversarial and feature-matching terms then refine it.

Loss unit: one training segment (the batch means of the ESPnet losses times the batch size). Only audio is
needed (any manifest rows with top-level ``audio``). Evaluation re-synthesises the first dev clips whole,
reports their mel L1 and logs a mel figure and the audio; the generator is saved to ``RUN/model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from decoders.data import VocoderBatch, VocoderDataset, collate_vocoder
from decoders.losses import (
    discriminator_adversarial_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    mel_l1_loss,
    multi_resolution_stft_loss,
)
from decoders.mel import MelFrontEnd
from decoders.plots import mel_figure, save_mel_plot
from decoders.vocoder import HiFiGANVocoder, VocoderConfig, build_discriminator
from omni.config import check, option
from omni.training.config import LoopConfig, OptimConfig
from omni.training.optim import build_optimizer, build_scheduler
from omni.training.trainer import StepOutput, TrainContext, Trainer, TrainResult


def _gan_optim() -> OptimConfig:
    return OptimConfig(lr=2e-4, betas=(0.8, 0.99), weight_decay=0.0, schedule="constant", grad_clip=0.0)


@dataclass
class VocoderTrainConfig:
    """``omni train vocoder``: model, data, loop and the two optimizers of a HiFi-GAN run."""

    loop: LoopConfig = option(help="Training loop: output_dir, steps, batch size, logging, checkpoints.")
    train_manifests: list[str] = option(help="JSONL manifests with top-level audio (any task) to train on.")
    dev_manifest: str | None = option(None, help="JSONL manifest of clips re-synthesised at evaluation.")
    model: VocoderConfig = option(default_factory=VocoderConfig, help="Vocoder and loss weights.")
    optim_g: OptimConfig = option(default_factory=_gan_optim, help="Generator AdamW (HiFi-GAN: 2e-4, betas 0.8/0.99).")
    optim_d: OptimConfig = option(default_factory=_gan_optim, help="Discriminator AdamW.")
    segment_frames: int = option(32, help="Mel frames per training segment (32 x 480 = 15360 samples at 24 kHz).")
    eval_examples: int = option(4, help="Dev clips re-synthesised at each evaluation.")
    adversarial_start: int = option(
        0, help="Steps at the start that train the generator on the mel loss alone (no discriminator forward, its "
        "optimizer idle; 4-10x cheaper per step on a CPU); the adversarial and feature-matching losses and the "
        "discriminator's training start after. 0: GAN training from the first step (HiFi-GAN).")

    def __post_init__(self) -> None:
        check(len(self.train_manifests) >= 1, "train_manifests", "needs at least one manifest")
        check(self.adversarial_start >= 0, "adversarial_start", "must be >= 0")
        check(self.segment_frames >= 4, "segment_frames", "must be >= 4")
        check(self.eval_examples >= 0, "eval_examples", "must be >= 0")


class VocoderGAN(nn.Module):
    """Generator + discriminators + mel front end: one module for the training loop (and DDP).

    ``forward(wav, mel, phase, fake, adversarial)`` returns the phase's losses as batch SUMS and the generated
    audio.
    """

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.cfg = cfg
        self.vocoder = HiFiGANVocoder(cfg)
        self.discriminator = build_discriminator(cfg)
        self.front_end = MelFrontEnd(cfg.mel)

    def forward(self, wav: torch.Tensor, mel: torch.Tensor, phase: str, fake: torch.Tensor | None = None,
                adversarial: bool = True) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Losses of one phase.

        Args:
            wav: (B, S) real segments.
            mel: (B, M, S / hop) their log-mels.
            phase: "generator" or "discriminator".
            fake: (B, S) generated audio (discriminator phase).
            adversarial: generator phase: add the adversarial and feature-matching terms (False: the mel
                loss alone, the discriminator is not run).

        Returns:
            ({"loss", and its terms}: each a sum over the B segments, generated audio (B, S)).
        """
        b = wav.shape[0]
        if phase == "generator":
            y_hat = self.vocoder(mel)  # (B, S)
            mel_l1 = mel_l1_loss(self.front_end(y_hat), mel) / mel.shape[-1]  # sum over examples of mean L1
            c = self.cfg
            terms = {"mel_l1": mel_l1}
            base = c.lambda_mel * mel_l1
            if c.lambda_stft > 0:
                terms["stft"] = multi_resolution_stft_loss(y_hat, wav, [tuple(r) for r in c.stft_resolutions])
                base = base + c.lambda_stft * terms["stft"]
            if not adversarial:
                return {"loss": base, **terms}, y_hat
            fake_out = self.discriminator(y_hat.unsqueeze(1))
            with torch.no_grad():
                real_out = self.discriminator(wav.unsqueeze(1))
            adv = generator_adversarial_loss(fake_out) * b
            fm = feature_matching_loss(fake_out, real_out) * b
            loss = base + c.lambda_adv * adv + c.lambda_fm * fm
            return {"loss": loss, **terms, "adv_g": adv, "fm": fm}, y_hat
        if fake is None:
            raise ValueError("the discriminator phase needs the generated audio of the generator phase")
        real, fake_l = discriminator_adversarial_loss(self.discriminator(fake.unsqueeze(1)),
                                                      self.discriminator(wav.unsqueeze(1)))
        return {"loss": (real + fake_l) * b, "d_real": real * b, "d_fake": fake_l * b}, fake


class VocoderTask:
    """Two-phase GAN task; keeps each micro-batch's generated audio from phase 1 for phase 2.

    Args:
        adversarial_start: steps (0-based) before which only the generator phase runs, on the mel loss.
    """

    phases = ("generator", "discriminator")

    def __init__(self, adversarial_start: int = 0) -> None:
        self._fake: dict[int, torch.Tensor] = {}
        self.adversarial_start = adversarial_start
        self._adversarial = adversarial_start == 0

    def phases_at(self, step: int) -> tuple[str, ...]:
        """Both phases from ``adversarial_start`` on; the generator alone before."""
        self._adversarial = step >= self.adversarial_start
        return self.phases if self._adversarial else ("generator",)

    def batch_weight(self, batch: VocoderBatch) -> float:
        return float(batch.wav.shape[0])

    def compute_loss(self, model: nn.Module, batch: VocoderBatch, phase: str) -> StepOutput:
        fake = self._fake.pop(id(batch), None) if phase == "discriminator" else None
        losses, y_hat = model(batch.wav, batch.mel, phase, fake, adversarial=self._adversarial)
        if phase == "generator" and self._adversarial:
            self._fake[id(batch)] = y_hat.detach()
        return StepOutput(loss=losses["loss"], sums={k: v.detach() for k, v in losses.items() if k != "loss"})


class VocoderEvaluator:
    """Copy-synthesis of the first dev clips: mel L1, figure and audio."""

    def __init__(self, cfg: VocoderTrainConfig, dev: VocoderDataset | None):
        self.cfg, self.dev = cfg, dev

    def __call__(self, model: VocoderGAN, ctx: TrainContext) -> dict[str, float]:
        if self.dev is None or self.cfg.eval_examples == 0:
            return {}
        device = next(model.parameters()).device
        l1_sum = frames = 0.0
        first = None
        for i in range(min(self.cfg.eval_examples, len(self.dev))):
            wav, mel = self.dev[i]
            y_hat = model.vocoder(mel.unsqueeze(0).to(device))  # (1, S)
            mel_hat = model.front_end(y_hat)[0].cpu()
            l1_sum += float(mel_l1_loss(mel_hat.unsqueeze(0), mel.unsqueeze(0)))
            frames += mel.shape[-1]
            if first is None:
                first = (mel, mel_hat, y_hat[0].cpu())
        if ctx.is_main and first is not None:
            mel, mel_hat, y_hat = first
            rate, sr = self.cfg.model.mel.frame_rate, self.cfg.model.mel.sample_rate
            mels = {"reference": mel, "re-synthesised": mel_hat}
            title = f"dev[0] copy-synthesis at step {ctx.step}"
            from omni.audio.io import save_audio

            out = ctx.run_dir / "samples"
            save_audio(out / f"vocoder-step{ctx.step:08d}.wav", y_hat.numpy(), sr)
            save_mel_plot(out / f"vocoder-step{ctx.step:08d}.png", mels, rate, title)
            writer = ctx.writer()
            writer.add_figure("dev/mel", mel_figure(mels, rate, title), ctx.step)
            writer.add_audio("dev/audio", y_hat.clamp(-1, 1).unsqueeze(0), ctx.step, sample_rate=sr)
        return {"mel_l1": l1_sum / frames}


def vocoder_data(cfg: VocoderTrainConfig) -> tuple[VocoderDataset, VocoderDataset | None]:
    """The training and dev data sets, with a mel front end of their own: the model's moves to the GPU with the
    model, and a DataLoader worker process cannot use CUDA (it failed on a GPU with loop.num_workers > 0)."""
    front_end = MelFrontEnd(cfg.model.mel)
    dev = VocoderDataset([cfg.dev_manifest], front_end, None) if cfg.dev_manifest else None
    return VocoderDataset(cfg.train_manifests, front_end, cfg.segment_frames), dev


def train_vocoder(cfg: VocoderTrainConfig) -> tuple[TrainResult, Path]:
    """Run (or resume) a vocoder training; returns the result and the final generator directory."""
    torch.manual_seed(cfg.loop.seed)
    model = VocoderGAN(cfg.model)
    dataset, dev = vocoder_data(cfg)
    opt_g = build_optimizer(model.vocoder.parameters(), cfg.optim_g)
    opt_d = build_optimizer(model.discriminator.parameters(), cfg.optim_d)
    scheds = {"generator": build_scheduler(opt_g, cfg.optim_g, cfg.loop.max_steps),
              "discriminator": build_scheduler(opt_d, cfg.optim_d, cfg.loop.max_steps)}
    trainer = Trainer(cfg.loop, VocoderTask(cfg.adversarial_start), model, dataset, collate_vocoder,
                      {"generator": opt_g, "discriminator": opt_d}, scheds, evaluate=VocoderEvaluator(cfg, dev),
                      grad_clip={"generator": cfg.optim_g.grad_clip, "discriminator": cfg.optim_d.grad_clip})
    result = trainer.fit()
    final = Path(cfg.loop.output_dir) / "model"
    if result.complete and trainer.acc.is_main_process:
        trainer.acc.unwrap_model(trainer.model).vocoder.save_pretrained(final)
    return result, final
