"""`omni config ...`: inspect configs and their schemas."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import typer
import yaml

from omni.cli.common import user_errors

app = typer.Typer(help="Inspect configs and config schemas.", no_args_is_help=True)


@app.command("show")
@user_errors
def show(
    path: Path = typer.Argument(..., help="YAML config file."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. utterances=500."),
) -> None:
    """Load and validate a config (with overrides) and print it fully resolved."""
    from omni.config import kind_of, load_config, to_data

    cfg = load_config(path, overrides=overrides or [])
    typer.echo(yaml.safe_dump({"kind": kind_of(type(cfg)), **to_data(cfg)}, sort_keys=False).rstrip())


@app.command("schema")
@user_errors
def schema(kind: str = typer.Argument(None, help="Config kind; leave out to list kinds.")) -> None:
    """List config kinds, or print every field of one kind with its type, default and help."""
    from omni.config import KINDS, config_class

    if kind is None:
        for name in sorted(KINDS):
            typer.echo(name)
        return
    _print_fields(config_class(kind), "")


def _print_fields(cls: type, prefix: str) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            typer.echo(f"{name}:  {f.metadata.get('help', '')}")
            _print_fields(tp, name + ".")
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        type_name = str(tp).replace("typing.", "") if not isinstance(tp, type) else tp.__name__
        typer.echo(f"{name}: {type_name} = {default}\n    {f.metadata.get('help', '')}")
