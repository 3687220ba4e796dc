"""docs/examples' catalogue graphs (issue 20), run as a user would, on a real worker."""

import email
import json
from email import policy
from pathlib import Path

import pytest

from .conftest import create_graph, wait_for_run
from .test_control import execute
from .test_file_blocks import smtp  # noqa: F401  (the SMTP server on loopback, a fixture)

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def example(name):
    return json.loads((EXAMPLES / name).read_text())


def test_the_data_toolkit_example(api, worker):
    record = wait_for_run(api, execute(api, create_graph(api, example("data_toolkit.json"))))
    assert record["status"] == "COMPLETED", record
    assert record["outputs"]["report"] == [
        {"kind": "team report", "people": {"count": 3, "first_senior": "Ada", "newest": "Grace"}}
    ]


def test_the_typed_inputs_example(api, worker):
    graph = create_graph(api, example("typed_inputs.json"))
    assert graph["input_schema"]["required"] == ["customer", "quantity", "on"]
    inputs = {"customer": "Ada", "quantity": "2", "gift": "true", "on": "2026-12-24"}
    record = wait_for_run(api, execute(api, graph, inputs))
    assert record["inputs"]["quantity"] == 2 and record["inputs"]["gift"] is True
    assert record["outputs"]["confirmation"] == [
        "Dear Ada, 2 item(s), standard delivery on 2026-12-24, gift-wrapped: 9.0 EUR."
    ]
    bad = api.post(f"/api/graphs/{graph['id']}/execute/",
                   {"inputs": {**inputs, "delivery": "drone"}}, format="json")  # fmt: skip
    assert bad.status_code == 400 and "graph input 'delivery'" in bad.json()["detail"]


def test_the_files_and_email_example(api, worker, smtp):  # noqa: F811
    inbox, port = smtp
    value = f"smtp://user:s3cret%21@127.0.0.1:{port}"
    assert (
        api.post("/api/credentials/", {"name": "smtp", "value": value}, format="json").status_code
        == 201
    )
    graph = create_graph(api, example("files_and_email.json"))
    record = wait_for_run(api, execute(api, graph, {"to": "ada@example.com"}))
    assert record["status"] == "COMPLETED", record
    assert record["outputs"]["status"] == ["sent"]
    file_id = record["outputs"]["file"][0]["$file"]
    assert api.get(f"/api/files/{file_id}/info/").json()["content_type"] == "text/csv"
    ((recipients, raw),) = inbox.messages
    message = email.message_from_bytes(raw, policy=policy.default)
    (attachment,) = list(message.iter_attachments())
    assert recipients == ["ada@example.com"]
    assert attachment.get_content() == "name,score\nAda,10\n"


def test_a_dry_run_of_the_files_and_email_example_stores_and_sends_nothing(
    api,
    worker,
    smtp,  # noqa: F811
):
    from files.models import StoredFile

    inbox, port = smtp
    value = f"smtp://user:s3cret%21@127.0.0.1:{port}"
    api.post("/api/credentials/", {"name": "smtp", "value": value}, format="json")
    graph = create_graph(api, example("files_and_email.json"))
    body = {"inputs": {"to": "ada@example.com"}, "dry_run": True}
    started = api.post(f"/api/graphs/{graph['id']}/execute/", body, format="json")
    record = wait_for_run(api, started.json()["id"])
    assert record["status"] == "COMPLETED" and record["outputs"]["status"] == ["[dry run] not sent"]
    assert not inbox.messages and not StoredFile.objects.exists()


def test_the_examples_that_need_no_key(api, worker):
    greeting = create_graph(api, example("greeting.json"))
    record = wait_for_run(api, execute(api, greeting, {"who": "Ada"}))
    assert record["outputs"] == {"greeting": ["Hello Ada!"]} and record["stats"]["cost"] == 0
    fan = wait_for_run(api, execute(api, create_graph(api, example("fan_out.json"))))
    assert fan["outputs"]["cards"] == [
        f"Greetings from {c}" for c in ("Paris", "Lagos", "Lima", "Osaka")
    ]
    loop = wait_for_run(api, execute(api, create_graph(api, example("loop.json"))))
    assert loop["status"] == "COMPLETED", loop
    assert loop["outputs"] == {"ticks": [3, 2, 1], "done": [0]}
    review = create_graph(api, example("review_step.json"))
    run_id = execute(api, review)
    pending = wait_until_review(api)
    edited = {"data": "Dear team, here are the numbers."}
    assert api.post(f"/api/reviews/{pending}/approve/", edited, format="json").status_code == 200
    assert wait_for_run(api, run_id)["outputs"] == {"sent": ["Dear team, here are the numbers."]}


def wait_until_review(api):
    from .test_control import wait_until

    wait_until(lambda: api.get("/api/reviews/?status=pending").json()["results"])
    return api.get("/api/reviews/?status=pending").json()["results"][0]["id"]


def test_the_readmes_first_graph_works_as_written(api, worker):
    readme = (EXAMPLES.parent.parent / "README.md").read_text()
    section = readme[readme.index("GRAPH=$(curl") :]  # the document it POSTs
    body = section[section.index("-d '{") + 4 : section.index("}'") + 1]
    graph = create_graph(api, json.loads(body))
    record = wait_for_run(api, execute(api, graph, {"who": "Ada"}))
    assert record["outputs"] == {"greeting": ["Hello Ada!"]}


def test_a_model_step_without_any_key_is_refused_before_anything_is_charged(api, settings):
    from credits.models import CreditTransaction
    from executions.models import GraphExecution

    settings.LLM_PLATFORM_KEYS = False  # the operator lends no key
    graph = create_graph(api, example("summarize_page.json"))
    refused = api.post(f"/api/graphs/{graph['id']}/execute/", {"inputs": {"text": "x"}},
                       format="json")  # fmt: skip
    assert refused.status_code == 400, refused.json()
    assert refused.json()["errors"][0]["node_id"] == "summarize"
    assert "needs an API key" in refused.json()["detail"]
    assert not GraphExecution.objects.exists()
    assert not CreditTransaction.objects.filter(type="USAGE").exists()
