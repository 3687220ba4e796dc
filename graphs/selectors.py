"""Reading graphs: always scoped to their owner, so another user's graph is simply not found."""

from typing import Any

from django.http import Http404

from .io_schemas import input_schema, output_schema
from .models import Graph, GraphVersion, Preset


def graphs_of(user):
    return Graph.objects.filter(owner=user).order_by("-updated_at")


def graph_get(*, user, graph_id) -> Graph:
    try:
        return Graph.objects.get(pk=graph_id, owner=user)
    except Graph.DoesNotExist as exc:
        raise Http404("graph not found") from exc


def version_get(*, graph: Graph, version: int | None = None) -> GraphVersion:
    number = graph.latest_version if version is None else version
    try:
        return GraphVersion.objects.select_related("graph").get(graph=graph, version=number)
    except GraphVersion.DoesNotExist as exc:
        raise Http404(f"graph {graph.pk} has no version {number}") from exc


def version_numbered(graph: Graph, number: int | None) -> GraphVersion | None:
    """The graph's version of that number (None: the latest), or None if it has none."""
    return GraphVersion.objects.filter(
        graph=graph, version=graph.latest_version if number is None else number
    ).first()


def inputs_checked(version: GraphVersion, inputs: Any) -> dict[str, Any]:
    """`inputs` as a run of this version would take them (validation.validate_graph_inputs
    against its nodes), or GraphInvalid."""
    from .validation import validate_graph_inputs

    nodes = [
        {"id": n.node_id, "block": n.block, "input_default": n.input_default}
        for n in version.nodes.all()
    ]
    return validate_graph_inputs(nodes, inputs)


def version_document(version: GraphVersion) -> dict[str, Any]:
    """The graph document of one version, as the client wrote it."""
    return {
        "name": version.name,
        "description": version.description,
        "safe_mode": version.safe_mode,
        "nodes": [
            {
                "id": n.node_id,
                "block": n.block,
                "input_default": n.input_default,
                "metadata": n.metadata,
                "timeout": n.timeout,
            }
            for n in version.nodes.all()
        ],
        "links": [
            {
                "source_id": link.source_id,
                "source_name": link.source_name,
                "sink_id": link.sink_id,
                "sink_name": link.sink_name,
                "is_static": link.is_static,
            }
            for link in version.links.all()
        ],
    }


def graph_record(version: GraphVersion) -> dict[str, Any]:
    """The API shape of a graph: its document plus id, version and timestamps."""
    graph = version.graph
    document = version_document(version)
    return {
        "id": str(graph.pk),
        "version": version.version,
        "latest_version": graph.latest_version,
        **document,
        "input_schema": input_schema(document["nodes"]),
        "output_schema": output_schema(document["nodes"]),
        "webhook_url": graph.webhook_url,
        "created_at": graph.created_at,
        "updated_at": graph.updated_at,
    }


def presets_of(graph: Graph):
    return Preset.objects.filter(graph=graph).order_by("name")


def preset_get(*, user, preset_id) -> Preset:
    """One of the user's presets; another user's is not found."""
    try:
        return Preset.objects.select_related("graph").get(pk=preset_id, graph__owner=user)
    except (Preset.DoesNotExist, ValueError) as exc:
        raise Http404("preset not found") from exc


def preset_for_run(*, graph: Graph, preset_id, field: str = "preset") -> Preset:
    """The preset a run of `graph` names: one of that graph's (so its owner's), else
    GraphInvalid on `field`."""
    from .validation import GraphInvalid

    preset = Preset.objects.filter(pk=preset_id, graph=graph).first()
    if preset is None:
        raise GraphInvalid([{"field": field, "message": "no such preset of this graph"}])
    return preset


def preset_record(preset: Preset) -> dict[str, Any]:
    return {
        "id": preset.pk,
        "graph_id": preset.graph_id,
        "graph_version": preset.graph_version,
        "name": preset.name,
        "inputs": preset.inputs,
        "budget": preset.budget,
        "created_at": preset.created_at,
        "updated_at": preset.updated_at,
    }
