from django.contrib import admin
from django.utils.html import format_html_join

from common.admin_display import pretty_json

from .models import Graph, GraphVersion, Link, Node, Preset


class NodeInline(admin.TabularInline):
    model = Node
    fields = ("position", "node_id", "block", "defaults", "timeout", "meta")
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="input defaults")
    def defaults(self, obj):
        return pretty_json(obj.input_default)

    @admin.display(description="metadata")
    def meta(self, obj):
        return pretty_json(obj.metadata)


class LinkInline(admin.TabularInline):
    model = Link
    fields = ("position", "source_id", "source_name", "sink_id", "sink_name", "is_static")
    readonly_fields = fields
    extra = 0
    can_delete = False


class GraphVersionInline(admin.TabularInline):
    model = GraphVersion
    fields = ("version", "name", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Graph)
class GraphAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "owner", "latest_version", "updated_at")
    list_filter = ("owner",)
    search_fields = ("=id", "name", "owner__username")
    readonly_fields = ("id", "name", "owner", "latest_version", "created_at", "updated_at")
    inlines = [GraphVersionInline]

    def has_add_permission(self, request):
        return False  # graphs are made from their document: POST /api/graphs/


@admin.register(GraphVersion)
class GraphVersionAdmin(admin.ModelAdmin):
    """Versions are immutable: shown, never edited."""

    list_display = ("name", "graph", "version", "created_at")

    search_fields = ("name", "graph__id")
    readonly_fields = ("graph", "version", "name", "description", "created_at", "wiring")
    inlines = [NodeInline, LinkInline]

    @admin.display(description="links")
    def wiring(self, obj):
        """The graph as lines of `source.pin -> sink.pin`, in document order."""
        return (
            format_html_join(
                "",
                "<div><code>{}.{} → {}.{}</code>{}</div>",
                (
                    (
                        link.source_id,
                        link.source_name,
                        link.sink_id,
                        link.sink_name,
                        " (static)" if link.is_static else "",
                    )
                    for link in obj.links.all()
                ),
            )
            or "no links"
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    list_display = ("name", "graph", "graph_version", "updated_at")
    search_fields = ("name", "graph__name", "graph__owner__username")
    list_select_related = ("graph",)
    raw_id_fields = ("graph",)
    readonly_fields = ("created_at", "updated_at")
