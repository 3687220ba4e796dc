from django.contrib import admin

from .models import Credential


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    """Names and owners only: values are never shown, not even encrypted."""

    list_display = ("name", "owner", "created_at", "last_used_at")
    search_fields = ("name", "owner__username")
    fields = ("name", "owner", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
