"""Safe mode: in a graph saved with `"safe_mode": true`, each node of a sensitive block (one
that sends, posts or pays: Block.is_sensitive) waits for a person's approval, showing its
inputs, before it runs and before it is charged. Approved, it runs as it is; rejected or not
decided by its deadline, it fails with the reason (an `error` link may handle it)."""

from __future__ import annotations

import contextlib

from blocks.registry import get_block_class
from blocks.waiting import WaitFor

from .block_runs import parking
from .claims import ClaimedNode
from .models import Wait
from .plans import plan_for_version
from .stopping import NodeStopped
from .waits import node_park


def approval_needed(claimed: ClaimedNode) -> bool:
    """True when the node must be approved first: it is parked for review (or was cancelled
    meanwhile) and its worker moves on."""
    if claimed.wake is not None and claimed.wake.kind == Wait.Kind.APPROVAL:
        return False
    if not plan_for_version(claimed.graph_version_id).safe_mode:
        return False
    cls = get_block_class(claimed.block)
    if cls is None or not cls.is_sensitive(claimed.input_data):
        return False
    request = WaitFor(
        Wait.Kind.APPROVAL,
        data=claimed.input_data,  # as written: credential references, never their secrets
        message=f"Safe mode: may {claimed.block} node {claimed.node_id!r} run with these inputs?",
    )
    with contextlib.suppress(NodeStopped):  # cancelled meanwhile: nothing to run
        node_park(parking(claimed), request, kind=Wait.Kind.APPROVAL)
    return True


def refused_in_review(claimed: ClaimedNode) -> str | None:
    """Why an approval did not let the node run (its error), or None."""
    wake = claimed.wake
    if wake is None or wake.kind != Wait.Kind.APPROVAL or wake.status == Wait.State.APPROVED:
        return None
    if wake.status == Wait.State.TIMED_OUT:
        return "not approved in time (safe mode)"
    return "rejected in review (safe mode)" + (f": {wake.message}" if wake.message else "")
