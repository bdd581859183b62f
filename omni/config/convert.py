"""Typed conversion between plain YAML data and config dataclasses.

``from_data(cls, data)`` builds a config dataclass from dicts/lists/scalars and
checks every value against the field's type hint: nested dataclasses,
``int``/``float``/``bool``/``str``/``Path``, ``X | None``, ``Literal[...]``,
``Enum``, ``list[X]``, ``tuple[X, ...]``, ``tuple[X, Y]`` and ``dict[str, X]``.
Unknown keys, missing required fields and wrong types are errors naming the
field (and, with origins, the file and line). ``__post_init__`` validation
errors (:class:`~omni.config.fields.FieldError`) are reported the same way.
``to_data`` is the inverse, used to save resolved configs.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from omni.config.fields import ConfigError, FieldError
from omni.config.yaml_io import Key, Origin


class _Context:
    """Carries the origins map so errors can name file and line."""

    def __init__(self, origins: dict[Key, Origin] | None, default_source: str):
        self.origins = origins or {}
        self.default_source = default_source

    def error(self, key: Key, message: str) -> ConfigError:
        origin = None
        for n in range(len(key), -1, -1):  # nearest key that has a known origin
            origin = self.origins.get(key[:n])
            if origin is not None:
                break
        source = origin.source if origin else self.default_source
        line = origin.line if origin else None
        dotted = ".".join(str(k) for k in key)
        return ConfigError(message, source=source, line=line, field=dotted)


def from_data(
    cls: type,
    data: Any,
    origins: dict[Key, Origin] | None = None,
    source: str = "",
) -> Any:
    """Build and validate config dataclass ``cls`` from plain data.

    Raises:
        ConfigError: naming the source, line, dotted field and the expected type.
    """
    return _convert(cls, data, (), _Context(origins, source))


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(tp: Any, value: Any, key: Key, ctx: _Context) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(option, value, key, ctx)
            except ConfigError as e:
                errors.append(e)
        if len(options) == 1:
            raise errors[0]
        expected = " or ".join(_type_name(a) for a in args)
        raise ctx.error(key, f"expected {expected}, got {_describe(value)}")
    if origin is Literal:
        for choice in args:
            if value == choice and type(value) is type(choice):
                return choice
        choices = ", ".join(repr(a) for a in args)
        raise ctx.error(key, f"expected one of {choices}, got {_describe(value)}")
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, key, ctx)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if value == member.value or value == member.name:
                return member
        choices = ", ".join(repr(m.value) for m in tp)
        raise ctx.error(key, f"expected one of {choices}, got {_describe(value)}")
    if origin in (list, tuple) or tp in (list, tuple):
        return _convert_sequence(tp, origin or tp, args, value, key, ctx)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ctx.error(key, f"expected a mapping, got {_describe(value)}")
        k_tp, v_tp = args if args else (Any, Any)
        return {
            _convert(k_tp, k, key + (k,), ctx): _convert(v_tp, v, key + (k,), ctx)
            for k, v in value.items()
        }
    return _convert_scalar(tp, value, key, ctx)


def _convert_sequence(tp: Any, origin: Any, args: tuple, value: Any, key: Key, ctx: _Context) -> Any:
    if not isinstance(value, (list, tuple)):
        raise ctx.error(key, f"expected a list ({_type_name(tp)}), got {_describe(value)}")
    if origin is list:
        item_tp = args[0] if args else Any
        return [_convert(item_tp, v, key + (i,), ctx) for i, v in enumerate(value)]
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(args[0], v, key + (i,), ctx) for i, v in enumerate(value))
    if args:
        if len(value) != len(args):
            raise ctx.error(key, f"expected a list of {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, key + (i,), ctx) for i, (a, v) in enumerate(zip(args, value)))
    return tuple(value)


def _convert_scalar(tp: Any, value: Any, key: Key, ctx: _Context) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    else:
        raise ctx.error(key, f"unsupported field type {_type_name(tp)} (a bug in the config class)")
    hint = ""
    if tp is str and isinstance(value, (int, float, bool)):
        hint = " (quote it to make it a string)"
    raise ctx.error(key, f"expected {_type_name(tp)}, got {_describe(value)}{hint}")


@functools.cache
def _class_fields(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    """Resolved type hints and ``__init__`` fields of a dataclass, computed once per class: resolving the
    hints dominated the parsing of manifest rows (a stage's data index parses every row)."""
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls) if f.init}


def _convert_dataclass(cls: type, value: Any, key: Key, ctx: _Context) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ctx.error(key, f"expected a mapping for {cls.__name__}, got {_describe(value)}")
    hints, fields = _class_fields(cls)
    for name in value:
        if name not in fields:
            close = difflib.get_close_matches(str(name), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            valid = ", ".join(fields)
            raise ctx.error(key + (name,), f"unknown field for {cls.__name__}{hint}; valid fields: {valid}")
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], key + (name,), ctx)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            help_text = f.metadata.get("help", "")
            raise ctx.error(key + (name,), f"required field is missing ({_type_name(hints[name])}: {help_text})")
    try:
        return cls(**kwargs)
    except FieldError as e:
        sub = tuple(e.field.split("."))
        raise ctx.error(key + sub, e.message) from None
    except (ValueError, TypeError) as e:
        raise ctx.error(key, str(e)) from None


def to_data(obj: Any) -> Any:
    """Convert a config dataclass (recursively) to plain YAML-safe data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [to_data(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_data(v) for k, v in obj.items()}
    return obj
