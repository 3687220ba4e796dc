from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from blocks.registry import all_blocks, get_block_class

from .costs import forget_prices
from .models import BlockCost, CreditBalance, CreditTransaction, ModelPrice, TokenHold
from .services import MAX_AMOUNT, STAFF_TYPES, CreditError, Overdraw, ReferenceInUse, credits_grant


class GrantForm(forms.Form):
    amount = forms.IntegerField(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT)
    type = forms.ChoiceField(
        choices=[(t, t) for t in STAFF_TYPES],
        help_text="GRANT: credits given (a trial, a prize); TOP_UP: credits paid for; "
        "REFUND: credits given back for a charge that should not have been; ADJUSTMENT: a "
        "correction either way (a negative amount takes credits).",
    )
    note = forms.CharField(max_length=1000, required=False)


@admin.register(CreditBalance)
class CreditBalanceAdmin(admin.ModelAdmin):
    """Balances change only through the ledger: the grant action adds a ledger row."""

    list_display = ("user", "balance", "updated_at")
    search_fields = ("user__username",)
    readonly_fields = ("user", "balance", "updated_at")
    actions = ["grant_credits"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Grant, top up or adjust credits of the selected users")
    def grant_credits(self, request, queryset):
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:credits_grant')}?users={ids}")

    def get_urls(self):
        view = self.admin_site.admin_view(self.grant_view)
        return [path("grant/", view, name="credits_grant"), *super().get_urls()]

    def grant_view(self, request):
        ids = [
            int(i) for i in request.GET.get("users", "").split(",") if i.isascii() and i.isdigit()
        ]
        balances = list(CreditBalance.objects.filter(pk__in=ids).select_related("user"))
        form = GrantForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            for balance in balances:
                try:
                    credits_grant(
                        by=request.user, username=balance.user.get_username(), **form.cleaned_data
                    )
                    self.message_user(request, f"{balance.user}: done.")
                except (CreditError, Overdraw, ReferenceInUse) as exc:
                    self.message_user(request, f"{balance.user}: {exc}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:credits_creditbalance_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Grant credits",
            "form": form,
            "balances": balances,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/credits/grant.html", context)


@admin.register(CreditTransaction)
class CreditTransactionAdmin(admin.ModelAdmin):
    """The ledger: read-only. Corrections are new ADJUSTMENT rows (the grant action)."""

    list_display = ("id", "created_at", "user", "type", "amount", "balance_after", "reference")
    list_filter = ("type", "created_at")
    search_fields = ("user__username", "reference", "=execution_id")
    readonly_fields = [f.name for f in CreditTransaction._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class BlockCostForm(forms.ModelForm):
    block = forms.ChoiceField(choices=())

    class Meta:
        model = BlockCost
        fields = ["block", "cost", "cost_per_second", "cost_per_mib"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["block"].choices = [(cls.name, cls.name) for cls in all_blocks()]


@admin.register(BlockCost)
class BlockCostAdmin(admin.ModelAdmin):
    """Override a block's prices without a deploy; empty fields keep the block's own.
    Workers pick changes up within CREDITS_PRICE_CACHE_SECONDS."""

    form = BlockCostForm
    list_display = ("block", "cost", "cost_per_second", "cost_per_mib", "defaults", "updated_at")

    def changelist_view(self, request, extra_context=None):
        """The prices in force of the blocks without a row here: their own."""
        overridden = set(BlockCost.objects.values_list("block", flat=True))
        own = [
            f"{cls.name} {cls.cost}"
            + (f" +{cls.cost_per_second}/s" if cls.cost_per_second else "")
            + (f" +{cls.cost_per_mib}/MiB" if cls.cost_per_mib else "")
            for cls in all_blocks()
            if cls.name not in overridden and (cls.cost or cls.cost_per_second or cls.cost_per_mib)
        ]
        self.message_user(
            request,
            "Blocks without a row here keep their own prices (credits per run): "
            + (", ".join(own) or "none is paid")
            + "; every other block is free.",
            messages.INFO,
        )
        return super().changelist_view(request, extra_context)

    @admin.display(description="block's own prices (run / second / MiB)")
    def defaults(self, obj):
        cls = get_block_class(obj.block)
        return (
            f"{cls.cost} / {cls.cost_per_second} / {cls.cost_per_mib}" if cls else "unknown block"
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_prices()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        forget_prices()


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Token prices of language models, charged after each call made with the platform's
    key; models without a row pay LLM_DEFAULT_PROMPT_PER_1K / LLM_DEFAULT_COMPLETION_PER_1K."""

    list_display = ("model", "prompt_per_1k", "completion_per_1k", "updated_at")
    search_fields = ("model",)

    def changelist_view(self, request, extra_context=None):
        """The price in force for every model without a row, said above the list."""
        self.message_user(
            request,
            f"Models without a price here pay {settings.LLM_DEFAULT_PROMPT_PER_1K} (prompt) "
            f"and {settings.LLM_DEFAULT_COMPLETION_PER_1K} (completion) credits per 1,000 "
            "tokens (LLM_DEFAULT_PROMPT_PER_1K, LLM_DEFAULT_COMPLETION_PER_1K).",
            messages.INFO,
        )
        return super().changelist_view(request, extra_context)


@admin.register(TokenHold)
class TokenHoldAdmin(admin.ModelAdmin):
    """Credits taken before language-model calls, until each call is settled (or given
    back by the watchdog because its task died)."""

    list_display = ("call", "user", "model", "amount", "created_at", "settled_at", "released")
    list_filter = ("released", ("settled_at", admin.EmptyFieldListFilter))
    search_fields = ("call", "user__username")
    readonly_fields = [f.name for f in TokenHold._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
