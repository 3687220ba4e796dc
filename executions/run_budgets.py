"""Run budgets: a run (and so its whole tree: sub-graph runs hold the root's budget) may
spend at most `budget` credits. A paid node whose per-run charge would take the tree's
spend past it does not start: it waits in review ("budget of B reached after spending S:
continue with up to N more?"). Approving raises the budget (to the reviewer's
`{"budget": N}`, or by N, the budget again) and the node goes on; rejecting, or nobody
deciding by the wait's deadline, fails the node naming the budget (and so the run, unless
its error is handled). Token-priced calls are charged after they are made, so a call may
take the spend past the budget; the next paid node then asks."""

from __future__ import annotations

import contextlib
from typing import Any

from django.db.models import Q

from blocks.waiting import WaitFor
from credits.costs import price_of
from credits.selectors import spent_by

from .block_runs import parking
from .claims import ClaimedNode
from .models import GraphExecution, Wait
from .stopping import NodeStopped
from .waits import node_park


def budget_review_needed(claimed: ClaimedNode) -> bool:
    """True when the node must wait for a person: it is parked (or was cancelled meanwhile)
    and its worker moves on. A budget a person just approved is applied to the tree first."""
    if claimed.budget is None:
        return False
    price = price_of(claimed.block).per_run
    wake = claimed.wake if claimed.wake and claimed.wake.kind == Wait.Kind.BUDGET else None
    if price <= 0 or (wake is not None and wake.status != Wait.State.APPROVED):
        return False  # free, or refused (budget_refused says why)
    tree = _tree_of(claimed.execution_id)
    budget = claimed.budget
    if wake is not None:
        budget = _approved_budget(wake.payload, budget)
        GraphExecution.objects.filter(tree).update(budget=budget)
    spent = spent_by(list(GraphExecution.objects.filter(tree).values_list("pk", flat=True)))
    if spent + price <= budget:
        return False
    more = max(budget, price)
    request = WaitFor(
        Wait.Kind.BUDGET,
        data={"budget": budget, "spent": spent, "price": price, "more": more},
        message=(
            f"budget of {budget} credits reached after spending {spent}: node "
            f"{claimed.node_id!r} costs {price}. Continue with up to {more} more? (approve "
            'with {"budget": N} to set another)'
        ),
        editable=True,
    )
    with contextlib.suppress(NodeStopped):
        node_park(parking(claimed), request, kind=Wait.Kind.BUDGET)
    return True


def budget_refused(claimed: ClaimedNode) -> str | None:
    """Why a budget review did not let the node run (its error), or None."""
    wake = claimed.wake
    if wake is None or wake.kind != Wait.Kind.BUDGET or wake.status == Wait.State.APPROVED:
        return None
    said = f": {wake.message}" if wake.message else ""
    return f"the run's budget of {claimed.budget} credits was reached and not raised{said}"


MOST = 2**31 - 1  # what the budget column holds


def _approved_budget(payload: Any, budget: int) -> int:
    """The reviewer's {"budget": N} if they set one (within the column), else the budget
    raised by itself."""
    edited = payload.get("data") if isinstance(payload, dict) else None
    wanted = edited.get("budget") if isinstance(edited, dict) else None
    if isinstance(wanted, int) and not isinstance(wanted, bool) and 0 < wanted <= MOST:
        return wanted
    return min(budget * 2, MOST)


def _tree_of(execution_id) -> Q:
    run = GraphExecution.objects.values("root_id").get(pk=execution_id)
    root = run["root_id"] or execution_id
    return Q(pk=root) | Q(root_id=root)
