"""Schedules and their occurrences. Changes go through services.py so the beat task stays in
step: the fields are read-only here; enable and disable are actions; deleting a schedule
(here or by its graph) removes its beat task too. Beat's own models stay in their admin."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django_celery_beat.models import ClockedSchedule, IntervalSchedule, SolarSchedule

from .models import Occurrence, Schedule
from .selectors import next_runs
from .services import schedule_update

RECENT_OCCURRENCES = 20


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "graph", "cron", "timezone", "enabled", "overlap", "last_run_at")
    list_filter = ("enabled", "overlap", "timezone")
    search_fields = ("id", "graph__id", "graph__name", "owner__username")
    readonly_fields = [
        *(f.name for f in Schedule._meta.fields),
        "upcoming_fire_times",
        "recent_occurrences",
    ]
    actions = ["enable", "disable"]

    @admin.display(description="next fire times")
    def upcoming_fire_times(self, obj):
        return ", ".join(t.isoformat() for t in next_runs(obj)) or "none (disabled)"

    @admin.display(description="recent occurrences")
    def recent_occurrences(self, obj):
        rows = obj.occurrences.order_by("-fire_time")[:RECENT_OCCURRENCES]
        listing = format_html_join(
            "",
            "<li>{} — {} {} {}</li>",
            ((o.fire_time.isoformat(), o.outcome, o.reason, o.detail) for o in rows),
        )
        everything = reverse("admin:schedules_occurrence_changelist") + f"?schedule__id={obj.pk}"
        return format_html('<ul>{}</ul><a href="{}">all occurrences</a>', listing, everything)

    def _set_enabled(self, request, queryset, enabled: bool):
        for schedule in queryset:
            schedule_update(schedule=schedule, changes={"enabled": enabled})
        verb = "enabled" if enabled else "disabled"
        self.message_user(request, f"{queryset.count()} schedule(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Enable the selected schedules")
    def enable(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable the selected schedules")
    def disable(self, request, queryset):
        self._set_enabled(request, queryset, False)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None  # the list and its actions, not the edit form


@admin.register(Occurrence)
class OccurrenceAdmin(admin.ModelAdmin):
    list_display = ("fire_time", "schedule", "outcome", "reason", "execution", "detail")
    list_filter = ("outcome", "reason")
    search_fields = ("schedule__id",)
    readonly_fields = [f.name for f in Occurrence._meta.fields]
    list_select_related = ("schedule",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# Beat's own schedule kinds this project never uses (its schedules are crontabs): kept out
# of the way; periodic tasks and crontabs stay, for operators who look under the hood.
for unused in (IntervalSchedule, SolarSchedule, ClockedSchedule):
    if admin.site.is_registered(unused):
        admin.site.unregister(unused)
