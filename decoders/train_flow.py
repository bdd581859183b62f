"""Training the flow-matching mel decoder on the shared training loop (``omni train flow CONFIG``).

Data: manifests whose rows carry ``audio`` and cached ``codes`` (``omni data tokenize``). Each step scores
random windows of at most ``max_tokens`` tokens; the loss unit is a scored mel frame. Evaluation (every
``loop.eval_every`` steps and at the end) computes the dev CFM loss at fixed times and noise, synthesises
the first dev utterances with ``eval_steps`` Euler steps, reports their mel L1 to the reference, and logs
a mel figure and audio (through ``vocoder_dir`` when given, else Griffin-Lim) to TensorBoard and
``RUN/samples/``. The final model is saved to ``RUN/model`` (safetensors + config.json).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from decoders.data import FlowBatch, FlowDataset, collate_flow
from decoders.flow import FlowDecoder, FlowDecoderConfig
from decoders.mel import MelFrontEnd
from decoders.plots import mel_figure, save_mel_plot
from omni.config import check, option
from omni.training.config import LoopConfig, OptimConfig
from omni.training.optim import build_optimizer, build_scheduler
from omni.training.trainer import StepOutput, TrainContext, Trainer, TrainResult


@dataclass
class FlowTrainConfig:
    """``omni train flow``: model, data, loop and optimizer of a flow-decoder run."""

    loop: LoopConfig = option(help="Training loop: output_dir, steps, batch size, logging, checkpoints.")
    train_manifests: list[str] = option(help="JSONL manifests with audio + codes to train on.")
    dev_manifest: str | None = option(None, help="JSONL manifest with audio + codes for evaluation and samples.")
    model: FlowDecoderConfig = option(default_factory=FlowDecoderConfig, help="Flow decoder.")
    optim: OptimConfig = option(default_factory=lambda: OptimConfig(lr=1e-4, warmup_steps=1000),
                                help="AdamW and schedule.")
    max_tokens: int = option(150, help="Longest training window in tokens (150 = 12 s at 12.5 Hz).")
    max_misalignment: int = option(3, help="Tokens by which codes and audio lengths may differ before it is an error.")
    eval_examples: int = option(4, help="Dev utterances scored and synthesised at each evaluation.")
    eval_steps: int = option(10, help="Euler steps (NFE) for dev synthesis.")
    vocoder_dir: str | None = option(None, help="Trained vocoder for dev audio samples; Griffin-Lim when unset.")
    codebooks_from: str | None = option(
        None, help="Saved audio tokenizer whose RVQ codebooks become the token encoder's tables at the start "
        "(its levels must equal model.codebook_sizes; model.token_dim at least its quantizer dim).")

    def __post_init__(self) -> None:
        check(len(self.train_manifests) >= 1, "train_manifests", "needs at least one manifest")
        check(self.max_tokens >= 1, "max_tokens", "must be >= 1")
        check(self.max_misalignment >= 0, "max_misalignment", "must be >= 0")
        check(self.eval_examples >= 0, "eval_examples", "must be >= 0")
        check(self.eval_steps >= 1, "eval_steps", "must be >= 1")


class FlowTask:
    """Scores a :class:`FlowBatch`: CFM loss summed over scored frames."""

    phases = ("main",)

    def batch_weight(self, batch: FlowBatch) -> float:
        return batch.loss_frames

    def compute_loss(self, model: torch.nn.Module, batch: FlowBatch, phase: str) -> StepOutput:
        out = model(batch.mel, batch.mel_mask, batch.codes, batch.code_mask, batch.speaker, batch.prompt_frames)
        sums = {"cfm": (out.cfm if out.cfm is not None else out.loss).detach()}
        if out.prior is not None:
            sums["prior"] = out.prior
        return StepOutput(loss=out.loss, sums=sums,
                          stats={"prompt_frames": float(batch.prompt_frames.float().mean())})


def griffin_lim(mel: torch.Tensor, front_end: MelFrontEnd, n_iter: int = 32) -> torch.Tensor:
    """Rough waveform from a log-mel (M, T) by librosa's mel inversion + Griffin-Lim (no vocoder needed)."""
    import librosa

    c = front_end.cfg
    wav = librosa.feature.inverse.mel_to_audio(mel.exp().cpu().numpy(), sr=c.sample_rate, n_fft=c.n_fft,
                                               hop_length=c.hop_length, win_length=c.win_length, power=1.0,
                                               n_iter=n_iter, fmin=c.fmin, fmax=c.fmax)
    return torch.from_numpy(wav).float()


