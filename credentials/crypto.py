"""Encryption at rest with `cryptography`'s Fernet.

CREDENTIALS_ENCRYPTION_KEYS lists Fernet keys, newest first: the first encrypts, any of them
decrypts (MultiFernet). To rotate: put a new key first, run `manage.py rotate_credentials`
(re-encrypts every value with it), then drop the old key."""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class UndecryptableCredential(Exception):
    """No configured key opens this value (its key was dropped before rotating)."""


@cache
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.CREDENTIALS_ENCRYPTION_KEYS])


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise UndecryptableCredential("no configured key decrypts this credential") from exc


def rotate(token: str) -> str:
    """The same value, encrypted with the first key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise UndecryptableCredential("no configured key decrypts this credential") from exc


def forget_keys() -> None:
    """For tests that change the keys."""
    _fernet.cache_clear()
