from django.contrib import admin, messages

from . import control
from .models import GraphExecution, NodeExecution, Recovery


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
    actions = ["cancel_runs", "pause_runs", "resume_runs"]

    def _apply(self, request, queryset, action, verb):
        for execution in queryset:
            try:
                action(execution.pk)
                self.message_user(request, f"{execution.pk}: {verb}.")
            except control.ConflictingState as exc:
                self.message_user(request, f"{execution.pk}: {exc}", messages.WARNING)

    @admin.action(description="Cancel the selected runs")
    def cancel_runs(self, request, queryset):
        self._apply(request, queryset, control.execution_cancel, "cancelled")

    @admin.action(description="Pause the selected runs")
    def pause_runs(self, request, queryset):
        self._apply(request, queryset, control.execution_pause, "paused")

    @admin.action(description="Resume the selected runs (re-runs what failed or was cancelled)")
    def resume_runs(self, request, queryset):
        self._apply(request, queryset, control.execution_resume, "resumed")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Recovery)
class RecoveryAdmin(admin.ModelAdmin):
    """What the watchdog did to keep runs going."""

    list_display = ("created_at", "kind", "execution", "detail")
    list_filter = ("kind",)
    readonly_fields = ("execution", "kind", "detail", "created_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
