from django.contrib import admin

from .models import GraphExecution, NodeExecution


class NodeExecutionInline(admin.TabularInline):
    model = NodeExecution
    fields = (
        "id",
        "node_id",
        "block",
        "status",
        "attempts",
        "cost",
        "input_data",
        "output_data",
        "error",
        "task_id",
        "queued_at",
        "started_at",
        "ended_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(GraphExecution)
class GraphExecutionAdmin(admin.ModelAdmin):
    list_display = ("id", "graph", "user", "status", "created_at", "ended_at")
    list_filter = ("status", "created_at")
    search_fields = ("id", "graph__id", "user__username")
    readonly_fields = [f.name for f in GraphExecution._meta.fields]
    inlines = [NodeExecutionInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
