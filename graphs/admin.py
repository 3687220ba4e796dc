from django.contrib import admin

from .models import Graph, GraphVersion, Link, Node


class NodeInline(admin.TabularInline):
    model = Node
    fields = ("position", "node_id", "block", "input_default", "metadata")
    readonly_fields = fields
    extra = 0
    can_delete = False


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


@admin.register(GraphVersion)
class GraphVersionAdmin(admin.ModelAdmin):
    """Versions are immutable: shown, never edited."""

    list_display = ("name", "graph", "version", "created_at")
    search_fields = ("name", "graph__id")
    readonly_fields = ("graph", "version", "name", "description", "created_at")
    inlines = [NodeInline, LinkInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
