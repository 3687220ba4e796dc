"""Creating, versioning and deleting graphs, and their presets."""

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import RestrictedError

from .models import Graph, GraphVersion, Link, Node, Preset
from .selectors import inputs_checked, version_document, version_numbered
from .validation import GraphInvalid, validate_document


class PresetExists(Exception):
    """The graph has a preset of that name already."""


class PresetInUse(Exception):
    """Schedules or triggers run with this preset: change or delete them first."""


@transaction.atomic
def graph_create(*, owner, document: Any) -> GraphVersion:
    doc = validate_document(document)
    graph = Graph.objects.create(
        owner=owner, latest_version=1, name=doc["name"], webhook_url=doc["webhook_url"]
    )
    return _store_version(graph, 1, doc)


@transaction.atomic
def graph_update(*, graph: Graph, document: Any) -> GraphVersion:
    """Saves version N+1 when the document differs from the latest; else returns the latest."""
    doc = validate_document(document)
    # The row lock serialises concurrent saves of one graph: each gets its own number.
    graph = Graph.objects.select_for_update().get(pk=graph.pk)
    if graph.webhook_url != doc["webhook_url"]:  # a setting of the graph, not versioned
        graph.webhook_url = doc["webhook_url"]
        graph.save(update_fields=["webhook_url", "updated_at"])
    latest = GraphVersion.objects.get(graph=graph, version=graph.latest_version)
    if _comparable(version_document(latest)) == _comparable(doc):
        return latest
    graph.latest_version += 1
    graph.name = doc["name"]
    graph.save(update_fields=["latest_version", "name", "updated_at"])
    return _store_version(graph, graph.latest_version, doc)


def graph_delete(*, graph: Graph) -> None:
    graph.delete()


def _store_version(graph: Graph, number: int, doc: dict[str, Any]) -> GraphVersion:
    version = GraphVersion.objects.create(
        graph=graph,
        version=number,
        name=doc["name"],
        description=doc["description"],
        safe_mode=doc["safe_mode"],
    )
    Node.objects.bulk_create(
        Node(
            graph_version=version,
            node_id=n["id"],
            block=n["block"],
            input_default=n["input_default"],
            metadata=n["metadata"],
            timeout=n["timeout"],
            position=i,
        )
        for i, n in enumerate(doc["nodes"])
    )
    Link.objects.bulk_create(
        Link(graph_version=version, position=i, **link) for i, link in enumerate(doc["links"])
    )
    return version


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in ("name", "description", "safe_mode", "nodes", "links")}


# Preset fields a client writes.
PRESET_FIELDS = ("name", "inputs", "graph_version", "budget")


def preset_create(*, graph: Graph, values: dict[str, Any]) -> Preset:
    """A preset of the graph. Raises GraphInvalid (its version or inputs: the inputs must
    start a run of that version by themselves) or PresetExists; stores nothing then."""
    fields = {"name": "", "inputs": {}, "graph_version": None, "budget": None, **values}
    _check_preset(graph, fields)
    return _saved(Preset(graph=graph, **fields))


def preset_update(*, preset: Preset, values: dict[str, Any]) -> Preset:
    """Changes the given fields; the result is checked as a whole, like a new one."""
    for name, value in values.items():
        setattr(preset, name, value)
    _check_preset(preset.graph, {name: getattr(preset, name) for name in PRESET_FIELDS})
    return _saved(preset)


def preset_delete(*, preset: Preset) -> None:
    try:
        with transaction.atomic():
            preset.delete()
    except RestrictedError as exc:  # Schedule.preset, Trigger.preset
        count = len(exc.restricted_objects)
        raise PresetInUse(
            f"{count} schedule(s) or trigger(s) run with this preset: change or delete them first"
        ) from exc


def _check_preset(graph: Graph, fields: dict[str, Any]) -> None:
    number = fields["graph_version"]
    version = version_numbered(graph, number)
    if version is None:
        problem = f"graph {graph.pk} has no version {number}"
        raise GraphInvalid([{"field": "graph_version", "message": problem}])
    fields["inputs"] = inputs_checked(version, fields["inputs"])


def _saved(preset: Preset) -> Preset:
    try:
        with transaction.atomic():
            preset.save()
    except IntegrityError as exc:  # the unique name, taken by this or a concurrent save
        raise PresetExists(f"the graph has a preset named {preset.name!r} already") from exc
    return preset
