"""Every route a client can reach, given the values that broke it before and their kin:
Unicode digits, NUL, huge and negative numbers, path tricks, huge strings, wrong JSON
types, deep nesting. Path parameters, query strings, JSON bodies and the Idempotency-Key
header; signed in, signed out, and (for the admin) as staff. No answer may be a 5xx.

Schemathesis (test_schemathesis.py) explores the schema's shapes at random; this sweep is
deterministic and goes where a generator seldom does (the admin, the routes outside the
schema, the other parameters held valid while one is hostile)."""

import json
from urllib.parse import quote

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from accounts.services import token_issue

from .conftest import create_graph, run_graph
from .documents import greeting

pytestmark = pytest.mark.integration

# As text: in a path segment or a query string (percent-encoded) and as a header.
HOSTILE_TEXT = [
    "²",
    "\uff11",  # FULLWIDTH DIGIT ONE
    "٣",
    "\x00",
    "a\x00b",
    "9" * 400,
    "-1",
    "0",
    "1e309",
    "NaN",
    "../../etc/passwd",
    "%",
    "%00",
    "🤖",
    " ",
    "",
    "x" * 5000,
    "null",
    "[]",
    "00000000-0000-0000-0000-000000000000",
    "2026-13-45T99:99:99",
]
DEEP: list = []
for _ in range(300):
    DEEP = [DEEP]
ADMIN_HOSTILE = [
    "²",
    "\uff11",
    "\x00",
    "a\x00b",
    "9" * 400,
    "-1",
    "../x",
    "%",
    "🤖",
    "",
    "x" * 5000,
]
# As JSON, in a body field: every type where another is expected, and the limits of each.
HOSTILE_JSON = [
    "²",
    "\u0000",
    "x" * 100_000,
    -1,
    0,
    10**400,
    2**63,
    1.5,
    True,
    None,
    [],
    {},
    DEEP,
    {"$ref": "#/x"},
]


def schema_operations():
    """(path template, method, path parameter names, query parameter names, body fields)
    of every operation in the OpenAPI schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema.get("components", {}).get("schemas", {})
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            params = operation.get("parameters", [])
            fields = []
            body = operation.get("requestBody", {}).get("content", {})
            media = body.get("application/json", {}).get("schema", {})
            if "$ref" in media:
                media = components[media["$ref"].rsplit("/", 1)[1]]
            fields = list(media.get("properties", {}))
            yield (
                path,
                method.upper(),
                [p["name"] for p in params if p["in"] == "path"],
                [p["name"] for p in params if p["in"] == "query"],
                fields,
            )


def fill(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    return path


@pytest.fixture
def real_ids(api, user, worker):
    """Ids of real objects of the user, so that the parameter not under attack is valid
    and the hostile one reaches the code behind it."""
    record = run_graph(api, greeting())
    api.post(
        "/api/credentials/", {"name": "key", "provider": "openai", "secret": "s"}, format="json"
    )
    graph = create_graph(api, greeting())
    schedule = api.post(
        "/api/schedules/",
        {"graph_id": graph["id"], "cron": "0 3 * * *", "inputs": {}},
        format="json",
    ).json()
    return {
        "graph_id": record["graph_id"],
        "execution_id": record["id"],
        "node_execution_id": str(record["node_executions"][0]["id"]),
        "schedule_id": str(schedule.get("id", "")),
        "name": "key",
        "id": record["id"],
    }


def send(client: Client, method: str, path: str, body=None, **headers):
    data = json.dumps(body) if body is not None else None
    return client.generic(method, path, data=data or "", content_type="application/json", **headers)


def test_no_route_answers_a_hostile_value_with_a_server_error(user, real_ids):
    token = token_issue(user=user)[0]
    signed_in = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {token}")
    signed_out = Client(raise_request_exception=False)
    failures: list[str] = []
    sent = 0

    def check(client, method, path, body=None, **headers):
        nonlocal sent
        sent += 1
        response = send(client, method, path, body, **headers)
        if response.status_code >= 500:
            shown = json.dumps(body)[:120] if body is not None else ""
            failures.append(f"{response.status_code} {method} {path[:160]} {shown} {headers}")

    for path, method, path_params, query_params, fields in schema_operations():
        valid = {name: real_ids.get(name, real_ids["id"]) for name in path_params}
        for client in (signed_in, signed_out):
            for name in path_params:
                for value in HOSTILE_TEXT:
                    check(client, method, fill(path, {**valid, name: value}))
            base = fill(path, valid)
            for name in query_params:
                for value in HOSTILE_TEXT:
                    check(client, method, f"{base}?{name}={quote(value, safe='')}")
            if method in ("POST", "PUT", "PATCH"):
                for body in ([], "x", None, 0):
                    check(client, method, base, body)
                for field in fields:
                    for value in HOSTILE_JSON:
                        check(client, method, base, {field: value})
                for key in ("\x00", "x" * 10_000, "²", " "):
                    check(client, method, base, {}, HTTP_IDEMPOTENCY_KEY=key)
    for path in ("/health", "/ready", "/metrics", f"/executions/{real_ids['id']}/live/"):
        for client in (signed_in, signed_out):
            for value in HOSTILE_TEXT:
                check(client, "GET", f"{path}?x={quote(value, safe='')}")
    assert not failures, f"{len(failures)} of {sent} requests got a 5xx:\n" + "\n".join(
        failures[:60]
    )
    assert sent > 2000


def test_no_admin_page_answers_a_hostile_value_with_a_server_error(transactional_db):
    staff = get_user_model().objects.create_superuser("fuzz-admin", password="pw-123456")
    client = Client(raise_request_exception=False)
    client.force_login(staff)
    failures: list[str] = []
    sent = 0
    for model in admin.site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        params = ["q", "p", "o", "e", "_changelist_filters", "all", "id__exact"]
        params += [f.name + "__exact" for f in model._meta.fields][:6]
        for value in ADMIN_HOSTILE:
            encoded = quote(value, safe="")
            paths = [f"{base}?{name}={encoded}" for name in params]
            paths += [f"{base}{encoded}/change/", f"{base}{encoded}/history/"]
            paths += [f"{base}{encoded}/delete/"]
            for path in paths:
                sent += 1
                response = client.get(path)
                if response.status_code >= 500:
                    failures.append(f"{response.status_code} GET {path[:160]}")
    assert not failures, f"{len(failures)} of {sent} admin pages got a 5xx:\n" + "\n".join(
        failures[:60]
    )
