"""API tokens (django-rest-knox): stored hashed, one per client, revocable by their holder
and by the admin, expiring after API_TOKEN_TTL; WebSocket tickets: short-lived, single
use."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accounts.services import token_issue, tokens_purge_expired

pytestmark = pytest.mark.django_db


def login(username, password="pw-123456"):
    response = APIClient().post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )
    assert response.status_code == 200, response.json()
    return response.json()


def as_token(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_each_login_is_a_token_of_its_own_and_only_its_digest_is_stored(user):
    first, second = login(user.username), login(user.username)
    assert first["token"] != second["token"] and first["expiry"] is None
    assert as_token(first["token"]).get("/api/graphs/").status_code == 200
    assert as_token(second["token"]).get("/api/graphs/").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(t)::text FROM knox_authtoken t")
        stored = " ".join(row[0] for row in cursor.fetchall())
    assert first["token"] not in stored and second["token"] not in stored


def test_a_revoked_token_gets_401_and_the_clients_other_tokens_keep_working(user):
    first, second = login(user.username)["token"], login(user.username)["token"]
    assert as_token(first).delete("/api/auth/token/").status_code == 204
    refused = as_token(first).get("/api/graphs/")
    assert refused.status_code == 401 and "token" in refused.json()["detail"].lower()
    assert as_token(first).delete("/api/auth/token/").status_code == 401
    assert as_token(second).get("/api/graphs/").status_code == 200


def test_tokens_expire_after_the_ttl(user, settings):
    settings.API_TOKEN_TTL = 3600
    issued = login(user.username)
    assert issued["expiry"] is not None
    assert as_token(issued["token"]).get("/api/graphs/").status_code == 200
    AuthToken.objects.filter(user=user).update(expiry=timezone.now() - timedelta(seconds=1))
    assert as_token(issued["token"]).get("/api/graphs/").status_code == 401
    assert not AuthToken.objects.filter(user=user).exists()  # dropped when seen


def test_expired_tokens_are_purged(user):
    token_issue(user=user)
    AuthToken.objects.filter(user=user).update(expiry=timezone.now() - timedelta(seconds=1))
    live, _ = token_issue(user=user)
    assert tokens_purge_expired() == 1
    assert as_token(live).get("/api/graphs/").status_code == 200


def test_the_admin_revokes_every_token_of_a_user(user, client):
    keys = [token_issue(user=user)[0] for _ in range(2)]
    boss = get_user_model().objects.create_superuser("boss", "b@example.com", "pw-123456")
    client.force_login(boss)
    response = client.post(
        "/admin/auth/user/",
        {"action": "revoke_api_tokens", "_selected_action": [user.pk]},
        follow=True,
    )
    assert "2 token(s) revoked" in response.content.decode()
    assert all(as_token(key).get("/api/graphs/").status_code == 401 for key in keys)


def test_malformed_tokens_are_401_not_errors():
    for header in ("Token ab\x00cd", "Token " + "a" * 5000, "Token " + "g" * 64, "Token"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        assert client.get("/api/graphs/").status_code == 401


def test_a_ticket_needs_a_login(api):
    assert APIClient().post("/api/auth/ws-ticket/").status_code == 401
    issued = api.post("/api/auth/ws-ticket/")
    assert issued.status_code == 201 and issued.json()["expires_in"] > 0


# --- on the WebSocket -------------------------------------------------------------------------


def closed_with(url, headers=None):
    """The close code the server ends the socket with, right after it opens."""
    with connect(url, open_timeout=10, additional_headers=headers) as ws:
        try:
            while True:
                ws.recv(timeout=10)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


def pong(url):
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"action": "ping"}))
        return json.loads(ws.recv(timeout=10))["type"] == "pong"


@pytest.mark.integration
def test_a_revoked_token_is_refused_on_the_websocket_with_4401(user, asgi_server, transactional_db):
    key = login(user.username)["token"]
    url = f"ws://{asgi_server}/ws/executions/?token={key}"
    assert pong(url)
    assert as_token(key).delete("/api/auth/token/").status_code == 204
    assert closed_with(url) == 4401
    header = {"Authorization": f"Token {key}"}
    assert closed_with(f"ws://{asgi_server}/ws/executions/", header) == 4401


@pytest.mark.integration
def test_a_ticket_opens_one_socket_once(user, asgi_server, transactional_db):
    client = as_token(token_issue(user=user)[0])
    ticket = client.post("/api/auth/ws-ticket/").json()["ticket"]
    url = f"ws://{asgi_server}/ws/executions/?ticket={ticket}"
    assert pong(url)
    assert closed_with(url) == 4401  # used already
    assert closed_with(f"ws://{asgi_server}/ws/executions/?ticket=made-up-ticket-0000000") == 4401
