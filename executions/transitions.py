"""Status changes as compare-and-set updates, checked against the transition tables.

Every status change of a run or a node execution goes through `move`: it refuses (as a
programming error) a change the tables of engine.py do not allow, and changes only the rows
still in one of the expected states, returning how many moved. Callers go on only if their
rows moved.
"""

from collections.abc import Sequence

from django.db.models import QuerySet

from .engine import GRAPH_TRANSITIONS, NODE_TRANSITIONS, check_transition
from .models import GraphExecution


def move(queryset: QuerySet, old: str | Sequence[str], new: str, **fields) -> int:
    table = GRAPH_TRANSITIONS if queryset.model is GraphExecution else NODE_TRANSITIONS
    olds = [old] if isinstance(old, str) else list(old)
    for source in olds:
        check_transition(table, source, new)
    return queryset.filter(status__in=olds).update(status=new, **fields)
