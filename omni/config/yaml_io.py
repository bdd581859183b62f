"""YAML reading with line numbers, ``extends`` inheritance and dotted overrides.

A config file is a YAML mapping. It may name a base file with
``extends: path/relative/to/this/file.yaml``; the base is loaded first and this
file's keys are merged over it (mappings merge key by key, everything else is
replaced). Command-line overrides ``a.b.c=value`` are merged last; the value
is parsed as YAML (``lr=2e-4`` is a float, ``layers=[1,2]`` a list,
``name=null`` None).

Every leaf keeps where it came from (:class:`Origin`), so errors can name the
file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from omni.config.fields import ConfigError

Key = tuple[str | int, ...]


@dataclass(frozen=True)
class Origin:
    """Where a value was written: a file and 1-based line, or a command-line override."""

    source: str
    line: int | None = None


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` (no dot) as a float, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str) -> tuple[Any, dict[Key, Origin]]:
    """Parse YAML text; return the data and the origin of every key and list item.

    Raises:
        ConfigError: on a syntax error (with its line) or a duplicated key.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        data = loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        context, context_mark = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and context_mark is not None:
            problem += f" ({context} at line {context_mark.line + 1})"
        raise ConfigError(f"invalid YAML: {problem}", source=source, line=line) from None
    finally:
        loader.dispose()
    origins: dict[Key, Origin] = {}
    _walk(node, (), source, origins)
    return data, origins


def _walk(node: yaml.Node, key: Key, source: str, origins: dict[Key, Origin]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for k_node, v_node in node.value:
            name = k_node.value
            line = k_node.start_mark.line + 1
            if name in seen:
                raise ConfigError(f"duplicate key '{name}'", source=source, line=line)
            seen.add(name)
            origins[key + (name,)] = Origin(source, line)
            _walk(v_node, key + (name,), source, origins)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            origins[key + (i,)] = Origin(source, item.start_mark.line + 1)
            _walk(item, key + (i,), source, origins)


def read_config_file(path: str | Path, _chain: tuple[Path, ...] = ()) -> tuple[dict, dict[Key, Origin]]:
    """Read a config file, following ``extends``; return merged data and origins.

    Raises:
        ConfigError: missing file, not a mapping, bad ``extends``, or an ``extends`` cycle.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError("config file not found", source=source)
    resolved = path.resolve()
    if resolved in _chain:
        cycle = " -> ".join(str(p) for p in _chain + (resolved,))
        raise ConfigError(f"'extends' cycle: {cycle}", source=source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read: {e}", source=source) from None
    data, origins = parse_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"a config file must be a YAML mapping, got {type(data).__name__}", source=source, line=1
        )
    base_name = data.pop("extends", None)
    if base_name is None:
        return data, origins
    if not isinstance(base_name, str):
        raise ConfigError("'extends' must be a file path", source=source, line=origins[("extends",)].line)
    base, base_origins = read_config_file(path.parent / base_name, _chain + (resolved,))
    return merge(base, base_origins, data, origins)


def merge(
    base: dict, base_origins: dict[Key, Origin], over: dict, over_origins: dict[Key, Origin]
) -> tuple[dict, dict[Key, Origin]]:
    """Deep-merge ``over`` into ``base`` (mappings merge, other values replace)."""
    out = dict(base)
    origins = dict(base_origins)
    for name, value in over.items():
        key = (name,)
        if isinstance(value, dict) and isinstance(out.get(name), dict):
            sub_base_o = _sub(origins, key)
            sub_over_o = _sub(over_origins, key)
            merged, merged_o = merge(out[name], sub_base_o, value, sub_over_o)
            out[name] = merged
            _drop(origins, key)
            origins.update({key + k: o for k, o in merged_o.items()})
        else:
            out[name] = value
            _drop(origins, key)
            origins.update({key + k: o for k, o in _sub(over_origins, key).items()})
        origins[key] = over_origins.get(key, Origin("?"))
    return out, origins


def _sub(origins: dict[Key, Origin], prefix: Key) -> dict[Key, Origin]:
    n = len(prefix)
    return {k[n:]: o for k, o in origins.items() if k[:n] == prefix and len(k) > n}


def _drop(origins: dict[Key, Origin], prefix: Key) -> None:
    n = len(prefix)
    for k in [k for k in origins if k[:n] == prefix and len(k) > n]:
        del origins[k]


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """Parse ``a.b.c=value`` into (("a", "b", "c"), parsed value).

    Raises:
        ConfigError: no ``=``, an empty key part, or a value that is not valid YAML.
    """
    source = "command line"
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value", source=source)
    key, _, raw = text.partition("=")
    parts = tuple(p.strip() for p in key.strip().split("."))
    if not parts or any(not p for p in parts):
        raise ConfigError(f"override '{text}' has an empty key part", source=source)
    try:
        value, _ = parse_yaml(raw, source) if raw.strip() else ("", {})
    except ConfigError as e:
        raise ConfigError(f"override '{text}': {e.message}", source=source) from None
    return parts, value


def apply_overrides(
    data: dict, origins: dict[Key, Origin], overrides: list[str] | tuple[str, ...]
) -> tuple[dict, dict[Key, Origin]]:
    """Apply dotted overrides to config data (a new dict is returned)."""
    for text in overrides:
        parts, value = parse_override(text)
        nested: Any = value
        for p in reversed(parts):
            nested = {p: nested}
        over_origins = {parts[: i + 1]: Origin(f"override '{text}'") for i in range(len(parts))}
        if isinstance(value, (dict, list)):
            _, inner = parse_yaml(text.partition("=")[2], f"override '{text}'")
            over_origins.update({parts + k: o for k, o in inner.items()})
        data, origins = merge(data, origins, nested, over_origins)
    return data, origins
