"""Speech-decoder commands: `omni train flow`, `omni train vocoder`, `omni decode`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from omni.cli.common import user_errors


@user_errors
def flow_cmd(
    config: Path = typer.Argument(..., help="Flow training YAML (kind: flow_train)."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. loop.max_steps=200 loop.output_dir=runs/x."),
) -> None:
    """Train the flow-matching mel decoder on manifests with cached codes (resumes when rerun)."""
    from decoders.train_flow import FlowTrainConfig, describe, train_flow
    from omni.config import load_config, save_config

    cfg = load_config(config, FlowTrainConfig, overrides=overrides or [])
    if _is_main():
        save_config(cfg, Path(cfg.loop.output_dir) / "config.yaml")
    t0 = time.perf_counter()
    result, final = train_flow(cfg)
    if not _is_main():
        return
    _report("flow decoder", result, final, time.perf_counter() - t0)
    if result.complete:
        from decoders.flow import FlowDecoder

        typer.echo(f"model: {describe(FlowDecoder.from_pretrained(final))}")


@user_errors
def vocoder_cmd(
    config: Path = typer.Argument(..., help="Vocoder training YAML (kind: vocoder_train)."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. loop.max_steps=200."),
) -> None:
    """Train the HiFi-GAN vocoder on manifest audio (resumes when rerun)."""
    from decoders.train_vocoder import VocoderTrainConfig, train_vocoder
    from omni.config import load_config, save_config

    cfg = load_config(config, VocoderTrainConfig, overrides=overrides or [])
    if _is_main():
        save_config(cfg, Path(cfg.loop.output_dir) / "config.yaml")
    t0 = time.perf_counter()
    result, final = train_vocoder(cfg)
    if _is_main():
        _report("vocoder", result, final, time.perf_counter() - t0)


def _is_main() -> bool:
    """True on the process that reports (rank 0 under torchrun / accelerate launch)."""
    return int(os.environ.get("RANK", "0")) == 0


def _report(name: str, result, final: Path, seconds: float) -> None:
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.last_metrics.items()) if "loss" in k or "eval/" in k
                        or k in ("cfm", "mel_l1"))
    if result.complete:
        typer.echo(f"{name}: finished at step {result.step} in {seconds:.0f} s; {metrics}; saved to {final}")
    else:
        typer.echo(f"{name}: stopped at step {result.step} (checkpointed; rerun the same command to resume)")


@user_errors
def decode_cmd(
    codes_file: Path = typer.Argument(..., help="Codes: .npy / .pt (T, K) array, .safetensors (with --key), or .json list."),
    out: Path = typer.Option(..., "--out", help="Output audio file (.wav, .flac)."),
    config: Path = typer.Option(None, "--config", help="Speech decoder YAML (kind: speech_decoder)."),
    flow: Path = typer.Option(None, "--flow", help="Flow decoder directory (overrides the config's flow_dir)."),
    vocoder: Path = typer.Option(None, "--vocoder", help="Vocoder directory (overrides the config's vocoder_dir)."),
    key: str = typer.Option(None, "--key", help="Tensor name inside a .safetensors codes shard."),
    stream: bool = typer.Option(False, "--stream/--whole", help="Decode chunk by chunk as a server would."),
    steps: int = typer.Option(None, "--steps", help="Euler steps (NFE); default from the flow config."),
    seed: int = typer.Option(0, "--seed", help="Noise seed."),
    mel_plot: Path = typer.Option(None, "--mel-plot", help="Also save the generated mel as a PNG."),
    reference: Path = typer.Option(None, "--reference", help="Audio of the codes, plotted above the output in --mel-plot."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides of the speech decoder config."),
) -> None:
    """Turn audio-token codes (T, 8) into a waveform with the flow decoder and the vocoder."""
    import torch

    from decoders.speech_decoder import SpeechDecoder, SpeechDecoderConfig, read_codes_file
    from omni.audio.io import save_audio
    from omni.config import from_data, load_config
    from omni.config.yaml_io import apply_overrides

    extra = list(overrides or [])
    extra += [f"flow_dir={flow}"] if flow else []
    extra += [f"vocoder_dir={vocoder}"] if vocoder else []
    extra += [f"n_steps={steps}"] if steps else []
    extra += [f"seed={seed}"]
    if config is not None:
        cfg = load_config(config, SpeechDecoderConfig, overrides=extra)
    else:
        data, origins = apply_overrides({}, {}, extra)
        cfg = from_data(SpeechDecoderConfig, data, origins, "command line")
    decoder = SpeechDecoder.from_config(cfg)
    codes = read_codes_file(codes_file, key)
    t0 = time.perf_counter()
    if stream:
        first = None
        parts = []
        for chunk in decoder.stream(codes[i:i + 1] for i in range(len(codes))):
            first = first if first is not None else time.perf_counter() - t0
            parts.append(chunk.samples)
        wav = torch.cat(parts)
    else:
        wav = decoder.synthesize(codes)
    seconds = time.perf_counter() - t0
    save_audio(out, wav.numpy(), decoder.sample_rate)
    duration = len(wav) / decoder.sample_rate
    note = f", first chunk after {first:.2f} s" if stream else ""
    typer.echo(f"{len(codes)} code frames -> {duration:.2f} s of audio in {seconds:.2f} s "
               f"(RTF {seconds / duration:.3f}{note}); wrote {out}")
    if mel_plot is not None:
        from decoders.plots import save_mel_plot

        mels = {}
        if reference is not None:
            from omni.audio.io import load_audio

            ref = torch.from_numpy(load_audio(reference, decoder.sample_rate).samples)
            mels[f"reference: {reference.name}"] = decoder.front_end(ref)[0]
        mels[f"decoded: {out.name}"] = decoder.front_end(wav)[0]
        save_mel_plot(mel_plot, mels, decoder.front_end.cfg.frame_rate,
                      f"{len(codes)} code frames, NFE {decoder.cfg.n_steps or decoder.flow.cfg.n_steps}, "
                      f"{'streamed' if stream else 'whole'}")
        typer.echo(f"wrote {mel_plot}")
