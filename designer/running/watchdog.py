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
from dataclasses import dataclass

_CHECK_EVERY = 0.05  # seconds between the watchdog's looks


class Overran(BaseException):  # noqa: N818 - a BaseException so no ``except Exception`` in between swallows it
    """Raised inside a thread that overran its ``limit``."""


class TimeLimitReached(Exception):  # noqa: N818 - named like Celery's SoftTimeLimitExceeded, which it stands for
    """A run passed its time limit where the worker's pool enforces none (the solo and threads pools).

    An ``Exception``, like Celery's own, so the run's error handler ends the run; registered as a stop
    exception so no connector turns it into a server's failure."""


@dataclass(eq=False)
class _Limit:
    deadline: float
    raising: type[BaseException]
    fired: bool = False


_lock = threading.Lock()
_limits: dict[int, list[_Limit]] = {}  # thread id -> its limits in force, outermost first
_deferring: dict[int, int] = {}  # thread id -> depth of ``deferred`` blocks it is in
_started = False


def _watch() -> None:
    while True:
        time.sleep(_CHECK_EVERY)
        now = time.monotonic()
        with _lock:
            for thread_id, limits in _limits.items():
                if _deferring.get(thread_id) or any(lim.fired for lim in limits):
                    continue  # one pending at a time: the next fires after that one's block ended
                due = next((lim for lim in limits if now > lim.deadline), None)
                if due is not None:
                    due.fired = True
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(due.raising))


def _ensure_started() -> None:
    global _started
    with _lock:
        if not _started:
            threading.Thread(target=_watch, name="watchdog", daemon=True).start()
            _started = True


@contextmanager
def limit(seconds: float, raising: type[BaseException] = Overran) -> Iterator[None]:
    """Raise ``raising`` in this thread if the block runs longer than ``seconds``.

    Limits nest (a template's inside a run's): each raises its own exception, so a template's
    handler never mistakes the run's limit for its own."""
    _ensure_started()
    thread_id = threading.get_ident()
    own = _Limit(time.monotonic() + seconds, raising)
    with _lock:
        _limits.setdefault(thread_id, []).append(own)
    try:
        yield
    finally:
        with _lock:
            limits = _limits[thread_id]
            limits.remove(own)
            if not limits:
                del _limits[thread_id]
            if own.fired:  # set but maybe not raised yet: clear it, and say it here instead
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
        if own.fired:
            raise own.raising()


@contextmanager
def deferred() -> Iterator[None]:
    """A block a limit must not interrupt (recording what a server answered): a limit that passes
    inside it fires as soon as it ends. Keep it to work that ends by itself."""
    thread_id = threading.get_ident()
    with _lock:
        _deferring[thread_id] = _deferring.get(thread_id, 0) + 1
    try:
        yield
    finally:
        with _lock:
            _deferring[thread_id] -= 1
            if not _deferring[thread_id]:
                del _deferring[thread_id]
