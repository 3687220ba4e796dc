"""API tokens and WebSocket tickets.

Tokens are django-rest-knox's: stored as SHA-512 digests only (a database dump opens no
account), one per client (each `POST /api/auth/token/` makes a new one, so revoking one
client's leaves the others), expiring after API_TOKEN_TTL seconds when that is set.

A WebSocket ticket is a random single-use string kept in Redis for WS_TICKET_SECONDS: the
browser's WebSocket API cannot send headers, and a long-lived token in a URL ends up in
access logs and browser history."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from datetime import timedelta

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from knox.crypto import hash_token
from knox.models import AuthToken
from knox.settings import CONSTANTS

from common import redis_clients

# knox's tokens are 64 hexadecimal characters (32 random bytes).
TOKEN_RE = re.compile(r"^[0-9a-f]{64}$")
TICKET_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


def token_issue(*, user) -> tuple[str, AuthToken]:
    """A new token for `user`; only its digest is stored, so the key is returned once."""
    ttl = settings.API_TOKEN_TTL
    instance, key = AuthToken.objects.create(
        user=user, expiry=timedelta(seconds=ttl) if ttl else None
    )
    return key, instance


def token_lookup(key: str) -> AuthToken | None:
    """The live token with this key, its user loaded; None when it is unknown, malformed,
    expired (then it is deleted) or its user is inactive."""
    if not TOKEN_RE.match(key):
        return None
    token = _token_with_user(key[: CONSTANTS.TOKEN_KEY_LENGTH], hash_token(key))
    if token is None or not token.user.is_active:
        return None
    if token.expiry is not None and token.expiry < timezone.now():
        token.delete()
        return None
    return token


@functools.cache
def _token_query() -> tuple[str, list[str], list[str]]:
    """Every request's first statement, written once from the models' own columns: the ORM
    spent longer building it than PostgreSQL spent answering it."""
    user_model = get_user_model()
    token_columns = [f.column for f in AuthToken._meta.concrete_fields]
    user_columns = [f.column for f in user_model._meta.concrete_fields]
    select = [f"t.{c}" for c in token_columns] + [f"u.{c}" for c in user_columns]
    sql = (
        f"SELECT {', '.join(select)} FROM {AuthToken._meta.db_table} t "
        f"JOIN {user_model._meta.db_table} u ON u.id = t.user_id "
        "WHERE t.token_key = %s AND t.digest = %s LIMIT 1"
    )
    token_names = [f.attname for f in AuthToken._meta.concrete_fields]
    user_names = [f.attname for f in user_model._meta.concrete_fields]
    return sql, token_names, user_names


def _token_with_user(token_key: str, digest: str) -> AuthToken | None:
    sql, token_names, user_names = _token_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, [token_key, digest])
        row = cursor.fetchone()
    if row is None:
        return None
    token = AuthToken.from_db("default", token_names, row[: len(token_names)])
    token.user = get_user_model().from_db("default", user_names, row[len(token_names) :])
    return token


def token_revoke(*, token: AuthToken) -> None:
    token.delete()


def tokens_revoke_all(*, user_ids) -> int:
    """Every token of these users (the admin's action); returns how many."""
    deleted, _ = AuthToken.objects.filter(user_id__in=list(user_ids)).delete()
    return deleted


def tokens_purge_expired() -> int:
    deleted, _ = AuthToken.objects.filter(expiry__lt=timezone.now()).delete()
    return deleted


# --- WebSocket tickets -------------------------------------------------------------------

_redis: redis.Redis | None = None


def _client() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis_clients.client(settings.REDIS_URL)
    return _redis


def _ticket_key(ticket: str) -> str:
    # Only a digest is kept: whoever reads Redis cannot use a ticket in flight.
    return "ws-ticket:" + hashlib.sha256(ticket.encode()).hexdigest()


def ws_ticket_issue(*, user) -> str:
    ticket = secrets.token_urlsafe(32)
    _client().set(_ticket_key(ticket), user.pk, ex=settings.WS_TICKET_SECONDS)
    return ticket


def ws_ticket_redeem(ticket: str):
    """The active user a ticket was issued to, once: GETDEL makes a second use find nothing,
    however close together the two are."""
    if not TICKET_RE.match(ticket):
        return None
    user_id = _client().getdel(_ticket_key(ticket))
    if user_id is None:
        return None
    return get_user_model().objects.filter(pk=int(user_id), is_active=True).first()
