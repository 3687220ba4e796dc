"""Graphs are versioned: each save of a changed document adds a GraphVersion with its own
nodes and links. Versions are never modified, so executions can pin one and workers can
cache its compiled plan."""

import uuid

from django.conf import settings
from django.db import models


class Graph(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="graphs"
    )
    latest_version = models.PositiveIntegerField(default=1)
    # The latest version's name, kept with it for lists and search.
    name = models.CharField(max_length=200, default="")
    # Where notifications about this graph's runs are POSTed (signed), if anywhere.
    webhook_url = models.URLField(max_length=2000, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self):
        return f"{self.name} (v{self.latest_version})"


class GraphVersion(models.Model):
    graph = models.ForeignKey(Graph, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # Sensitive nodes (those that send, post or pay) wait for a person's approval first.
    safe_mode = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["graph", "version"], name="graph_version_unique")
        ]
        ordering = ["graph", "version"]

    def __str__(self):
        return f"{self.name} v{self.version}"


class Node(models.Model):
    graph_version = models.ForeignKey(GraphVersion, on_delete=models.CASCADE, related_name="nodes")
    node_id = models.CharField(max_length=64)
    block = models.CharField(max_length=100)
    input_default = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Time limit of this node's runs in seconds; None keeps the block's own.
    timeout = models.PositiveIntegerField(null=True, blank=True)
    # Position in the document, so the document reads back in the order it was written.
    position = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["graph_version", "node_id"], name="node_id_unique_in_version"
            )
        ]
        ordering = ["graph_version", "position"]

    def __str__(self):
        return f"{self.node_id} ({self.block})"


class Link(models.Model):
    graph_version = models.ForeignKey(GraphVersion, on_delete=models.CASCADE, related_name="links")
    source_id = models.CharField(max_length=64)
    source_name = models.CharField(max_length=200)
    sink_id = models.CharField(max_length=64)
    sink_name = models.CharField(max_length=200)
    is_static = models.BooleanField(default=False)
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["graph_version", "position"]

    def __str__(self):
        return f"{self.source_id}.{self.source_name} -> {self.sink_id}.{self.sink_name}"


class Preset(models.Model):
    """A named, saved set of a graph's inputs (credential references among them, never the
    secrets): a run started with it takes these inputs, the request's own on top."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    graph = models.ForeignKey(Graph, on_delete=models.CASCADE, related_name="presets")
    # The version its runs use; None: the graph's latest when the run starts.
    graph_version = models.PositiveIntegerField(null=True, blank=True)
    name = models.CharField(max_length=200)
    inputs = models.JSONField(default=dict, blank=True)
    # Credits a run started with it may spend (its run tree); null: no budget.
    budget = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["graph", "name"], name="preset_name_unique")]
        ordering = ["name"]

    def __str__(self):
        return self.name
