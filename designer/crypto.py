"""Encryption of secrets at rest with MultiFernet.

Keys come from settings.MAILWRIGHT_ENCRYPTION_KEYS, newest first: the newest encrypts, every key
decrypts, so keys can be rotated without downtime (``manage.py rotate_encryption_keys``).
Secrets are kept as a JSON object inside one token per row and only decrypted on use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretsUnreadable(Exception):
    """The stored token was made with a key that is no longer configured."""


def _multifernet() -> MultiFernet:
    keys = settings.MAILWRIGHT_ENCRYPTION_KEYS
    if not keys:
        raise ImproperlyConfigured(
            "No encryption key: set MAILWRIGHT_ENCRYPTION_KEYS, or run `make run` once to create a local key."
        )
    return MultiFernet([Fernet(key) for key in keys])


def encrypt_secrets(values: Mapping[str, str]) -> str:
    if not values:
        return ""
    return _multifernet().encrypt(json.dumps(dict(values)).encode()).decode()


def decrypt_secrets(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        return json.loads(_multifernet().decrypt(token.encode()))
    except InvalidToken:
        raise SecretsUnreadable(
            "the stored secrets cannot be decrypted with the configured keys; "
            "was a key removed from MAILWRIGHT_ENCRYPTION_KEYS before rotating?"
        ) from None


def rotate_token(token: str) -> str:
    """Re-encrypt a token with the newest key (it must decrypt with one of the configured keys)."""
    if not token:
        return token
    try:
        return _multifernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretsUnreadable("a stored secret cannot be decrypted with any configured key") from None
