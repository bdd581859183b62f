"""Typed configs: dataclasses with help text, loaded from YAML with dotted overrides.

Usage::

    cfg = load_config("configs/data/synth.yaml", overrides=["utterances=500"])
    save_config(cfg, "run/config.yaml")

A wrong key, type or value fails at load time with the file, line, field and
what was expected (:class:`ConfigError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml

from omni.config.convert import from_data, to_data
from omni.config.fields import ConfigError, FieldError, check, field_help, option
from omni.config.registry import KINDS, config_class, kind_of
from omni.config.yaml_io import apply_overrides, read_config_file

__all__ = [
    "ConfigError",
    "FieldError",
    "KINDS",
    "check",
    "config_class",
    "field_help",
    "from_data",
    "kind_of",
    "load_config",
    "option",
    "save_config",
    "to_data",
]

T = TypeVar("T")


def load_config(path: str | Path, cls: type[T] | None = None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Load a YAML config file into its dataclass.

    Args:
        path: YAML file with a top-level ``kind:`` key (and optionally ``extends:``).
        cls: the expected dataclass; when given, the file's kind must match it.
        overrides: dotted ``key.sub=value`` strings applied over the file.

    Raises:
        ConfigError: naming the file, line, field and the problem.
    """
    source = str(path)
    data, origins = read_config_file(path)
    data, origins = apply_overrides(data, origins, overrides)
    kind = data.pop("kind", None)
    if kind is None:
        known = ", ".join(sorted(KINDS))
        raise ConfigError(f"missing top-level 'kind:' (one of: {known})", source=source, line=1)
    kind_origin = origins.get(("kind",))
    kind_line = kind_origin.line if kind_origin else None
    try:
        target = config_class(kind)
    except ValueError as e:
        raise ConfigError(str(e), source=source, line=kind_line, field="kind") from None
    if cls is not None and target is not cls:
        raise ConfigError(
            f"expected a '{kind_of(cls)}' config, this file is kind '{kind}'",
            source=source,
            line=kind_line,
            field="kind",
        )
    return from_data(target, data, origins, source)


def save_config(config: Any, path: str | Path) -> None:
    """Write ``config`` as YAML (``kind`` first) that :func:`load_config` reads back."""
    data = {"kind": kind_of(type(config)), **to_data(config)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(Path(path).suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
