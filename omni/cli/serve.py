"""`omni serve` and `omni demo`: the voice chat UI and the OpenAI-compatible API on one local server."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from omni.cli.common import user_errors

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "serve" / "default.yaml"


def _config(config: Path | None, overrides: list[str] | None, host: str | None, port: int | None,
            api_key: str | None):
    from dataclasses import replace

    from omni.config import from_data, load_config
    from omni.config.yaml_io import apply_overrides
    from serve.config import ServeConfig

    if config is not None or DEFAULT_CONFIG.is_file():
        cfg = load_config(config or DEFAULT_CONFIG, ServeConfig, overrides=overrides or [])
    else:
        data, origins = apply_overrides({}, {}, list(overrides or []))
        cfg = from_data(ServeConfig, data, origins, "command line")
    changes = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    key = api_key or os.environ.get("OMNI_API_KEY") or cfg.api_key
    return replace(cfg, **changes, api_key=key or None)


def _serve(checkpoint: Path, cfg) -> None:
    from serve.pipeline import SpeechChat
    from serve.server import build_server, run

    typer.echo(f"loading {checkpoint} ...")
    engine = SpeechChat.from_checkpoint(checkpoint, cfg)
    app = build_server(engine)
    where = f"http://{cfg.host}:{cfg.port}"
    typer.echo(f"voice chat UI: {where}/   OpenAI-compatible API: {where}/v1   "
               f"(API key {'required' if cfg.api_key else 'not required'})")
    if cfg.host not in ("127.0.0.1", "localhost", "::1") and not cfg.api_key:
        typer.secho("warning: serving beyond this machine without an API key", fg=typer.colors.YELLOW, err=True)
    run(app, cfg)


CHECKPOINT_HELP = "Checkpoint bundle directory (omni bundle assemble / omni bundle tiny)."


@user_errors
def serve_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help=CHECKPOINT_HELP),
    host: str | None = typer.Option(None, help="Interface to bind (default 127.0.0.1: this machine only)."),
    port: int | None = typer.Option(None, help="TCP port (default 7860)."),
    api_key: str | None = typer.Option(None, "--api-key", help="Key the API requires (default: $OMNI_API_KEY)."),
    config: Path | None = typer.Option(None, "--config", help="Serve YAML (kind: serve); default configs/serve/default.yaml."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. max_audio_seconds=30 concurrency=4."),
) -> None:
    """Serve the Gradio voice chat (/) and the OpenAI-compatible HTTP API (/v1) for a checkpoint."""
    from omni.bundle import bundle_file

    bundle_file(checkpoint)  # a clear error before anything heavy is imported
    _serve(checkpoint, _config(config, overrides, host, port, api_key))


@user_errors
def demo_cmd(
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Bundle to serve; default: the tiny recipe's."),
    host: str | None = typer.Option(None, help="Interface to bind (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="TCP port (default 7860)."),
    api_key: str | None = typer.Option(None, "--api-key", help="Key the API requires (default: $OMNI_API_KEY)."),
    overrides: list[str] = typer.Argument(None, help="Dotted serve overrides."),
) -> None:
    """Make sure a checkpoint exists (train the tiny recipe when it is missing), then serve it."""
    from serve.demo import ensure_demo_checkpoint

    cfg = _config(None, overrides, host, port, api_key)
    _serve(ensure_demo_checkpoint(checkpoint), cfg)
