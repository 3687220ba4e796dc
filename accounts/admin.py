from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from .services import tokens_revoke_all

User = get_user_model()


class AccountAdmin(UserAdmin):
    """Django's user admin, plus revoking every API token of the selected users (their
    clients get 401 from the next request; tokens are listed under Knox > Auth tokens)."""

    actions = ["revoke_api_tokens"]

    @admin.action(description="Revoke all API tokens of the selected users")
    def revoke_api_tokens(self, request, queryset):
        count = tokens_revoke_all(user_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)


admin.site.unregister(User)
admin.site.register(User, AccountAdmin)
