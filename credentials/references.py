"""Credential references in node inputs, and redaction: plain functions over plain data.

A graph document names a secret as `{"$credential": "NAME"}` anywhere in a node's
`input_default` (a whole pin, or a value inside one, like a header). Only references the
graph's author wrote are resolved: a value that arrived over a link (say an HTTP response
shaped like a reference) is left alone, or a remote server could ask for a user's secrets.

A reference handed on to a sub-graph travels *sealed*: `{"$credential": NAME, "$seal": S}`,
S an HMAC of NAME and the handing node execution under the server's key. Nobody without the
key can make one, and only the child run of that node execution accepts it, wherever it
stands in a node's input; so the child resolves the secret in its own worker and no
plaintext is ever stored on the way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

REF_KEY = "$credential"
SEAL_KEY = "$seal"
REDACTED = "[redacted]"


def reference_name(value: Any) -> str | None:
    """NAME if `value` is exactly {"$credential": NAME}."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get(REF_KEY), str):
        return value[REF_KEY]
    return None


def referenced_names(value: Any) -> set[str]:
    """Every NAME referenced anywhere in `value`."""
    if (name := reference_name(value)) is not None:
        return {name}
    if isinstance(value, dict):
        return set().union(*(referenced_names(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(referenced_names(v) for v in value))
    return set()


def substitute(authored: Any, actual: Any, lookup: Callable[[str], str]) -> Any:
    """`actual` with each reference that also stands at the same place in `authored` (the
    node's own defaults) replaced by lookup(NAME)."""
    name = reference_name(authored)
    if name is not None:
        return lookup(name) if actual == authored else actual
    if isinstance(authored, dict) and isinstance(actual, dict):
        return {
            k: substitute(authored[k], v, lookup) if k in authored else v for k, v in actual.items()
        }
    if isinstance(authored, list) and isinstance(actual, list):
        return [
            substitute(authored[i], v, lookup) if i < len(authored) else v
            for i, v in enumerate(actual)
        ]
    return actual


def sealed_reference(value: Any) -> tuple[str, str] | None:
    """(NAME, SEAL) if `value` is exactly {"$credential": NAME, "$seal": SEAL}."""
    if (
        isinstance(value, dict)
        and len(value) == 2
        and isinstance(value.get(REF_KEY), str)
        and isinstance(value.get(SEAL_KEY), str)
    ):
        return value[REF_KEY], value[SEAL_KEY]
    return None


def sealed(name: str, seal: str) -> dict[str, str]:
    return {REF_KEY: name, SEAL_KEY: seal}


def unseal(value: Any, accept: Callable[[str, str], Any]) -> Any:
    """`value` with each sealed reference replaced by accept(NAME, SEAL), which returns the
    reference itself to leave it as it is."""
    ref = sealed_reference(value)
    if ref is not None:
        return accept(*ref)
    if isinstance(value, dict):
        return {k: unseal(v, accept) for k, v in value.items()}
    if isinstance(value, list):
        return [unseal(v, accept) for v in value]
    return value


def redact(value: Any, secrets: list[str], restore: dict[str, Any] | None = None) -> Any:
    """`value` with every occurrence of a secret inside its strings (and keys) replaced. A
    string that is exactly a secret in `restore` becomes the reference it came from (a
    node that passes a sealed reference through, like `input`, passes it on as it was)."""
    if not secrets:
        return value
    if isinstance(value, str):
        if restore and value in restore:
            return restore[value]
        for secret in sorted(secrets, key=len, reverse=True):
            if secret:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets, restore) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets, restore) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v, secrets, restore) for v in value)
    return value
