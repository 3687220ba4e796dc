import uuid
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from common.admin_display import pretty_json, pretty_text, status_badge
from credits.services import InsufficientCredits
from graphs.validation import GraphInvalid

from . import control
from .control import ConflictingState
from .limits import LimitPassed
from .models import GraphExecution, NodeExecution, NodeLogLine, OutboxMessage, Recovery, Wait
from .reruns import run_again, run_again_preview
from .reviews import ReviewDecided, review_decide
from .waits import REVIEW_KINDS


def _previews(execution) -> dict[str, Any]:
    """A run's two ways of running again, as the confirmation page shows them: from the
    start, and from its stopped nodes when that reuses any."""
    try:
        stopped = run_again_preview(execution=execution, from_stopped=True)
        start = run_again_preview(execution=execution, from_stopped=False)
    except GraphInvalid as exc:
        return {"problem": str(exc)}
    return {"start": start, "stopped": stopped if stopped["reused"] else None}


def _duration(start, end) -> str:
    if start is None or end is None:
        return "-"
    return f"{(end - start).total_seconds():.3f} s"


class NodeExecutionInline(admin.TabularInline):
    model = NodeExecution
    fields = (
        "id",
        "node_id",
        "block",
        "status",
        "attempts",
        "cost",
        "inputs",
        "outputs",
        "error_text",
        "task_id",
        "worker",
        "queued_at",
        "queue_wait",
        "run_time",
        "log",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="input")
    def inputs(self, obj):
        return pretty_json(obj.input_data)

    @admin.display(description="output")
    def outputs(self, obj):
        return pretty_json(obj.output_data)

    @admin.display(description="error")
    def error_text(self, obj):
        return pretty_text(obj.error)

    @admin.display(description="log")
    def log(self, obj):
        url = reverse("admin:executions_nodelogline_changelist")
        return format_html('<a href="{}?node_execution__id__exact={}">lines</a>', url, obj.pk)

    @admin.display(description="waited")
    def queue_wait(self, obj):
        return _duration(obj.queued_at, obj.started_at)

    @admin.display(description="ran")
    def run_time(self, obj):
        return _duration(obj.started_at, obj.ended_at)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(GraphExecution)
