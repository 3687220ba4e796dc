from django.contrib import admin

from .models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "kind", "message", "read_at")
    list_filter = ("kind",)
    search_fields = ("user__username", "message")
    readonly_fields = ("user", "kind", "message", "data", "created_at", "read_at")

    def has_add_permission(self, request):
        return False
