"""Leases: locks in the database, seen by workers on every host, that expire if their holder dies.

Expiry is judged on the database's clock, never a worker's. Each acquisition gets a new fencing
token: writes that precede a side effect check it (``holds``), so a copy of a run that lost its
lease — redelivered by the broker, or stalled past the expiry — stops instead of sending. A
``Heartbeat`` renews a run's leases on a thread of its own, whatever the run is busy with.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, Value
from django.db.models.fields import DurationField
from django.db.models.functions import Now

from designer.models import Lease

DEFAULT_TTL = timedelta(seconds=settings.MAILWRIGHT_LEASE_SECONDS)


def _expiry(ttl: timedelta) -> ExpressionWrapper:
    return ExpressionWrapper(Now() + Value(ttl, output_field=DurationField()), output_field=DateTimeField())


def _take(key: str, holder: str, token: str, ttl: timedelta) -> bool:
    # Take it over only when it has expired (its holder died): a live holder, even a copy of the
    # same run, keeps it.
    taken = Lease.objects.filter(key=key, expires_at__lt=Now()).update(holder=holder, token=token,
                                                                         expires_at=_expiry(ttl))
    if taken:
        return True
    try:
        with transaction.atomic():
            Lease.objects.create(key=key, holder=holder, token=token, expires_at=_expiry(ttl))
        return True
    except IntegrityError:
        return False


def acquire(keys: Sequence[str], holder: str, ttl: timedelta = DEFAULT_TTL) -> tuple[str | None, str]:
    """Take every lease or none: ``(None, token)`` on success, else ``(the key held by someone, "")``."""
    token = secrets.token_hex(16)
    taken: list[str] = []
    for key in keys:
        if not _take(key, holder, token, ttl):
            release(taken, holder, token)
            return key, ""
        taken.append(key)
    return None, token


def holds(keys: Sequence[str], holder: str, token: str) -> bool:
    """Whether ``holder`` still holds every lease under ``token``, unexpired (call inside the
    transaction of the write it guards)."""
    return Lease.objects.filter(key__in=keys, holder=holder, token=token, expires_at__gte=Now()).count() == len(keys)


def renew(keys: Sequence[str], holder: str, token: str, ttl: timedelta = DEFAULT_TTL) -> bool:
    """Extend our leases; False when one was lost (expired and taken by another holder)."""
    return Lease.objects.filter(key__in=keys, holder=holder, token=token).update(expires_at=_expiry(ttl)) == len(keys)


def release(keys: Sequence[str], holder: str, token: str) -> None:
    Lease.objects.filter(key__in=keys, holder=holder, token=token).delete()


def holder_of(key: str) -> str | None:
    lease = Lease.objects.filter(key=key, expires_at__gte=Now()).first()
    return lease.holder if lease else None


def _clock() -> float:
    """Seconds on a clock that also counts the time the machine was suspended: a lease expires
    on the database's clock meanwhile."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()


class Heartbeat:
    """Renews leases every third of their time to live on a thread of its own; ``lost`` once it failed.

    A renewal that succeeded says more than ``holds``: nobody can take the leases for their time to
    live from the moment it was asked. ``vouches`` answers from that for the first half of it (the
    other half a margin for clocks that run at slightly different rates), so a run asks the database
    only when its last renewal is older than that, as after a stall.
    """

    def __init__(self, keys: Sequence[str], holder: str, token: str, ttl: timedelta = DEFAULT_TTL) -> None:
        self.keys, self.holder, self.token, self.ttl = list(keys), holder, token, ttl
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"{holder}-heartbeat", daemon=True)
        self._renewed_at: float | None = None  # ``_clock()`` just before the last renewal that succeeded

    def __enter__(self) -> Heartbeat:
        self._renew()
        self._thread.start()
        return self

    def vouches(self) -> bool:
        """Whether the leases are surely still ours, by the last renewal alone (no query)."""
        renewed_at = self._renewed_at
        return (renewed_at is not None and not self.lost.is_set()
                and _clock() - renewed_at < self.ttl.total_seconds() / 2)

    def _renew(self) -> bool:
        asked_at = _clock()
        if not renew(self.keys, self.holder, self.token, self.ttl):
            self.lost.set()
            return False
        self._renewed_at = asked_at
        return True

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.ttl.total_seconds() / 3):
                close_old_connections()
                if not self._renew():
                    return
        except Exception:  # noqa: BLE001 - a database hiccup: the run's own fencing checks stop it
            self.lost.set()
        finally:
            connection.close()  # this thread's own connection