class GraphExecutionAdmin(admin.ModelAdmin):
    list_display = ("short_id", "graph", "user", "badge", "cost", "duration", "created_at", "page")
    list_filter = (
        "status",
        ("graph", admin.RelatedOnlyFieldListFilter),
        ("user", admin.RelatedOnlyFieldListFilter),
        "created_at",
    )
    date_hierarchy = "created_at"
    search_fields = ("id",)  # see get_search_results
    list_select_related = ("graph", "user")
    readonly_fields = [
        *(f.name for f in GraphExecution._meta.fields if f.name not in ("inputs", "outputs")),
        "inputs_pretty",
        "outputs_pretty",
    ]
    inlines = [NodeExecutionInline]
    actions = ["cancel_runs", "pause_runs", "resume_runs", "rerun"]

    @admin.display(description="inputs")
    def inputs_pretty(self, obj):
        return pretty_json(obj.inputs)

    @admin.display(description="outputs")
    def outputs_pretty(self, obj):
        return pretty_json(obj.outputs)

    @admin.display(description="duration")
    def duration(self, obj):
        return _duration(obj.started_at, obj.ended_at)

    @admin.display(description="run", ordering="id")
    def short_id(self, obj):
        return str(obj.pk)[:8]

    @admin.display(description="status", ordering="status")
    def badge(self, obj):
        return status_badge(obj.status)

    @admin.display(description="cost")
    def cost(self, obj):
        return (obj.stats or {}).get("cost", "-")

    @admin.display(description="run page")
    def page(self, obj):
        return format_html('<a href="{}">open</a>', reverse("console:run", args=[obj.pk]))

    def get_search_results(self, request, queryset, search_term):
        """A run id or graph id finds its runs; anything else searches user names."""
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            key = uuid.UUID(term)
        except ValueError:
            return queryset.filter(user__username__icontains=term), False
        return queryset.filter(Q(id=key) | Q(graph_id=key)), False

    @admin.action(description="Re-run the selected runs (preview first)")
    def rerun(self, request, queryset):
        """First a page with each run's preview (what a re-run from its stopped nodes, or
        from the start, reuses, runs, fires again and costs); its Confirm runs them again,
        as their owners."""
        runs = list(queryset.select_related("graph", "graph_version", "user"))
        from_stopped = request.POST.get("from", "stopped") == "stopped"
        if request.POST.get("confirmed") != "yes":
            return TemplateResponse(
                request, "admin/executions/rerun_confirm.html",
                {**self.admin_site.each_context(request), "opts": self.model._meta,
                 "title": "Re-run runs", "runs": [(run, _previews(run)) for run in runs],
                 "checkbox": helpers.ACTION_CHECKBOX_NAME},
            )  # fmt: skip
        for execution in runs:
            try:
                new = run_again(user=execution.user, execution=execution, from_stopped=from_stopped)
                self.message_user(request, f"{execution.pk}: re-run as {new.pk}.")
            except (GraphInvalid, InsufficientCredits, LimitPassed, ConflictingState) as exc:
                self.message_user(request, f"{execution.pk}: {exc}", messages.WARNING)
        return None

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


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    """Messages committed for publishing that the broker has not taken yet (normally none
    for more than a moment; many means the broker is down or no worker runs a relay)."""

    list_display = ("id", "created_at", "kind")
    list_filter = ("kind",)
    readonly_fields = ("kind", "body", "created_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class PendingReviews(admin.SimpleListFilter):
    """The inbox: reviews nobody decided yet (the default view)."""

    title = "inbox"
    parameter_name = "inbox"

    def lookups(self, request, model_admin):
        return [("pending", "Reviews to decide"), ("all", "Every wait")]

    def queryset(self, request, queryset):
        if self.value() == "all":
            return queryset
        return queryset.filter(kind__in=REVIEW_KINDS, status=Wait.State.PENDING)

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            selected = self.value() == lookup or (self.value() is None and lookup == "pending")
            yield {
                "selected": selected,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


@admin.register(Wait)
class WaitAdmin(admin.ModelAdmin):
    """Parked nodes and the review inbox: approve or reject the selected reviews."""

    list_display = ("node_id", "kind", "status", "user", "execution", "created_at", "deadline")
    list_filter = (PendingReviews, "kind", "status")
    search_fields = ("node_id", "key", "execution__id")
    fields = (
        "execution", "node_execution", "node_id", "user", "kind", "status", "key",
        "message", "data_pretty", "editable", "on_timeout", "deadline", "payload_pretty",
        "response", "decided_by", "created_at", "decided_at",
    )  # fmt: skip
    readonly_fields = fields
    actions = ["approve", "reject"]

    @admin.display(description="data")
    def data_pretty(self, obj):
        return pretty_json(obj.data)

    @admin.display(description="decision payload")
    def payload_pretty(self, obj):
        return pretty_json(obj.payload)

    @admin.action(description="Approve the selected reviews")
    def approve(self, request, queryset):
        self._decide(request, queryset, approve=True)

    @admin.action(description="Reject the selected reviews")
    def reject(self, request, queryset):
        self._decide(request, queryset, approve=False)

    def _decide(self, request, queryset, *, approve: bool) -> None:
        decided = 0
        for review in queryset.filter(kind__in=REVIEW_KINDS):
            try:
                review_decide(review=review, user=request.user, approve=approve)
                decided += 1
            except ReviewDecided as exc:
                self.message_user(request, f"{review.node_id}: {exc}", messages.WARNING)
        verb = "approved" if approve else "rejected"
        self.message_user(request, f"{decided} review(s) {verb}.", messages.SUCCESS)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(NodeLogLine)
class NodeLogLineAdmin(admin.ModelAdmin):
    """What node executions logged (their blocks, and the engine: retries, take-overs,
    waits); read-only. Open from a run's node executions (their *log* link)."""

    list_display = ("created_at", "node_execution", "level", "message")
    list_filter = ("level",)
    search_fields = ("message", "=node_execution__id")
    readonly_fields = [f.name for f in NodeLogLine._meta.fields]
    list_select_related = ("node_execution",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
