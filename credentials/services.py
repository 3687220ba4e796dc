"""Storing users' secrets and handing them to a running node."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from .crypto import UndecryptableCredential, decrypt, encrypt
from .models import Credential
from .references import referenced_names, sealed, substitute, unseal

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


def credential_names_of(user_id: int) -> set[str]:
    """The names of the credentials the user has stored."""
    return set(Credential.objects.filter(owner_id=user_id).values_list("name", flat=True))


def credential_delete(*, credential: Credential) -> None:
    credential.delete()


@dataclass
class ResolvedInput:
    input_data: dict[str, Any]
    # The secret values put in, so whatever the node produces can be redacted.
    secrets: list[str] = field(default_factory=list)
    # Secrets that came from a sealed reference: an output that is exactly one of them is
    # put back as that reference, so pass-through nodes (input, store_value) hand it on.
    restore: dict[str, Any] = field(default_factory=dict)


SEAL_SALT = "agentgraph.credentials.seal"


def seal_for(name: str, scope: int) -> str:
    """The seal of credential NAME handed on by node execution `scope` (references.py)."""
    return salted_hmac(SEAL_SALT, f"{scope}:{name}", algorithm="sha256").hexdigest()


def node_input_resolve(
    *,
    user_id: int,
    authored: dict[str, Any] | None,
    input_data: dict[str, Any],
    sealed_by: int | None = None,
    hand_on_as: int | None = None,
) -> ResolvedInput:
    """The node's input with the credential references its author wrote, and the sealed
    references its run was handed (`sealed_by`: the node execution that started this
    sub-graph run), replaced by the run owner's secrets. A block that hands credentials on
    to a run of its own (`hand_on_as`: this node execution) gets them sealed for that run
    instead: no plaintext leaves the worker. Raises CredentialMissing naming the first one
    it cannot provide."""
    names = referenced_names(authored) if authored else set()
    if sealed_by is not None:
        names |= {name for name, seal in _sealed_in(input_data) if _valid(name, seal, sealed_by)}
    if not names:
        return ResolvedInput(input_data)
    rows: dict[str, str] = {}
    if hand_on_as is None:
        rows = dict(
            Credential.objects.filter(owner_id=user_id, name__in=names).values_list(
                "name", "ciphertext"
            )
        )
    values: dict[str, str] = {}
    restore: dict[str, Any] = {}

    def lookup(name: str) -> Any:
        if hand_on_as is not None:
            return sealed(name, seal_for(name, hand_on_as))
        if name not in values:
            if name not in rows:
                raise CredentialMissing(f"credential {name!r} not found for the run's owner")
            try:
                values[name] = decrypt(rows[name])
            except UndecryptableCredential as exc:
                raise CredentialMissing(f"credential {name!r}: {exc}") from exc
        return values[name]

    def accept(name: str, seal: str) -> Any:
        if sealed_by is None or not _valid(name, seal, sealed_by):
            return sealed(name, seal)  # not for this run: left as it is
        value = lookup(name)
        if isinstance(value, str):
            restore[value] = sealed(name, seal)
        return value

    resolved = substitute(authored, input_data, lookup) if authored else input_data
    resolved = unseal(resolved, accept)
    if values:
        Credential.objects.filter(owner_id=user_id, name__in=list(values)).update(
            last_used_at=timezone.now()
        )
    return ResolvedInput(resolved, list(values.values()), restore)


def _valid(name: str, seal: str, scope: int) -> bool:
    return constant_time_compare(seal, seal_for(name, scope))


def _sealed_in(value: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    unseal(value, lambda name, seal: found.append((name, seal)))
    return found
