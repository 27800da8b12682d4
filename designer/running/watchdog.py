"""A time limit that holds for any Python code: a watchdog thread interrupts a thread that overran.

A template's loops are Python bytecode, which checks for an exception set from another thread
between instructions; so nested loops, however long, end at the limit with no cost while they
run (no tracing hook). One long C call (a huge string method) is not interrupted: size checks
bound those.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_CHECK_EVERY = 0.05  # seconds between the watchdog's looks


class Overran(BaseException):  # noqa: N818 - a BaseException so no ``except Exception`` in between swallows it
    """Raised inside a thread that overran its ``limit``."""


_lock = threading.Lock()
_deadlines: dict[int, float] = {}  # thread id -> monotonic deadline
_fired: set[int] = set()
_started = False


def _watch() -> None:
    while True:
        time.sleep(_CHECK_EVERY)
        now = time.monotonic()
        with _lock:
            for thread_id, deadline in list(_deadlines.items()):
                if now > deadline:
                    del _deadlines[thread_id]
                    _fired.add(thread_id)
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(Overran))


def _ensure_started() -> None:
    global _started
    with _lock:
        if not _started:
            threading.Thread(target=_watch, name="template-watchdog", daemon=True).start()
            _started = True


@contextmanager
def limit(seconds: float) -> Iterator[None]:
    """Raise ``Overran`` in this thread if the block runs longer than ``seconds``."""
    _ensure_started()
    thread_id = threading.get_ident()
    with _lock:
        _deadlines[thread_id] = time.monotonic() + seconds
    try:
        yield
    finally:
        with _lock:
            _deadlines.pop(thread_id, None)
            fired = thread_id in _fired
            _fired.discard(thread_id)
            if fired:  # set but maybe not raised yet: clear it, and say it here instead
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
        if fired:
            raise Overran()
