from django.contrib import admin

from .models import StoredFile


@admin.register(StoredFile)
class StoredFileAdmin(admin.ModelAdmin):
    """Read-only: who stored what, how big, when (the bytes are the owner's to download)."""

    list_display = ("id", "owner", "name", "content_type", "size", "created_at")
    list_filter = ("content_type", ("owner", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("id", "name", "owner__username", "sha256")
    readonly_fields = [f.name for f in StoredFile._meta.fields]
    list_select_related = ("owner",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
