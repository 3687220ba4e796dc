"""Credits: prices, the ledger, races, the API and the admin (real PostgreSQL, no worker)."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credits.models import BlockCost, CreditBalance, CreditTransaction
from credits.pricing import Price, usage_amount
from credits.services import (
    InsufficientCredits,
    balance_of,
    ledger_apply,
)
from executions.engine import LinkSpec, NodeSpec, Plan, first_paid_node
from executions.models import GraphExecution
from notifications.models import Notification

from .documents import link, node

USAGE, GRANT, REFUND, ADJUSTMENT = "USAGE", "GRANT", "REFUND", "ADJUSTMENT"


def ledger_sum(user_id):
    return CreditTransaction.objects.filter(user_id=user_id).aggregate(s=Sum("amount"))["s"] or 0


def set_balance(user, amount):
    """Bring a balance to `amount` with an ADJUSTMENT row, as staff would."""
    delta = amount - balance_of(user.pk)
    if delta:
        ledger_apply(
            user_id=user.pk, amount=delta, type=ADJUSTMENT, reference=f"set:{user.pk}:{amount}"
        )


# --- prices (pure) --------------------------------------------------------------------------


def test_usage_amount_rounds_to_the_nearest_credit():
    price = Price(per_run=1, per_second=0.1, per_mib=2.0)
    assert usage_amount(price, 0.001, 0) == 0  # microseconds cost nothing
    assert usage_amount(price, 5.0, 0) == 1
    assert usage_amount(price, 60.0, 0) == 6
    assert usage_amount(price, 0, 1024 * 1024) == 2
    assert usage_amount(Price(per_run=3), 100, 10**9) == 0  # no usage part


def test_first_paid_node_is_the_nearest_to_the_start():
    plan = Plan.build(
        [
            NodeSpec("in", "input"),
            NodeSpec("a", "free"),
            NodeSpec("b", "paid2"),
            NodeSpec("c", "paid5"),
            NodeSpec("far", "paid1"),
        ],
        [
            LinkSpec("in", "result", "a", "x"),
            LinkSpec("in", "result", "c", "x"),
            LinkSpec("a", "out", "b", "x"),
            LinkSpec("b", "out", "far", "x"),
        ],
        {"input"},
    )
    prices = {"paid1": Price(1), "paid2": Price(2), "paid5": Price(5)}
    price_of = lambda block: prices.get(block, Price())  # noqa: E731
    assert first_paid_node(plan, price_of) == ("c", Price(5))  # depth 1 beats depth 2
    assert first_paid_node(plan, lambda block: Price()) is None


# --- the ledger -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_new_users_get_the_starting_grant(user):
    rows = list(CreditTransaction.objects.filter(user=user))
    assert [(r.type, r.amount, r.balance_after) for r in rows] == [(GRANT, 100, 100)]
    assert balance_of(user.pk) == 100


@pytest.mark.django_db
def test_a_reference_applies_once(user):
    first = ledger_apply(user_id=user.pk, amount=-7, type=USAGE, reference="r-1")
    again = ledger_apply(user_id=user.pk, amount=-7, type=USAGE, reference="r-1")
    assert first.created and not again.created
    assert again.transaction.pk == first.transaction.pk
    assert balance_of(user.pk) == 93 == ledger_sum(user.pk)


@pytest.mark.django_db
def test_a_charge_the_balance_cannot_pay_changes_nothing(user):
    set_balance(user, 5)
    with pytest.raises(InsufficientCredits, match="balance 5, cost 6"):
        ledger_apply(user_id=user.pk, amount=-6, type=USAGE, reference="too-much")
    assert balance_of(user.pk) == 5 == ledger_sum(user.pk)
    assert not CreditTransaction.objects.filter(reference="too-much").exists()


@pytest.mark.django_db
def test_a_partial_charge_takes_what_there_is_and_says_so(user):
    set_balance(user, 3)
    applied = ledger_apply(user_id=user.pk, amount=-5, type=USAGE, reference="p", partial=True)
    assert applied.transaction.amount == -3 and applied.transaction.metadata["requested"] == -5
    assert balance_of(user.pk) == 0 == ledger_sum(user.pk)


@pytest.mark.django_db
def test_balances_cannot_go_negative_even_bypassing_the_service(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditBalance.objects.filter(user=user).update(balance=-1)


@pytest.mark.django_db
def test_the_ledger_is_append_only_in_the_database(user):
    row = CreditTransaction.objects.get(user=user)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        CreditTransaction.objects.filter(pk=row.pk).update(amount=1_000_000)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        CreditTransaction.objects.filter(pk=row.pk).delete()
    assert CreditTransaction.objects.get(pk=row.pk).amount == 100


@pytest.mark.django_db
def test_crossing_the_low_threshold_and_reaching_zero_notify(user, settings):
    settings.CREDITS_LOW_BALANCE_THRESHOLD = 10
    ledger_apply(user_id=user.pk, amount=-85, type=USAGE, reference="a")  # 100 -> 15
    assert not Notification.objects.exists()
    ledger_apply(user_id=user.pk, amount=-10, type=USAGE, reference="b")  # 15 -> 5: crosses
    ledger_apply(user_id=user.pk, amount=-1, type=USAGE, reference="c")  # 5 -> 4: already low
    ledger_apply(user_id=user.pk, amount=-4, type=USAGE, reference="d")  # 4 -> 0
    kinds = list(
        Notification.objects.filter(user=user).order_by("id").values_list("kind", flat=True)
    )
    assert kinds == ["LOW_BALANCE", "ZERO_BALANCE"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_charges_never_overdraw(user):
    """40 threads, each its own connection, each charging 1 credit against a balance of 15:
    exactly 15 succeed, the balance ends at 0, and the ledger sums to it."""
    set_balance(user, 15)
    barrier = threading.Barrier(40)
    outcomes: list[str] = []

    def charge(i):
        try:
            barrier.wait(timeout=20)
            ledger_apply(user_id=user.pk, amount=-1, type=USAGE, reference=f"race:{i}")
            outcomes.append("paid")
        except InsufficientCredits:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=charge, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("paid") == 15 and outcomes.count("refused") == 25
    assert balance_of(user.pk) == 0 == ledger_sum(user.pk)
    assert CreditTransaction.objects.filter(user=user, type=USAGE).count() == 15


operations = st.lists(
    st.tuples(
        st.sampled_from([GRANT, USAGE, REFUND, ADJUSTMENT, "PARTIAL"]),
        st.integers(min_value=1, max_value=60),
        st.integers(min_value=0, max_value=8),  # a small space of references: repeats happen
    ),
    max_size=25,
)


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_property_balance_equals_ledger_and_never_goes_negative(ops):
    user = get_user_model().objects.create_user(
        f"prop-{CreditTransaction.objects.count()}-{len(ops)}"
    )
    expected = 100
    applied_refs: dict[str, int] = {}
    for kind, size, ref in ops:
        reference = f"{user.pk}:{kind}:{ref}"
        amount = -size if kind in (USAGE, "PARTIAL") else size
        if kind == ADJUSTMENT and ref % 2:
            amount = -size
        try:
            result = ledger_apply(
                user_id=user.pk,
                amount=amount,
                reference=reference,
                partial=kind == "PARTIAL",
                type=USAGE if kind == "PARTIAL" else kind,
            )
        except InsufficientCredits:
            assert expected + amount < 0 and reference not in applied_refs
            continue
        if result.created:
            applied_refs[reference] = result.transaction.amount
            expected += result.transaction.amount
        balance = balance_of(user.pk)
        assert balance == expected == ledger_sum(user.pk)
        assert balance >= 0


# --- API --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_balance_and_ledger_endpoints(api, user, other_api):
    ledger_apply(user_id=user.pk, amount=-4, type=USAGE, reference="u1")
    assert api.get("/api/credits/").json() == {"balance": 96}
    page = api.get("/api/credits/transactions/").json()
    assert page["count"] == 2
    assert [(r["type"], r["amount"], r["balance_after"]) for r in page["results"]] == [
        (USAGE, -4, 96),
        (GRANT, 100, 100),
    ]
    assert set(page["results"][0]) == {
        "id",
        "amount",
        "type",
        "balance_after",
        "reference",
        "metadata",
        "created_at",
    }
    assert api.get("/api/credits/transactions/?type=GRANT").json()["count"] == 1
    assert api.get("/api/credits/transactions/?type=NOPE").status_code == 400
    assert api.get("/api/credits/transactions/?execution=bad").status_code == 400
    assert other_api.get("/api/credits/transactions/").json()["count"] == 1  # only their own


@pytest.mark.django_db
def test_transactions_filter_by_execution(api, user):
    from graphs.services import graph_create

    from .documents import greeting

    version = graph_create(owner=user, document=greeting())
    run = GraphExecution.objects.create(graph=version.graph, graph_version=version, user=user)
    ledger_apply(user_id=user.pk, amount=-2, type=USAGE, reference="x", execution_id=run.pk)
    rows = api.get(f"/api/credits/transactions/?execution={run.pk}").json()["results"]
    assert [r["reference"] for r in rows] == ["x"]


@pytest.mark.django_db
def test_ledger_rows_cannot_be_changed_through_the_api(api, user):
    row = CreditTransaction.objects.get(user=user)
    for method in ("put", "patch", "delete"):
        assert (
            getattr(api, method)("/api/credits/transactions/", {}, format="json").status_code == 405
        )
        assert getattr(api, method)("/api/credits/", {}, format="json").status_code == 405
    assert api.get(f"/api/credits/transactions/{row.pk}/").status_code == 404


@pytest.mark.django_db
def test_staff_grant_top_up_and_adjust(staff_api, api, user):
    grant = staff_api.post(
        "/api/credits/grant/",
        {"username": user.username, "amount": 50, "note": "welcome"},
        format="json",
    )
    assert grant.status_code == 201 and grant.json()["type"] == GRANT
    assert grant.json()["metadata"] == {"note": "welcome", "by": "staffer"}
    top_up = {"username": user.username, "amount": 5, "type": "TOP_UP", "reference": "pay-42"}
    assert staff_api.post("/api/credits/grant/", top_up, format="json").status_code == 201
    assert staff_api.post("/api/credits/grant/", top_up, format="json").status_code == 200  # once
    # The same reference for someone else is not a retry: 409, and their balance is untouched.
    other = get_user_model().objects.create_user("another-payer", password="pw-123456")
    reused = staff_api.post(
        "/api/credits/grant/", {**top_up, "username": other.username}, format="json"
    )
    assert reused.status_code == 409 and "pay-42" in reused.json()["detail"]
    assert balance_of(other.pk) == 100
    adjust = {"username": user.username, "amount": -55, "type": "ADJUSTMENT"}
    assert staff_api.post("/api/credits/grant/", adjust, format="json").status_code == 201
    assert balance_of(user.pk) == 100 == ledger_sum(user.pk)
    too_far = staff_api.post("/api/credits/grant/", {**adjust, "amount": -101}, format="json")
    assert too_far.status_code == 409 and "below zero" in too_far.json()["detail"]
    assert balance_of(user.pk) == 100


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"username": "", "amount": 5},
        {"username": "nobody-here", "amount": 5},
        {"amount": 0},
        {"amount": -5, "type": "GRANT"},
        {"amount": 5, "type": "USAGE"},
        {"amount": "lots"},
        {"amount": 1.5},
        {"amount": 10**15},
        {"amount": True},
    ],
)
def test_bad_grants_are_400_and_change_nothing(staff_api, user, body):
    body = {"username": user.username, **body}
    response = staff_api.post("/api/credits/grant/", body, format="json")
    assert response.status_code == 400, response.json()
    assert CreditTransaction.objects.filter(user=user).count() == 1


@pytest.mark.django_db
def test_only_staff_may_grant(api, user):
    response = api.post(
        "/api/credits/grant/", {"username": user.username, "amount": 5}, format="json"
    )
    assert response.status_code == 403
    assert balance_of(user.pk) == 100


@pytest.mark.django_db
def test_execute_without_credits_for_the_first_paid_node_is_402(api, user):
    paid = {
        "name": "Paid",
        "nodes": [
            node("start", "input", name="x", value=1),
            node("wait", "sleep", seconds=0),
            node("out", "output", name="o"),
        ],
        "links": [link("start", "result", "wait", "value"), link("wait", "output", "out", "value")],
    }
    gid = api.post("/api/graphs/", paid, format="json").json()["id"]
    set_balance(user, 0)
    response = api.post(f"/api/graphs/{gid}/execute/", {}, format="json")
    assert response.status_code == 402
    body = response.json()
    assert body["balance"] == 0 and body["cost"] == 1
    assert "'wait' (sleep) costs 1" in body["detail"]
    assert not GraphExecution.objects.exists()
    free = {"name": "Free", "nodes": [node("o", "output", name="o", value=1)]}
    free_id = api.post("/api/graphs/", free, format="json").json()["id"]
    assert api.post(f"/api/graphs/{free_id}/execute/", {}, format="json").status_code == 201


@pytest.mark.django_db
def test_blocks_show_the_prices_in_force(api, settings):
    blocks = {b["name"]: b for b in api.get("/api/blocks/").json()}
    assert blocks["sleep"]["cost"] == 1 and blocks["sleep"]["cost_per_second"] == 0.1
    assert blocks["http_request"]["cost"] == 2 and blocks["calculator"]["cost"] == 0
    BlockCost.objects.create(block="calculator", cost=3)
    BlockCost.objects.create(block="sleep", cost_per_second=0)
    settings.CREDITS_PRICE_CACHE_SECONDS = 0
    blocks = {b["name"]: b for b in api.get("/api/blocks/").json()}
    assert blocks["calculator"]["cost"] == 3
    assert blocks["sleep"]["cost"] == 1 and blocks["sleep"]["cost_per_second"] == 0


# --- admin ------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, db):
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-123456")
    client.force_login(boss)
    return client


@pytest.mark.django_db
def test_admin_ledger_is_read_only(admin_client, user):
    row = CreditTransaction.objects.get(user=user)
    assert admin_client.get("/admin/credits/credittransaction/").status_code == 200
    assert admin_client.get(f"/admin/credits/credittransaction/{row.pk}/change/").status_code == 200
    assert admin_client.get("/admin/credits/credittransaction/add/").status_code == 403
    response = admin_client.post(
        f"/admin/credits/credittransaction/{row.pk}/change/", {"amount": 9}
    )
    assert response.status_code == 403
    response = admin_client.post(
        f"/admin/credits/credittransaction/{row.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403
    bulk_delete = {"action": "delete_selected", "_selected_action": [row.pk]}
    bulk = admin_client.post("/admin/credits/credittransaction/", bulk_delete)
    assert bulk.status_code in (200, 302)
    assert CreditTransaction.objects.filter(pk=row.pk, amount=100).exists()


@pytest.mark.django_db
def test_admin_grant_action_adds_ledger_rows(admin_client, user):
    response = admin_client.post(
        "/admin/credits/creditbalance/", {"action": "grant_credits", "_selected_action": [user.pk]}
    )
    assert response.status_code == 302 and "grant" in response["Location"]
    form = admin_client.get(response["Location"])
    assert form.status_code == 200 and user.username in form.content.decode()
    done = admin_client.post(
        response["Location"], {"amount": -30, "type": "ADJUSTMENT", "note": "fix"}
    )
    assert done.status_code == 302
    assert balance_of(user.pk) == 70 == ledger_sum(user.pk)
    refused = admin_client.post(
        response["Location"], {"amount": -500, "type": "ADJUSTMENT"}, follow=True
    )
    assert "insufficient credits" in refused.content.decode()
    assert balance_of(user.pk) == 70


@pytest.mark.django_db
def test_admin_edits_block_prices(admin_client, api):
    assert admin_client.get("/admin/credits/blockcost/add/").status_code == 200
    response = admin_client.post(
        "/admin/credits/blockcost/add/", {"block": "calculator", "cost": 4}
    )
    assert response.status_code == 302
    blocks = {b["name"]: b for b in api.get("/api/blocks/").json()}
    assert blocks["calculator"]["cost"] == 4
    listing = admin_client.get("/admin/credits/blockcost/").content.decode()
    assert "0 / 0.0 / 0.0" in listing  # the block's own prices, beside the override
