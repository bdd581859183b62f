"""Checksums of the tensor files the project writes, verified before anything loads them.

Every saver (training checkpoints, ``OmniModel.save_pretrained``, the audio tokenizer, the flow
decoder and vocoder, the text-LM warm-up) calls :func:`write_checksums` on its directory once the
files are in place; every loader calls :func:`verify_checksums` first. The index is JSON::

    DIR/checksums.json   {"format": "omni-checksums", "version": 1, "algorithm": "sha256",
                          "files": {"model.safetensors": {"sha256": "...", "size": 1234}, ...}}

A file whose size or sha256 differs (truncated, flipped bytes, swapped file), a listed file that
is missing, or an unlisted tensor file (``*.safetensors``, ``*.bin``, ``*.pkl``, ``*.pt``) next to
the index is rejected with an :class:`IntegrityError` naming the file. A directory without an
index (written before checksums existed, or by another tool) loads as before when ``required`` is
false. Checksums catch corruption and accidental swaps; they are not signatures (someone who can
rewrite the tensor files can rewrite the index too).

Writes are atomic: temp file, fsync, rename.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

INDEX = "checksums.json"
FORMAT = "omni-checksums"
TENSOR_PATTERNS = ("*.safetensors", "*.bin", "*.pkl", "*.pt", "*.pth")
_CHUNK = 1 << 20


class IntegrityError(ValueError):
    """A tensor file does not match the checksum index of its directory (or the index is unreadable)."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def tensor_files(directory: str | os.PathLike) -> list[Path]:
    """The tensor files directly inside ``directory`` (sorted by name)."""
    d = Path(directory)
    found = {p for pattern in TENSOR_PATTERNS for p in d.glob(pattern) if p.is_file() and not p.name.startswith(".")}
    return sorted(found)


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory, fsynced, then renamed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_checksums(directory: str | os.PathLike) -> Path:
    """Hash every tensor file of ``directory`` into ``directory/checksums.json``; returns the index path."""
    d = Path(directory)
    files = {p.name: {"sha256": sha256_file(p), "size": p.stat().st_size} for p in tensor_files(d)}
    index = {"format": FORMAT, "version": 1, "algorithm": "sha256", "files": files}
    write_atomic(d / INDEX, (json.dumps(index, indent=2) + "\n").encode())
    return d / INDEX


def verify_checksums(directory: str | os.PathLike, required: bool = False) -> bool:
    """Check every tensor file of ``directory`` against its index before loading it.

    Returns:
        True when an index was found and everything matched; False when there is no index and
        ``required`` is false.

    Raises:
        IntegrityError: naming the file: missing, truncated / wrong size, sha256 mismatch, not in
            the index; or an unreadable index; or no index when ``required``.
    """
    d = Path(directory)
    path = d / INDEX
    if not path.is_file():
        if required:
            raise IntegrityError(f"{path}: missing; cannot verify the tensor files of {d}")
        return False
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        files = index["files"]
        ok = index.get("format") == FORMAT and isinstance(files, dict)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        ok = False
    if not ok:
        raise IntegrityError(f"{path}: not a valid checksum index")
    for name, entry in files.items():
        if Path(name).name != name:
            raise IntegrityError(f"{path}: bad file name {name!r} in the index")
        f = d / name
        if not f.is_file():
            raise IntegrityError(f"{f}: missing (listed in {INDEX})")
        size = f.stat().st_size
        if size != entry.get("size"):
            raise IntegrityError(f"{f}: {size} bytes, expected {entry.get('size')} (truncated or replaced); "
                                 "refusing to load it")
        if sha256_file(f) != entry.get("sha256"):
            raise IntegrityError(f"{f}: sha256 does not match {INDEX} (corrupted or tampered); refusing to load it")
    extra = [p.name for p in tensor_files(d) if p.name not in files]
    if extra:
        raise IntegrityError(f"{d / extra[0]}: tensor file not listed in {INDEX}; refusing to load it")
    return True
