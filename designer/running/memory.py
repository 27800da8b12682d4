"""A run's memory: what its messages hold, reused or returned once they are sent (glibc's malloc).

glibc gives each thread that allocates a lot a heap (arena) of its own, and a heap keeps the space
freed in it. The blocks a large message passes through (its download, its decoded attachment, the
base64 slices a sender writes) would then stay in the heap of the thread that freed them while the
next large message fills another thread's heap, and the process would grow by a message or so per
sender thread. With one heap for all threads, what one frees the next reuses. The interpreter lock
lets one thread run Python at a time anyway, so sharing that heap costs nothing to notice.

glibc also raises its threshold for giving a block a mapping of its own (returned to the system when
freed) to the size of each such block freed, up to 32 MB. After the first large message, the next
ones' blocks then come from the heap, which cannot shrink past the blocks still held above them: a
run of 300 KB messages peaked 0.6 MB higher for that alone. The threshold is kept at its default.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

_M_MMAP_THRESHOLD = -3  # malloc.h
_M_ARENA_MAX = -8
_MMAP_THRESHOLD = 128 * 1024  # glibc's default; set, it no longer moves


@functools.cache
def tune_malloc() -> bool:
    """Let the threads started from now on share the process's one malloc heap, and keep large
    blocks returned when freed (once a process); False where the C library is not glibc, which has
    no such settings."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    one_heap = libc.mallopt(_M_ARENA_MAX, 1)
    fixed_threshold = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    return bool(one_heap and fixed_threshold)
