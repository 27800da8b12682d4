"""A run's memory: what its messages hold, reused once they are sent (glibc's malloc).

glibc gives each thread that allocates a lot a heap (arena) of its own, and a heap keeps the space
freed in it. The blocks a large message passes through (its download, its decoded attachment, the
base64 slices a sender writes) would then stay in the heap of the thread that freed them while the
next large message fills another thread's heap, and the process would grow by a message or so per
sender thread. With one heap for all threads, what one frees the next reuses. The interpreter lock
lets one thread run Python at a time anyway, so sharing that heap costs nothing to notice.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

_M_ARENA_MAX = -8  # malloc.h


@functools.cache
def keep_to_one_heap() -> bool:
    """Let the threads started from now on share the process's one malloc heap (once a process);
    False where the C library is not glibc, which has no such setting."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(libc.mallopt(_M_ARENA_MAX, 1))
