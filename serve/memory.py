"""Give freed heap memory back to the operating system when the engine goes idle.

glibc keeps the pages of freed small allocations (tensors under the mmap threshold, Python objects of a
burst of requests) mapped in its arenas, so a server's resident size stays at its peak after a load spike.
``malloc_trim(0)`` returns the free pages at the top and inside every arena; the engine calls it when its last
reply finishes. Elsewhere (macOS, musl) it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def trim_heap() -> bool:
    """``malloc_trim(0)``; True when memory was given back, False when none was or the C library lacks it."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
