"""Schemathesis against the live ASGI server: every operation of the OpenAPI schema, with
generated (valid and invalid) inputs, as an authenticated user. No answer may be a 5xx.

It runs Schemathesis' own command line (its pytest plugin does not load under pytest 9)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from accounts.services import token_issue

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_no_generated_request_gets_a_server_error(asgi_server, transactional_db, django_user_model):
    user = django_user_model.objects.create_user("fuzzer", password="pw-123456")
    token = token_issue(user=user)[0]
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"http://{asgi_server}/api/schema/?format=json",
            "--url",
            f"http://{asgi_server}",
            "--header",
            f"Authorization: Token {token}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "30",
            "--request-timeout",
            "30",
            "--generation-deterministic",
            "--continue-on-failure",
            # Revoking its own token would leave the fuzzer nothing but 401s; the revocation
            # has its own tests (tests/test_tokens.py).
            "--exclude-operation-id",
            "auth_token_destroy",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    counts = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert counts and counts[1] == counts[2] and int(counts[1]) > 500, report
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    assert selected and int(selected[1]) == int(selected[2]) - 1, report  # every other one
