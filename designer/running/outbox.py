"""The run's sender threads: they take the messages whose "sending" rows are committed themselves.

The run's thread commits a group of "sending" rows and puts the group here; each sender thread (one
per connection the target offers) takes the next message as soon as its connection is free, so
the connections stay busy while the run's thread reads, maps, builds and writes the ledger. Each
message has a ``Future`` the run's thread lands (records) in groups.

Two things make the senders wait for the run's thread before taking another message:

- a message that failed, until the run's thread has judged it (a target failing message after
  message stops the run, and what is still queued then is cancelled, never sent);
- a lease the heartbeat no longer vouches for (``may_send`` false), until the run's thread has
  asked the database (``fence``): a message is never handed over once another run may hold the lease.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class Outbox:
    """Committed messages waiting for a connection; use as a context manager (it starts and joins the threads)."""

    def __init__(self, send: Callable[[Any], Any], slots: int, may_send: Callable[[], bool], name: str) -> None:
        self._send = send
        self._may_send = may_send
        self._queue: deque[tuple[Future, Any]] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._failed = False  # a message failed and the run's thread has not judged it yet
        self._fenced = 0  # messages the run's thread vouched for by asking the database
        self.wants_fence = False  # a sender waits for the run's thread to ask the database
        self.answered = 0  # messages given their outcome (sent or failed), counted after the future has it
        self.rooms = 0  # messages let go of while the server decides (``made_room``)
        self._answers = threading.Condition()  # notified at each outcome counted, and each room made
        self._threads = [threading.Thread(target=self._serve, name=f"{name}-send-{n}", daemon=True)
                         for n in range(slots)]

    def __enter__(self) -> Outbox:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel_queued()
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join()

    def put_all(self, payloads: list[Any]) -> list[Future]:
        """Queue a group of messages whose "sending" rows are committed, in order; their futures."""
        queued: list[Future] = [Future() for _ in payloads]
        with self._changed:
            self._queue.extend(zip(queued, payloads, strict=True))
            self._changed.notify(len(payloads))
        return queued

    @property
    def paused(self) -> bool:
        """Whether the senders wait for the run's thread to judge a failed message."""
        return self._failed

    def resume(self) -> None:
        """The run's thread judged every failed message: the senders go on."""
        with self._changed:
            self._failed = False
            self._changed.notify_all()

    def fence(self, holds: bool) -> None:
        """The run's thread asked the database whether the run still holds its lease: when it does,
        the messages queued now may be sent."""
        with self._changed:
            self.wants_fence = False
            if holds:
                self._fenced = len(self._queue)
                self._changed.notify_all()

    def wait_for_answer(self, answered: int, timeout: float, rooms: int | None = None) -> None:
        """Wait until more than ``answered`` messages have their outcome (or, given ``rooms``, more than
        that many were let go of before theirs), ``timeout`` seconds at most."""
        with self._answers:
            self._answers.wait_for(
                lambda: self.answered > answered or (rooms is not None and self.rooms > rooms), timeout)

    def made_room(self) -> None:
        """On a sender thread: its message was let go of before its outcome (the server is deciding)."""
        with self._answers:
            self.rooms += 1
            self._answers.notify_all()

    def cancel_queued(self) -> int:
        """Cancel the messages no sender has taken: they are not sent. Returns how many."""
        with self._changed:
            queued, self._queue = list(self._queue), deque()
        return sum(1 for future, _payload in queued if future.cancel())

    def _next(self) -> tuple[Future, Any] | None:
        with self._changed:
            while not self._closed:  # closing cancelled what was queued
                if self._queue and not self._failed:
                    if self._fenced or self._may_send():
                        self._fenced = max(0, self._fenced - 1)
                        return self._queue.popleft()
                    self.wants_fence = True
                self._changed.wait(0.5)  # the heartbeat's word changes without a notification
            return None

    def _serve(self) -> None:
        while (taken := self._next()) is not None:
            future, payload = taken
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = self._send(payload)
            except BaseException as exc:  # noqa: BLE001 - the run's thread judges it when it lands
                with self._changed:
                    self._failed = True
                future.set_exception(exc)
            else:
                future.set_result(result)
            with self._answers:
                self.answered += 1
                self._answers.notify_all()
            del taken, payload  # a large message must not outlive its sending while this thread waits
