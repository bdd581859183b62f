"""The compute plan's measurements: seconds and FLOPs of one training step of each component at a few sizes.

A recipe with a wall-clock budget (the tiny recipe: 60 minutes on 2 CPU cores) is planned from these: for
each component (audio tokenizer, flow decoder, vocoder, the LLM stages' backbone) and size, one optimizer
step on a batch of the recipe's shape is timed (median of the repeats) and its FLOPs counted with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions, forward + backward). Each
figure is the step's achieved FLOP/s as a ratio to the machine's measured GEMM ceiling; its note carries
the parameters, GFLOP per step and seconds per step, which the plan multiplies by step counts.

Random weights and random inputs of the recipe's shapes: the cost of a step does not depend on what is learned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch.utils.flop_counter import FlopCounterMode

from omni.bench.core import BenchContext, Figure, Skip


@dataclass
class StepCost:
    """One component at one size: parameters, FLOPs and seconds of one training step."""

    component: str
    size: str
    parameters: int
    flops: float
    seconds: float


def measure_step(ctx: BenchContext, step: Callable[[], None]) -> tuple[float, float]:
    """(FLOPs of one call counted by FlopCounterMode, median seconds over the repeats after a warm-up)."""
    step()
    with FlopCounterMode(display=False) as counter:
        step()
    flops = float(counter.get_total_flops())
    times = sorted(ctx.time(step) for _ in range(ctx.repeats))
    return flops, times[len(times) // 2]


def _train_step(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()

    return step


def _tokenizer_loss(model: torch.nn.Module, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    fwd = model(wav, lengths)
    o = fwd.out
    mel = (o.decoded.mel[..., : o.mel.shape[-1]] - o.mel).abs().mean()
    return mel + o.commitment.sum() + fwd.ctc_log_probs.mean() + fwd.phoneme_log_probs.mean()


def tokenizer_costs(ctx: BenchContext, sizes: list[tuple[int, int]], batch: int, seconds: float) -> list[StepCost]:
    """Audio tokenizer (configs/tokenizer/tiny.yaml with the encoder and mel decoder at each (width, layers)),
    mel + commitment + BPE-CTC + phoneme-CTC losses, ``batch`` clips of ``seconds``."""
    from audio_tokenizer.ctc import CTCHead
    from audio_tokenizer.model import AudioTokenizer
    from audio_tokenizer.phonemes import PhonemeCTCHead
    from audio_tokenizer.train import TokenizerTrainModel
    from omni.bench.tokenizer import tiny_tokenizer_config
    from omni.config import from_data, to_data

    out = []
    wav = 0.1 * torch.randn(batch, int(seconds * 16000), device=ctx.device)
    lengths = torch.full((batch,), wav.shape[1], device=ctx.device)
    for width, layers in sizes:
        data = to_data(tiny_tokenizer_config())
        for part in ("encoder", "decoder"):
            data[part].update(d_model=width, layers=layers, heads=4, ffn_dim=4 * width)
        data["downsampler"]["dim"] = data["decoder"]["upsampler"]["dim"] = width
        cfg = from_data(type(tiny_tokenizer_config()), data)
        torch.manual_seed(0)
        model = TokenizerTrainModel(AudioTokenizer(cfg), None, CTCHead(cfg.quantizer.dim, 1024),
                                    PhonemeCTCHead(cfg.quantizer.dim, 50)).to(ctx.device).train()
        flops, secs = measure_step(ctx, _train_step(model, partial(_tokenizer_loss, model, wav, lengths)))
        out.append(StepCost("tokenizer", f"encoder {width} x {layers}", sum(p.numel() for p in model.parameters()),
                            flops, secs))
    return out


def _gan_step(gan: torch.nn.Module, wav: torch.Tensor, adversarial: bool) -> Callable[[], None]:
    """One vocoder step: the generator phase (mel loss alone, or with the discriminators), then, adversarial,
    the discriminator phase."""
    mel = gan.front_end(wav).detach()
    opt_g = torch.optim.AdamW(gan.vocoder.parameters(), lr=1e-4)
    opt_d = torch.optim.AdamW(gan.discriminator.parameters(), lr=1e-4)

    def step() -> None:
        opt_g.zero_grad(set_to_none=True)
        losses, y_hat = gan(wav, mel, "generator", adversarial=adversarial)
        losses["loss"].backward()
        opt_g.step()
        if adversarial:
            opt_d.zero_grad(set_to_none=True)
            gan(wav, mel, "discriminator", y_hat.detach())[0]["loss"].backward()
            opt_d.step()

    return step


def vocoder_costs(ctx: BenchContext, channels: list[int], batch: int, frames: int) -> list[StepCost]:
    """HiFi-GAN (configs/decoder/vocoder_tiny.yaml at each generator width): the mel-only generator step and
    the full GAN step (generator + discriminator phases), ``batch`` segments of ``frames`` mel frames."""
    from decoders.train_vocoder import VocoderGAN
    from decoders.vocoder import VocoderConfig
    from omni.bench.tokenizer import ROOT
    from omni.config import from_data, load_config, to_data

    base = to_data(load_config(ROOT / "configs" / "decoder" / "vocoder_tiny.yaml").model)
    out = []
    wav = 0.1 * torch.randn(batch, frames * 480, device=ctx.device)
    for ch in channels:
        base["generator"]["channels"] = ch
        torch.manual_seed(0)
        gan = VocoderGAN(from_data(VocoderConfig, base)).to(ctx.device).train()
        params = sum(p.numel() for p in gan.vocoder.parameters())
        for name, adversarial in (("mel-only", False), ("GAN", True)):
            flops, secs = measure_step(ctx, _gan_step(gan, wav, adversarial))
            out.append(StepCost("vocoder", f"{ch} channels, {name}", params, flops, secs))
    return out


def _flow_loss(flow: torch.nn.Module, *args: torch.Tensor) -> torch.Tensor:
    return flow(*args).loss


def flow_costs(ctx: BenchContext, sizes: list[tuple[int, int]], batch: int, tokens: int) -> list[StepCost]:
    """Flow decoder (configs/decoder/flow_tiny.yaml at each (channels, mid blocks)), one CFM step on ``batch``
    windows of ``tokens`` tokens."""
    from decoders.flow import FlowDecoder, FlowDecoderConfig
    from omni.bench.tokenizer import ROOT
    from omni.config import from_data, load_config, to_data

    base = to_data(load_config(ROOT / "configs" / "decoder" / "flow_tiny.yaml").model)
    out = []
    for channels, mids in sizes:
        base["estimator"].update(channels=channels, n_mid_blocks=mids)
        base["token_dim"] = channels
        cfg = from_data(FlowDecoderConfig, base)
        torch.manual_seed(0)
        flow = FlowDecoder(cfg).to(ctx.device).train()
        codes = torch.stack([torch.randint(0, k, (batch, tokens)) for k in cfg.codebook_sizes], -1).to(ctx.device)
        mel = torch.randn(batch, cfg.mel.n_mels, tokens * cfg.frames_per_token, device=ctx.device)
        mel_mask = torch.ones(batch, 1, mel.shape[-1], device=ctx.device)
        code_mask = torch.ones(batch, tokens, dtype=torch.bool, device=ctx.device)
        speaker = torch.ones(batch, dtype=torch.long, device=ctx.device)
        loss = partial(_flow_loss, flow, mel, mel_mask, codes, code_mask, speaker)
        flops, secs = measure_step(ctx, _train_step(flow, loss))
        out.append(StepCost("flow decoder", f"{channels} channels, {mids} mid blocks",
                            sum(p.numel() for p in flow.parameters()), flops, secs))
    return out


def _lm_loss(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids, labels=ids).loss


def backbone_costs(ctx: BenchContext, sizes: list[tuple[int, int]], batch: int, tokens: int) -> list[StepCost]:
    """The LLM stages' backbone: a Qwen2 causal LM (vocabulary 1024, as the tiny BPE) at each (hidden, layers),
    one next-token step on ``batch`` sequences of ``tokens`` tokens (the audio head and embeddings add little)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = []
    for hidden, layers in sizes:
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(Qwen2Config(vocab_size=1100, hidden_size=hidden, intermediate_size=3 * hidden,
                                             num_hidden_layers=layers, num_attention_heads=max(1, hidden // 32),
                                             num_key_value_heads=max(1, hidden // 64), tie_word_embeddings=False,
                                             pad_token_id=None)).to(ctx.device).train()
        ids = torch.randint(0, 1100, (batch, tokens), device=ctx.device)
        flops, secs = measure_step(ctx, _train_step(model, partial(_lm_loss, model, ids)))
        out.append(StepCost("LLM backbone", f"{hidden} x {layers} layers",
                            sum(p.numel() for p in model.parameters()), flops, secs))
    return out


def bench_plan(ctx: BenchContext) -> list[Figure]:
    if ctx.cuda:
        raise Skip("the compute plan is for the CPU recipe's budget")
    quick = ctx.cfg.quick
    costs = [
        *tokenizer_costs(ctx, [(32, 1)] if quick else [(96, 2), (192, 4), (256, 4)], 2 if quick else 12,
                         1.0 if quick else 3.0),
        *flow_costs(ctx, [(32, 1)] if quick else [(128, 2), (192, 4)], 2 if quick else 8, 8 if quick else 40),
        *vocoder_costs(ctx, [32] if quick else [64, 128, 256], 2 if quick else 8, 8 if quick else 24),
        *backbone_costs(ctx, [(64, 1)] if quick else [(128, 2), (256, 4), (384, 6)], 2 if quick else 16,
                        32 if quick else 256),
    ]
    peak = ctx.ceilings.matmul_flops if ctx.ceilings else None
    return [Figure(f"{c.component} step, {c.size}", c.flops / c.seconds / 1e9, "GFLOP/s",
                   None if peak is None else peak / 1e9, "GEMM ceiling",
                   note=f"{c.parameters / 1e6:.2f} M parameters, {c.flops / 1e9:.2f} GFLOP and {c.seconds:.3f} s per "
                   f"step") for c in costs]
