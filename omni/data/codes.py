"""Cached audio-token codes: sharded safetensors files referenced from manifest rows.

The audio tokenizer turns each utterance into codes of shape (T, K): T frames
at 12.5 Hz, K codebooks (8). ``omni data tokenize`` stores them many
utterances per file (never one file per utterance)::

    codes/shard-00000.safetensors     {"<key>": int16/int32 tensor (T, K), ...}

and points each audio reference of a manifest row at its entry with a
``codes`` field next to the ``audio`` field::

    {"id": "asr-p000017", "task": "asr", "audio": "audio/16k/p000017.flac",
     "codes": {"path": "codes/shard-00000.safetensors", "key": "p000017"}, ...}

Paths are relative to the manifest's directory, like audio paths.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from omni.data.manifest import CodesRef, resolve_media

#: safetensors dtype names a codes tensor may have (write_codes_shard writes I16 or I32)
INTEGER_DTYPES = {"I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64"}


def write_codes_shard(path: str | os.PathLike, codes: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write one shard atomically.

    Args:
        path: shard file (``.safetensors``).
        codes: key -> integer tensor (T, K); stored as int16 when every value fits, else int32.
        metadata: string metadata stored in the header (e.g. tokenizer name, frame rate).
    """
    path = Path(path)
    out = {}
    for key, value in codes.items():
        if value.dim() != 2 or value.dtype.is_floating_point:
            raise ValueError(f"codes '{key}' must be an integer tensor (T, K), got {tuple(value.shape)} {value.dtype}")
        fits = value.numel() == 0 or (int(value.min()) >= -32768 and int(value.max()) <= 32767)
        out[key] = value.to(torch.int16 if fits else torch.int32).contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(out, str(tmp), metadata=metadata)
    os.replace(tmp, path)


class CodesReader:
    """Reads codes referenced by manifest rows, keeping a few shard handles open.

    Args:
        manifest: the manifest the references come from (paths are relative to its directory).
        max_open: shard files kept open at once.
    """

    def __init__(self, manifest: str | os.PathLike, max_open: int = 8):
        self.manifest = Path(manifest)
        self.max_open = max_open
        self._open: OrderedDict[Path, tuple[object, frozenset[str]]] = OrderedDict()

    def _handle(self, path: Path, key: str):
        """The open shard holding ``key`` (its key set is read once per opening: ``keys()`` lists them all)."""
        if path in self._open:
            self._open.move_to_end(path)
            handle, keys = self._open[path]
        else:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: codes shard not found (run 'omni data tokenize' first)")
            handle = safe_open(str(path), framework="pt")
            keys = frozenset(handle.keys())
            self._open[path] = (handle, keys)
            if len(self._open) > self.max_open:
                self._open.popitem(last=False)
        if key not in keys:
            raise KeyError(f"{path}: no codes for key '{key}'")
        return handle

    def load(self, ref: CodesRef) -> torch.Tensor:
        """The codes (T, K) as int64.

        Raises:
            FileNotFoundError / KeyError: missing shard or key, naming both.
        """
        path = resolve_media(self.manifest, ref.path)
        handle = self._handle(path, ref.key)
        codes = handle.get_tensor(ref.key)
        if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
            raise ValueError(f"{path}: '{ref.key}' holds {codes.dtype} values, not integer codes")
        return codes.long()

    def shape(self, ref: CodesRef) -> tuple[int, int]:
        """The shape (T, K) of the codes, read from the shard header only (no data is loaded).

        Raises:
            FileNotFoundError / KeyError: missing shard or key, naming both.
        """
        path = resolve_media(self.manifest, ref.path)
        handle = self._handle(path, ref.key)
        view = handle.get_slice(ref.key)
        if view.get_dtype() not in INTEGER_DTYPES:
            raise ValueError(f"{path}: '{ref.key}' holds {view.get_dtype()} values, not integer codes")
        return tuple(view.get_shape())
