"""`omni model ...`: build, inspect and try omni models."""

from __future__ import annotations

from pathlib import Path

import typer

from omni.cli.common import echo_table, user_errors

app = typer.Typer(help="Build, inspect and try omni models.", no_args_is_help=True)


@app.command("build")
@user_errors
def build_cmd(
    config: Path = typer.Argument(..., help="Model YAML (kind: omni_model), e.g. configs/model/tiny.yaml."),
    out: Path = typer.Option(..., "--out", help="Directory to save the model to (save_pretrained)."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. tokenizer=runs/tokenizer."),
    seed: int = typer.Option(0, help="Seed of the random initialisation of new parts."),
) -> None:
    """Build a model from its config (pretrained parts from local paths, new parts initialised) and save it."""
    import torch

    from omni.config import load_config
    from omni.model import OmniModel, OmniModelConfig

    cfg = load_config(config, OmniModelConfig, overrides=overrides or [])
    torch.manual_seed(seed)
    model = OmniModel.from_config(cfg)
    _print_groups(model)
    model.save_pretrained(out)
    typer.echo(f"saved to {out}")


@app.command("info")
@user_errors
def info_cmd(path: Path = typer.Argument(..., help="Saved model directory.")) -> None:
    """Print the parameter groups, the special token ids and the audio-token format of a saved model."""
    from omni.model import OmniModel

    model = OmniModel.from_pretrained(path)
    _print_groups(model)
    ids = model.token_ids
    echo_table([(name, getattr(ids, name)) for name in ("audio_start", "audio_gen_start", "audio", "audio_end",
                                                        "image", "video", "im_end")], ("token", "id"))
    typer.echo(f"backbone {model.backbone.config.model_type}, {model.cfg.num_codebooks} codebooks "
               f"{model.cfg.codebook_sizes} at {model.cfg.frame_rate} Hz, vision: {model.vision is not None}")


@app.command("generate")
@user_errors
def generate_cmd(
    path: Path = typer.Argument(..., help="Saved model directory."),
    prompt: str = typer.Option(..., "--prompt", help="User message (text)."),
    system: str | None = typer.Option(None, help="System message."),
    speech: bool = typer.Option(False, help="Start the reply in speech (the prompt ends with the modality switch)."),
    config: Path | None = typer.Option(None, "--config", help="Generation YAML (kind: generation)."),
    overrides: list[str] = typer.Argument(None, help="Dotted generation overrides, e.g. max_new_tokens=64."),
    codes_out: Path | None = typer.Option(None, help="Save the generated audio frames here (safetensors)."),
) -> None:
    """Generate a reply (text, and audio frames when the model speaks), streaming the text."""
    import torch

    from omni.config import from_data, load_config
    from omni.config.yaml_io import apply_overrides
    from omni.model import AudioFrame, GenerationConfig, Message, OmniModel, TextPiece
    from omni.model.chat import SequenceBuilder

    if config is not None:
        gen = load_config(config, GenerationConfig, overrides=overrides or [])
    else:
        data, origins = apply_overrides({}, {}, list(overrides or []))
        gen = from_data(GenerationConfig, data, origins, "command line")
    model = OmniModel.from_pretrained(path)
    messages = ([Message("system", system)] if system else []) + [Message("user", prompt)]
    example = model.encode(messages, add_generation_prompt=True)
    if speech:
        b = SequenceBuilder(model.tokenizer, model.token_ids)
        b.tokens(example.input_ids.tolist() + [model.token_ids.audio_gen_start], target=False)
        example = b.build()
    frames = []
    for event in model.stream(example, gen):
        if isinstance(event, TextPiece):
            typer.echo(event.text, nl=False)
        elif isinstance(event, AudioFrame):
            frames.append(event.codes)
    typer.echo("")
    typer.echo(f"[{len(frames)} audio frames = {len(frames) / model.cfg.frame_rate:.2f} s]")
    if codes_out is not None and frames:
        from omni.data.codes import write_codes_shard

        write_codes_shard(codes_out, {"reply": torch.stack(frames)}, metadata={"frame_rate": str(model.cfg.frame_rate)})
        typer.echo(f"frames saved to {codes_out} (key 'reply')")


def _print_groups(model) -> None:
    groups = model.parameter_groups()
    echo_table([(g, f"{sum(p.numel() for _, p in ps):,}") for g, ps in groups.items()], ("group", "parameters"))
