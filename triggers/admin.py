from django.contrib import admin

from .models import Delivery, Trigger


@admin.register(Trigger)
class TriggerAdmin(admin.ModelAdmin):
    """The secret is never shown, not even encrypted."""

    list_display = ("id", "graph", "owner", "enabled", "auth", "created_at")
    list_filter = ("enabled", "auth")
    search_fields = ("id", "graph__name", "owner__username")
    list_select_related = ("graph", "owner")
    fields = ("owner", "graph", "graph_version", "preset", "enabled", "auth", "filters")
    readonly_fields = ("owner", "graph")
    raw_id_fields = ("preset",)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "trigger", "delivery_id", "status", "reason", "execution")
    list_filter = ("status",)
    search_fields = ("delivery_id", "trigger__id", "reason")
    list_select_related = ("trigger", "execution")
    readonly_fields = ("trigger", "delivery_id", "status", "reason", "execution", "created_at")

    def has_add_permission(self, request):
        return False
