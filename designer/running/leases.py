"""Leases: locks kept in the database, so workers on several hosts see them, that expire if the holder dies.

The holder names the run, so a run redelivered after its worker was killed takes its own
lease back at once instead of waiting for it to expire.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from designer.models import Lease

DEFAULT_TTL = timedelta(minutes=5)


def _take(key: str, holder: str, ttl: timedelta) -> bool:
    now = timezone.now()
    expires = now + ttl
    # Take it over when it has expired (its holder died) or is already ours (a redelivered run).
    taken = (
        Lease.objects.filter(key=key)
        .filter(Q(expires_at__lt=now) | Q(holder=holder))
        .update(holder=holder, expires_at=expires)
    )
    if taken:
        return True
    try:
        with transaction.atomic():
            Lease.objects.create(key=key, holder=holder, expires_at=expires)
        return True
    except IntegrityError:
        return False


def acquire(keys: Sequence[str], holder: str, ttl: timedelta = DEFAULT_TTL) -> str | None:
    """Take every lease or none. Returns None on success, else the key that is held by someone else."""
    taken: list[str] = []
    for key in keys:
        if not _take(key, holder, ttl):
            release(taken, holder)
            return key
        taken.append(key)
    return None


def renew(keys: Sequence[str], holder: str, ttl: timedelta = DEFAULT_TTL) -> bool:
    """Extend our leases; False when one was lost (expired and taken by another holder)."""
    expires = timezone.now() + ttl
    return Lease.objects.filter(key__in=keys, holder=holder).update(expires_at=expires) == len(keys)


def release(keys: Sequence[str], holder: str) -> None:
    Lease.objects.filter(key__in=keys, holder=holder).delete()


def holder_of(key: str) -> str | None:
    lease = Lease.objects.filter(key=key, expires_at__gte=timezone.now()).first()
    return lease.holder if lease else None