class FlowEvaluator:
    """Dev loss, dev synthesis mel L1, and samples (figure + audio) at each evaluation."""

    def __init__(self, cfg: FlowTrainConfig, dev: FlowDataset | None, front_end: MelFrontEnd):
        self.cfg, self.dev, self.front_end = cfg, dev, front_end
        self.vocoder = None
        if cfg.vocoder_dir:
            from decoders.vocoder import HiFiGANVocoder

            self.vocoder = HiFiGANVocoder.from_pretrained(cfg.vocoder_dir)

    def __call__(self, model: FlowDecoder, ctx: TrainContext) -> dict[str, float]:
        if self.dev is None or self.cfg.eval_examples == 0:
            return {}
        g = torch.Generator().manual_seed(1234)
        loss_sum = frames = l1_sum = l1_frames = 0.0
        device = next(model.parameters()).device
        first = None
        for i in range(min(self.cfg.eval_examples, len(self.dev))):
            ex = self.dev[i]
            batch = collate_flow([ex], self.front_end.floor_value)
            mel, mask = batch.mel.to(device), batch.mel_mask.to(device)
            mu = model.encoder(batch.codes.to(device), batch.code_mask.to(device))
            spks = model.speaker_condition(batch.speaker.to(device))
            t = torch.rand(1, generator=g).to(device)
            z = torch.randn(mel.shape, generator=g).to(device)
            out = model.cfm.compute_loss(mel, mask, mu, spks, None, t=t, z=z)
            loss_sum, frames = loss_sum + float(out.loss), frames + float(out.frames)
            gen = model.generate(ex.codes.to(device), speaker=torch.tensor(ex.speaker), n_steps=self.cfg.eval_steps,
                                 seed=i)  # (M, T)
            l1_sum += float((gen.cpu() - ex.mel).abs().mean(dim=0).sum())
            l1_frames += ex.mel.shape[1]
            if first is None:
                first = (ex.mel, gen.cpu())
        if ctx.is_main and first is not None:
            self._samples(first, ctx)
        return {"cfm": loss_sum / frames, "mel_l1": l1_sum / l1_frames}

    def _samples(self, mels: tuple[torch.Tensor, torch.Tensor], ctx: TrainContext) -> None:
        ref, gen = mels
        rate = self.front_end.cfg.frame_rate
        with torch.no_grad():
            wav = self.vocoder(gen.unsqueeze(0))[0] if self.vocoder is not None else griffin_lim(gen, self.front_end)
        from omni.audio.io import save_audio

        out = ctx.run_dir / "samples"
        save_audio(out / f"flow-step{ctx.step:08d}.wav", wav.numpy(), self.front_end.cfg.sample_rate)
        title = f"dev[0] at step {ctx.step}, {self.cfg.eval_steps} Euler steps"
        save_mel_plot(out / f"flow-step{ctx.step:08d}.png", {"reference": ref, "generated": gen}, rate, title)
        writer = ctx.writer()
        writer.add_figure("dev/mel", mel_figure({"reference": ref, "generated": gen}, rate, title), ctx.step)
        writer.add_audio("dev/audio", wav.clamp(-1, 1).unsqueeze(0), ctx.step, sample_rate=self.front_end.cfg.sample_rate)


def train_flow(cfg: FlowTrainConfig) -> tuple[TrainResult, Path]:
    """Run (or resume) a flow-decoder training; returns the result and the final model directory."""
    torch.manual_seed(cfg.loop.seed)
    model = FlowDecoder(cfg.model)
    if cfg.codebooks_from is not None:
        from audio_tokenizer.model import AudioTokenizer

        try:
            model.encoder.load_codebooks(AudioTokenizer.from_pretrained(cfg.codebooks_from).quantizer.codebook_vectors())
        except ValueError as e:
            raise ValueError(f"codebooks_from '{cfg.codebooks_from}': {e}") from None
    front_end = MelFrontEnd(cfg.model.mel)
    m = cfg.model
    dataset = FlowDataset(cfg.train_manifests, front_end, m.codebook_sizes, m.frames_per_token, cfg.max_tokens,
                          m.speakers, cfg.max_misalignment)
    dev = (FlowDataset([cfg.dev_manifest], front_end, m.codebook_sizes, m.frames_per_token, None, m.speakers,
                       cfg.max_misalignment) if cfg.dev_manifest else None)
    collate = functools.partial(collate_flow, pad_value=front_end.floor_value, prompt_prob=m.prompt_prob,
                                prompt_max_ratio=m.prompt_max_ratio)
    opt = build_optimizer(model.parameters(), cfg.optim)
    sched = build_scheduler(opt, cfg.optim, cfg.loop.max_steps)
    trainer = Trainer(cfg.loop, FlowTask(), model, dataset, collate, {"main": opt}, {"main": sched},
                      evaluate=FlowEvaluator(cfg, dev, front_end), grad_clip=cfg.optim.grad_clip)
    result = trainer.fit()
    final = Path(cfg.loop.output_dir) / "model"
    if result.complete and trainer.acc.is_main_process:
        trainer.acc.unwrap_model(trainer.model).save_pretrained(final)
    return result, final


def describe(model: Any) -> str:
    """'N.NN M parameters' of a module."""
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters"
