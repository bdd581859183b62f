"""Declaring config fields and reporting config errors.

Every config dataclass field is declared with :func:`option`, which keeps its
help text in the field metadata (printed by ``omni config schema KIND`` and
checked by the tests). Validation in ``__post_init__`` raises
:class:`FieldError` naming the field; the loader turns it into a
:class:`ConfigError` that also names the file and line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

_MISSING: Any = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    *,
    help: str,
    default_factory: Callable[[], Any] | Any = _MISSING,
) -> Any:
    """A dataclass field with help text.

    Args:
        default: default value; leave out (and give no factory) for a required field.
        help: one or two sentences: what the field does, its unit, its range.
        default_factory: for mutable defaults (lists, dicts, nested configs).
    """
    if not help or not help.strip():
        raise ValueError("every config field needs help text")
    kwargs: dict[str, Any] = {"metadata": {"help": help.strip()}}
    if default is not _MISSING:
        kwargs["default"] = default
    if default_factory is not _MISSING:
        kwargs["default_factory"] = default_factory
    return dataclasses.field(**kwargs)


def field_help(cls: type, name: str) -> str:
    """The help text of field ``name`` of config class ``cls`` ('' if none)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("help", "")
    raise KeyError(name)


class FieldError(ValueError):
    """A bad value in one field, raised by a config's ``__post_init__``.

    Args:
        field: the field's name, or a dotted path below the config that raises.
        message: what is wrong and what was expected.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check(condition: bool, field: str, message: str) -> None:
    """Raise :class:`FieldError` for ``field`` unless ``condition`` holds."""
    if not condition:
        raise FieldError(field, message)


class ConfigError(ValueError):
    """A config that cannot be loaded: names where (file:line), which field, and why.

    Attributes:
        source: file path (or ``"command line"`` for an override), '' if unknown.
        line: 1-based line in ``source``, or None.
        field: dotted path of the field, e.g. ``"train.lr"``; '' for the whole file.
        message: what was expected and what was found.
    """

    def __init__(self, message: str, *, source: str = "", line: int | None = None, field: str = ""):
        self.source = source
        self.line = line
        self.field = field
        self.message = message
        where = source
        if where and line is not None:
            where = f"{where}:{line}"
        parts = [p for p in (where, f"field '{field}'" if field else "", message) if p]
        super().__init__(": ".join(parts))
