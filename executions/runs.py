"""Creating and starting runs.

Every step is safe to run twice and to race with itself on another worker: state changes
are compare-and-set updates that go on only if they moved a row; counters change with SQL
arithmetic in the transaction that changes what they count; tasks are published through
the outbox once that transaction commits."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Literal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from blocks.files import file_ids_in
from blocks.registry import get_block_class
from common import metrics, tracing
from common.tracing import continued, current_traceparent
from credentials.references import referenced_names
from credentials.services import credential_names_of
from credits.costs import price_of
from credits.services import ensure_balance_covers
from files.services import unowned_files
from graphs.models import Graph, Preset
from graphs.pins import merge_dynamic_pins, pin_base
from graphs.selectors import version_get
from graphs.validation import GraphInvalid, validate_graph_inputs

from . import events
from .engine import Plan, Status, first_paid_node
from .finishing import execution_finish
from .limits import reserve_subgraph_run
from .models import GraphExecution, NodeExecution
from .plans import plan_for_version
from .propagation import Propagation
from .selectors import run_traceparent
from .settling import settle
from .slots import oldest_waiting_run, slot_free
from .starts import rerun_queue, starting_queued
from .transitions import move


def execution_create(
    *,
    user,
    graph: Graph,
    inputs: Any,
    version: int | None = None,
    parent_node_execution_id: int | None = None,
    depth: int = 0,
    schedule_id=None,
    preset: Preset | None = None,
    reuse_child: bool = True,
    budget: int | None = None,
    dry_run: bool = False,
    rerun: tuple[Any, list[str]] | None = None,
) -> GraphExecution:
    """Validates the run's inputs and records the execution: RUNNING, its starting nodes
    queued (published once the record is committed), when the user has a free slot; else
    QUEUED, for the end of one of their runs to start it. Raises GraphInvalid on bad input,
    InsufficientCredits when the balance cannot pay the first paid node, and LimitPassed
    when a sub-graph run would pass its tree's ENGINE_MAX_SUBGRAPH_RUNS (nothing is stored
    either way). A `preset` (of this graph) gives its inputs, `inputs` on top, and its
    version unless `version` names one, and its budget unless `budget` is given (credits the
    run tree may spend before a person is asked: run_budgets.py). A `dry_run` also checks
    that every credential it refers to is stored, and runs simulated (dry_runs.py).

    A sub-graph run names the node execution waiting for it. An agent_executor node has one
    child, so a repeated start returns the child it already has; an ai_agent node's graph
    tools (`reuse_child=False`) have one each."""
    if parent_node_execution_id is not None and reuse_child:
        existing = GraphExecution.objects.filter(
            parent_node_execution_id=parent_node_execution_id
        ).first()
        if existing is not None:
            return existing
    if preset is not None:
        if isinstance(inputs, dict) or inputs is None:  # anything else is refused below
            inputs = {**preset.inputs, **(inputs or {})}
        version = preset.graph_version if version is None else version
        budget = preset.budget if budget is None else budget
    graph_version = version_get(graph=graph, version=version)
    plan = plan_for_version(graph_version.pk)
    missing = [n.id for n in plan.nodes.values() if get_block_class(n.block) is None]
    if missing:
        raise GraphInvalid(
            [{"node_id": n, "message": "block no longer exists in the catalogue"} for n in missing]
        )
    nodes = [
        {"id": n.id, "block": n.block, "input_default": n.input_default}
        for n in plan.nodes.values()
    ]
    inputs = validate_graph_inputs(nodes, inputs)
    _ensure_files_owned(user.pk, inputs)
    _ensure_first_paid_node_affordable(user.pk, plan)
    if depth == 0:  # else found missing only once a node resolves it, after paid nodes ran
        _ensure_credentials_exist(user.pk, nodes, inputs)
        _ensure_nodes_can_start(plan)
    run_id = uuid.uuid4()
    # The start's span, if tracing is on (the on-commit publishing of the first nodes in it).
    start_attributes = {"agentgraph.execution_id": str(run_id), "agentgraph.depth": depth,
                        "agentgraph.graph_id": str(graph.pk)}  # fmt: skip
    with tracing.span("start run", start_attributes), transaction.atomic():
        root_id = run_id
        if parent_node_execution_id is not None:  # counted in its tree (LimitPassed)
            parent_run = NodeExecution.objects.filter(id=parent_node_execution_id).values(
                "execution_id", "execution__budget", "execution__dry_run"
            )
            root_id = reserve_subgraph_run(parent_run[0]["execution_id"])
            budget = parent_run[0]["execution__budget"]  # the tree's budget, on every run
            dry_run = parent_run[0]["execution__dry_run"]
        # Started here, in the request's transaction, when a slot is free: written RUNNING,
        # no start task, no second transaction. Without a slot it is written QUEUED; the
        # end of one of the user's runs starts it (slots.slot_freed, under the same lock as
        # this check).
        starts = slot_free(user.pk, depth)
        now = timezone.now()
        time_limit = settings.ENGINE_MAX_EXECUTION_SECONDS
        execution = GraphExecution.objects.create(
            id=run_id,
            root_id=root_id,
            graph=graph,
            graph_version=graph_version,
            user=user,
            inputs=inputs,
            status=Status.RUNNING if starts else Status.QUEUED,
            started_at=now if starts else None,
            deadline=now + timedelta(seconds=time_limit) if starts else None,
            node_limit=settings.ENGINE_MAX_NODE_EXECUTIONS,
            subgraph_limit=settings.ENGINE_MAX_SUBGRAPH_RUNS,
            time_limit=time_limit,
            parent_node_execution_id=parent_node_execution_id,
            depth=depth,
            schedule_id=schedule_id,
            budget=budget,
            dry_run=dry_run,
            rerun_of_id=rerun[0] if rerun else None,
            rerun_nodes=rerun[1] if rerun else None,
            traceparent=current_traceparent(),  # the request's, a schedule's or a parent node's
        )
        # Its first event, built from the row as written (nothing can change a row no other
        # transaction sees yet), goes out with its nodes' in one Redis call.
        first_event = events.run_event_of(execution, nothing_ran=True)
        if starts and rerun is not None:
            rerun_queue(execution.pk, graph_version.pk, inputs, now, rerun[0], rerun[1],
                        first_event)  # fmt: skip
        elif starts:
            _queue_starting_nodes(execution.pk, graph_version.pk, inputs, now, first_event)
        else:
            events.emit(execution.pk, [first_event], announce=True)
    return execution


def _ensure_first_paid_node_affordable(user_id: int, plan: Plan) -> None:
    """Refuse a run whose balance cannot pay the first paid node it would reach."""
    first = first_paid_node(plan, price_of)
    if first is not None:
        node_id, price = first
        what = f"the first paid node {node_id!r} ({plan.nodes[node_id].block})"
        ensure_balance_covers(user_id, price.per_run, what)


def _ensure_nodes_can_start(plan: Plan) -> None:
    """GraphInvalid for each node that could only fail (Block.start_problem: a model block
    with no key where none is lent)."""
    problems = []
    for node_id, node in plan.nodes.items():
        cls = get_block_class(node.block)
        if cls is None or "start_problem" not in vars(cls):
            continue  # a block that checks defines start_problem itself; most do not
        linked = {pin_base(link.sink_name) for link in plan.in_links[node_id]}
        problem = (
            cls.start_problem(merge_dynamic_pins(dict(node.input_default)), linked) if cls else None
        )
        if problem:
            problems.append({"node_id": node_id, "message": problem})
    if problems:
        raise GraphInvalid(problems)


def _ensure_credentials_exist(user_id: int, nodes: list[dict[str, Any]], inputs: Any) -> None:
    """GraphInvalid naming each credential the graph or its inputs refer to that the user
    has not stored."""
    wanted = {n["id"]: referenced_names(n["input_default"]) for n in nodes}
    given = referenced_names(inputs)
    if not given and not any(wanted.values()):
        return  # nothing to look up (most graphs): no query
    stored = credential_names_of(user_id)
    problems = [
        {"node_id": node_id, "message": f"no stored credential named {name!r}"}
        for node_id, names in wanted.items()
        for name in sorted(names - stored)
    ]
    problems += [
        {"field": "inputs", "message": f"no stored credential named {name!r}"}
        for name in sorted(given - stored)
    ]
    if problems:
        raise GraphInvalid(problems)


Start = Literal["started", "no slot", "not queued"]


def start_waiting_runs(user_id: int) -> int:
    """Start a user's oldest waiting runs, one at a time, while they have free slots;
    returns how many started. Two of these racing take turns on the user's lock (each start
    checks the cap again): one that finds its pick started by the other takes the next."""
    started = 0
    for _ in range(settings.ENGINE_MAX_RUNNING_PER_USER + 100):  # bounded, whatever races
        run_id = oldest_waiting_run(user_id)
        if run_id is None:
            break
        outcome = execution_start(run_id)
        if outcome == "no slot":
            break
        started += outcome == "started"
    return started


def execution_start(execution_id) -> Start:
    """A waiting run QUEUED -> RUNNING, then its starting nodes queued. A second call finds
    nothing to do. A user already at ENGINE_MAX_RUNNING_PER_USER keeps the run QUEUED: the
    end of one of their runs starts it (start_waiting_runs). Its graph's subscribers were
    told of it when it was created."""
    # Often started from another run's task: its nodes belong to its own trace.
    with continued(run_traceparent(execution_id)):
        return _execution_start(execution_id)


def _execution_start(execution_id) -> Start:
    with transaction.atomic():
        run = (
            GraphExecution.objects.filter(id=execution_id, status=Status.QUEUED)
            .values(
                "user_id",
                "depth",
                "time_limit",
                "graph_version_id",
                "inputs",
                "rerun_of_id",
                "rerun_nodes",
            )
            .first()
        )
        if run is None:
            return "not queued"
        if not slot_free(run["user_id"], run["depth"]):
            return "no slot"
        now = timezone.now()
        moved = move(
            GraphExecution.objects.filter(id=execution_id),
            Status.QUEUED,
            Status.RUNNING,
            started_at=now,
            deadline=now + timedelta(seconds=run["time_limit"]),
        )
        if not moved:
            return "not queued"
        events.emit_run(execution_id, nothing_ran=True)
        if run["rerun_of_id"] is not None:
            rerun_queue(execution_id, run["graph_version_id"], run["inputs"], now,
                        run["rerun_of_id"], run["rerun_nodes"] or [])  # fmt: skip
        else:
            _queue_starting_nodes(execution_id, run["graph_version_id"], run["inputs"], now)
    return "started"


def _queue_starting_nodes(
    execution_id, version_id: int, inputs: dict, now, first_event: dict | None = None
) -> None:
    """A run just moved to RUNNING: its starting nodes queued and published after commit
    (or the run failed, if they would pass its tree's node limit). `first_event`: the new
    run's first `execution` event, published with the nodes' (announcing the run)."""
    announced = [first_event] if first_event is not None else []
    transaction.on_commit(metrics.EXECUTIONS_STARTED.inc)
    plan = plan_for_version(version_id)
    queued = starting_queued(execution_id, plan, plan.starting_nodes, inputs, now)
    if isinstance(queued, str):  # past the tree's node limit: nothing was written
        events.emit(execution_id, announced, announce=bool(announced))
        execution_finish(execution_id, Status.FAILED, error=queued)
        return
    node_events = Propagation(queued, 0).node_events(execution_id)
    events.emit(execution_id, [*announced, *node_events], announce=bool(announced))
    settle(
        execution_id, plan, version_id, done=0, result=Propagation(queued, len(queued)), unhandled=0
    )


def _ensure_files_owned(user_id: int, inputs: dict[str, Any]) -> None:
    """Every file a run's inputs name ({"$file": id}) must be its user's: GraphInvalid
    naming the input otherwise (another user's file is as unknown as a missing one)."""
    named: dict[str, str] = {}
    for name, value in inputs.items():
        for file_id in file_ids_in(value):
            named.setdefault(file_id, name)
    if not named:
        return  # no file named (most runs): no query
    for file_id in sorted(unowned_files(user_id, set(named))):
        raise GraphInvalid([{"input": named[file_id], "message": f"no file {file_id} of yours"}])
