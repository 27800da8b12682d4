"""A run's memory: what its messages hold, handed back to the system once they are sent.

A large message passes through blocks of tens or hundreds of kilobytes: its download, its decoded
attachment, the base64 slices the senders write. glibc's malloc gives blocks of 128 KB or more a
mapping of their own, unmapped when freed, but raises that threshold to the size of each such
block freed; after the first large message the next ones' blocks come from the heaps (one per
sender thread), which keep freed space. A fixed threshold keeps every large block in a mapping of
its own, so the process holds what its messages hold, and no more.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

_M_MMAP_THRESHOLD = -3  # malloc.h
MAPPED_FROM_BYTES = 64 * 1024


@functools.cache
def hand_back_large_blocks() -> bool:
    """Give blocks of ``MAPPED_FROM_BYTES`` or more their own mapping, for good (once a process);
    False where the C library is not glibc, which needs no such setting or has none."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MAPPED_FROM_BYTES))
