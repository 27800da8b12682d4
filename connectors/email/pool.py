"""The SMTP sessions of one Send Email run: up to ``limit`` at once, each used by one thread at a time.

Sessions open when a message needs one and none is idle. A server that allows fewer connections
than asked (421 on connect, "too many connections") makes the pool shrink to what it has, and the
message waits for one of those, instead of failing; only when no session can be had at all does the
failure reach the message.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from connectors.base import ConnectorError
from connectors.email.smtp import SMTPSession

log = logging.getLogger(__name__)


@dataclass(eq=False)
class PooledSession:
    smtp: SMTPSession
    closer: contextlib.ExitStack  # QUIT, then the socket closed whatever happens


class SessionPool:
    def __init__(self, open_session: Callable[[], PooledSession], limit: int) -> None:
        self._open_session = open_session
        self.limit = limit
        self._idle: list[PooledSession] = []
        self._open = 0  # idle and in use
        self._changed = threading.Condition()

    def take(self) -> PooledSession:
        """An idle session, a new one while under the limit, or the next one given back."""
        with self._changed:
            while not self._idle and self._open >= self.limit:
                self._changed.wait()
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return self._open_session()
        except ConnectorError as exc:
            with self._changed:
                self._open -= 1
                if exc.permanent or not self._open:
                    raise
                self._shrink(f"a new connection failed: {exc}")
            return self.take()

    def give_back(self, session: PooledSession) -> None:
        with self._changed:
            self._idle.append(session)
            self._changed.notify()

    def discard(self, session: PooledSession, server_is_full: bool = False) -> None:
        """Close a session that failed or that the server is closing (421: ``server_is_full`` when others live)."""
        session.closer.close()
        with self._changed:
            self._open -= 1
            if server_is_full and self._open:
                self._shrink("the server closed a connection (421)")
            self._changed.notify()

    def close(self) -> None:
        with self._changed:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for session in idle:
            session.closer.close()

    def _shrink(self, why: str) -> None:
        if self._open < self.limit:
            log.info("SMTP connections limited to %s: %s", self._open, why)
            self.limit = self._open
