"""Outbound HTTP: every request a run (or a notification) makes leaves through here.

`policy` decides which addresses may be reached (plain functions); `transport` makes the
connections, to exactly the addresses it checked. A library, not a Django app: blocks and
apps import it; it imports nothing of theirs."""

from .policy import DestinationRefused, Policy, check_url
from .transport import Refused, ResponseTooLarge, client, connect, refusal_of

__all__ = [
    "DestinationRefused",
    "Policy",
    "Refused",
    "ResponseTooLarge",
    "check_url",
    "client",
    "connect",
    "refusal_of",
]
