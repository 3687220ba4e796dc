from django.contrib import admin

from .models import Notification, WebhookAttempt, WebhookDelivery


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "kind", "message", "read_at")
    list_filter = ("kind",)
    search_fields = ("user__username", "message")
    readonly_fields = ("user", "kind", "message", "data", "created_at", "read_at")

    def has_add_permission(self, request):
        return False


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("created_at", "status_code", "error", "duration_ms")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "url", "status", "attempts", "delivered_at")
    list_filter = ("status",)
    readonly_fields = ("notification", "url", "status", "attempts", "created_at", "delivered_at")
    inlines = [WebhookAttemptInline]

    def has_add_permission(self, request):
        return False
