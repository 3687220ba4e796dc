"""The ledger is append-only in the database itself: UPDATE and DELETE of its rows fail,
whatever code tries. Users who already exist get their account and starting grant."""

from django.conf import settings
from django.db import migrations

APPEND_ONLY = """
CREATE FUNCTION credits_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the credit ledger is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER credits_ledger_append_only
    BEFORE UPDATE OR DELETE ON credits_credittransaction
    FOR EACH ROW EXECUTE FUNCTION credits_ledger_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS credits_ledger_append_only ON credits_credittransaction;
DROP FUNCTION IF EXISTS credits_ledger_append_only();
"""


def open_existing_accounts(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    CreditBalance = apps.get_model("credits", "CreditBalance")
    CreditTransaction = apps.get_model("credits", "CreditTransaction")
    grant = settings.CREDITS_STARTING_GRANT
    for user_id in User.objects.filter(credit_balance__isnull=True).values_list("pk", flat=True):
        CreditBalance.objects.create(user_id=user_id, balance=grant)
        if grant > 0:
            CreditTransaction.objects.create(
                user_id=user_id, amount=grant, type="GRANT", balance_after=grant,
                reference=f"starting-grant:{user_id}", metadata={"note": "starting grant"},
            )


class Migration(migrations.Migration):
    dependencies = [
        ("credits", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunSQL(APPEND_ONLY, DROP),
        migrations.RunPython(open_existing_accounts, migrations.RunPython.noop),
    ]
