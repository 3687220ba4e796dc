"""Each node execution's cost, kept from the ledger's changes booked to it."""

from django.db.models import F

from .models import NodeExecution


def add_node_cost(sender, *, node_execution_id: int, amount: int, **kwargs) -> None:
    """Receiver of credits' `node_charged`, in the ledger change's transaction."""
    NodeExecution.objects.filter(id=node_execution_id).update(cost=F("cost") + amount)
