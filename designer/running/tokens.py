"""The token caches of a run's connections, kept off the database outside the run's thread.

The target sends on a thread of its own, and logging in again there (a dropped connection, an
expired OAuth token) reads and writes the connection's token cache: from a second thread that is a
second SQLite writer, and a database error there would end the run. So a run's stores answer other
threads from memory, and the run's thread writes what they saved at its next step.
"""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError

from connectors.base import TokenStore

log = logging.getLogger(__name__)


class RunTokenStore:
    """A ``TokenStore`` for one run: read once on the run's thread, written only from it."""

    def __init__(self, store: TokenStore) -> None:
        self._store = store
        self._owner = threading.get_ident()
        self._lock = threading.Lock()
        self._value = store.load()
        self._unsaved: str | None = None

    def _on_owner(self) -> bool:
        return threading.get_ident() == self._owner

    def load(self) -> str:
        if self._on_owner() and self._unsaved is None:
            # Fresh: another worker may have refreshed the tokens since.
            self._value = self._store.load()
        with self._lock:
            return self._value

    def save(self, value: str) -> None:
        with self._lock:
            self._value = self._unsaved = value
        if self._on_owner():
            self.persist()

    def persist(self) -> None:
        """Write what was saved since, on the run's thread. A failed write costs a login, not the run."""
        if not self._on_owner():
            return
        with self._lock:
            value, self._unsaved = self._unsaved, None
        if value is None:
            return
        try:
            self._store.save(value)
        except DatabaseError:
            log.warning("the refreshed sign-in tokens could not be stored; they are obtained again next time",
                        exc_info=True)


def run_store(store: TokenStore | None) -> RunTokenStore | None:
    return RunTokenStore(store) if store is not None else None
