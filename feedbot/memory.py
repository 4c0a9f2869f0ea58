"""Keeping a long-running process's memory to what it uses, on glibc (elsewhere
these do nothing).

glibc keeps freed memory in the process for reuse: after a publish that rendered
large documents (the combined feeds of many sources), most of what it allocated
is free again but still counted in the process's RSS, scattered among live
objects so the heap cannot shrink by itself. ``return_freed_memory`` hands such
pages back to the system.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from typing import Any


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives every thread its own malloc arena; the few worker threads of a
    long-running service then hold memory they no longer use. Two are plenty."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().mallopt(-8, arenas)  # M_ARENA_MAX


def return_freed_memory() -> None:
    """Give the system back the heap pages no live object uses (``malloc_trim``):
    tens of milliseconds for a heap of a few hundred MB, so the worker calls it a
    while after feeds were rewritten, not after every poll."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().malloc_trim(0)
