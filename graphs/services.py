"""Creating, versioning and deleting graphs."""

from typing import Any

from django.db import transaction

from .models import Graph, GraphVersion, Link, Node
from .selectors import version_document
from .validation import validate_document


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
        graph=graph, version=number, name=doc["name"], description=doc["description"]
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
    return {k: doc[k] for k in ("name", "description", "nodes", "links")}
