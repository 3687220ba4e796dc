"""The console's pages: thin views that load what a page shows (selectors.py and the apps'
selectors) and render it. Every action a page offers goes through the API (its scripts call
it with the session) or one service function."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from knox.models import AuthToken

from accounts.services import token_issue, token_revoke
from credits.selectors import transaction_record, transactions_of
from credits.services import balance_of
from executions.models import GraphExecution
from executions.reviews import review_record, reviews_of
from graphs.selectors import graph_get, graph_record, graphs_of, presets_of, version_get
from schedules.selectors import schedule_record
from triggers.selectors import triggers_of_graph

from .pictures import graph_picture
from .selectors import runs_listing, spend_charts, trace_link


def home(request):
    return redirect("console:runs" if request.user.is_authenticated else "login")


@login_required
def runs(request):
    listing = runs_listing(user=request.user, params=request.GET)
    return render(request, "console/runs.html", {"section": "runs", **listing})


@login_required
def run_page(request, execution_id):
    """A run, live: its owner's, or any for staff."""
    runs = GraphExecution.objects.select_related("graph_version", "graph")
    if not request.user.is_staff:
        runs = runs.filter(user=request.user)
    run = runs.filter(pk=execution_id).first()
    if run is None:
        raise Http404("execution not found")
    get_token(request)  # the CSRF cookie its buttons send back
    return render(request, "console/run.html", {
        "section": "runs", "execution": run,
        "picture": graph_picture(run.graph_version_id),
        "own": run.user_id == request.user.pk,
        "trace": trace_link(run.traceparent),
    })  # fmt: skip


@login_required
def graphs(request):
    return render(request, "console/graphs.html",
                  {"section": "graphs", "graphs": graphs_of(request.user)})  # fmt: skip


@login_required
def graph_page(request, graph_id):
    graph = graph_get(user=request.user, graph_id=graph_id)
    version = version_get(graph=graph, version=_int(request.GET.get("version")))
    record = graph_record(version)
    get_token(request)
    return render(request, "console/graph.html", {
        "section": "graphs", "graph": graph, "version": version, "record": record,
        "input_schema": record["input_schema"],
        "picture": graph_picture(version.pk),
        "versions": graph.versions.order_by("-version"),
        "schedules": [schedule_record(s) for s in graph.schedules.all()],
        "triggers": triggers_of_graph(graph), "presets": presets_of(graph),
        "runs": graph.executions.filter(depth=0).order_by("-created_at")[:10],
    })  # fmt: skip


@login_required
def reviews(request):
    get_token(request)
    pending = [review_record(r) for r in reviews_of(request.user, status="pending")[:100]]
    decided = [review_record(r) for r in reviews_of(request.user).exclude(status="pending")[:20]]
    for record in pending + decided:
        record["data_json"] = json.dumps(record["data"], indent=2, ensure_ascii=False)
    return render(request, "console/reviews.html",
                  {"section": "reviews", "pending": pending, "decided": decided})  # fmt: skip


@login_required
def credits(request):
    ledger = [transaction_record(t) for t in transactions_of(request.user)[:50]]
    balance = balance_of(request.user.pk)
    return render(request, "console/credits.html", {
        "section": "credits", "balance": balance, "ledger": ledger,
        "low": balance < settings.CREDITS_LOW_BALANCE_THRESHOLD,
        "threshold": settings.CREDITS_LOW_BALANCE_THRESHOLD,
        "charts": spend_charts(user=request.user),
    })  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    """The user's API tokens: a new one is shown once; any can be revoked."""
    new_key = None
    if request.method == "POST" and request.POST.get("action") == "create":
        new_key, _ = token_issue(user=request.user)
    elif request.method == "POST" and request.POST.get("action") == "revoke":
        token = AuthToken.objects.filter(
            user=request.user, token_key=request.POST.get("token", "")
        ).first()
        if token is not None:
            token_revoke(token=token)
        return redirect("console:profile")
    tokens = AuthToken.objects.filter(user=request.user).order_by("-created")
    return render(request, "console/profile.html",
                  {"section": "profile", "tokens": tokens, "new_key": new_key})  # fmt: skip


def _int(text):
    return int(text) if text and text.isdigit() else None
