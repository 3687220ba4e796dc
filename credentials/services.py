"""Storing users' secrets and handing them to a running node."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from .crypto import UndecryptableCredential, decrypt, encrypt
from .models import Credential
from .references import referenced_names, substitute

MAX_VALUE_CHARS = 16_384


class CredentialExists(Exception):
    pass


class CredentialMissing(Exception):
    """A node names a credential its run's owner does not have (or it cannot be opened)."""


def credential_create(*, owner, name: str, value: str) -> Credential:
    try:
        with transaction.atomic():
            return Credential.objects.create(owner=owner, name=name, ciphertext=encrypt(value))
    except IntegrityError as exc:
        raise CredentialExists(f"a credential named {name!r} exists; delete it first") from exc


def credential_delete(*, credential: Credential) -> None:
    credential.delete()


@dataclass
class ResolvedInput:
    input_data: dict[str, Any]
    # The secret values put in, so whatever the node produces can be redacted.
    secrets: list[str] = field(default_factory=list)


def node_input_resolve(*, user_id: int, authored: dict[str, Any], input_data: dict[str, Any]):
    """The node's input with the credential references its author wrote replaced by the run
    owner's secrets. Raises CredentialMissing naming the first one it cannot provide."""
    names = referenced_names(authored)
    if not names:
        return ResolvedInput(input_data)
    rows = dict(
        Credential.objects.filter(owner_id=user_id, name__in=names).values_list(
            "name", "ciphertext"
        )
    )
    values: dict[str, str] = {}

    def lookup(name: str) -> str:
        if name not in values:
            if name not in rows:
                raise CredentialMissing(f"credential {name!r} not found for the run's owner")
            try:
                values[name] = decrypt(rows[name])
            except UndecryptableCredential as exc:
                raise CredentialMissing(f"credential {name!r}: {exc}") from exc
        return values[name]

    resolved = substitute(authored, input_data, lookup)
    if values:
        Credential.objects.filter(owner_id=user_id, name__in=list(values)).update(
            last_used_at=timezone.now()
        )
    return ResolvedInput(resolved, list(values.values()))
