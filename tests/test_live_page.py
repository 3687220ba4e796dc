"""The live run page in headless Chromium (Debian's, driven by Selenium): node boxes change
colour as the run goes, the final status shows, Cancel works."""

import shutil

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from .conftest import create_graph
from .documents import link, node
from .test_agent import model  # noqa: F401  (the scripted model server, a fixture)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver"),
]


@pytest.fixture
def browser(asgi_server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def logged_in(browser, asgi_server, user):
    client = Client()
    client.force_login(user)
    browser.get(f"http://{asgi_server}/health")  # a page of the domain, to set its cookie
    browser.add_cookie(
        {
            "name": settings.SESSION_COOKIE_NAME,
            "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "path": "/",
        }
    )


def status_of(browser, node_id):
    return browser.find_element("css selector", f'.node[data-node="{node_id}"]').get_attribute(
        "data-status"
    )


def test_the_live_page_follows_a_run(api, user, worker, asgi_server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    graph = create_graph(
        api,
        {
            "name": "Watched",
            "nodes": [
                node("wait", "sleep", seconds=2, value="done"),
                node("out", "output", name="result"),
            ],
            "links": [link("wait", "output", "out", "value")],
        },
    )
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    logged_in(browser, asgi_server, user)
    browser.get(f"http://{asgi_server}/executions/{run_id}/live/")
    wait = WebDriverWait(browser, 20, poll_frequency=0.05)
    wait.until(lambda b: b.find_element("id", "connection").text == "live")
    wait.until(lambda b: status_of(b, "wait") == "RUNNING")  # seen while it runs
    assert status_of(browser, "out") in ("", "QUEUED", None)
    wait.until(lambda b: b.find_element("id", "status").text == "COMPLETED")
    assert status_of(browser, "wait") == "COMPLETED" and status_of(browser, "out") == "COMPLETED"
    outputs = browser.find_element("id", "outputs").text
    assert "out.output:" in outputs and '"done"' in outputs
    assert browser.find_element("id", "cancel").get_attribute("disabled") == "true"
    assert browser.find_element("id", "cost").text == "1"


def test_cancel_from_the_live_page(api, user, worker, asgi_server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    graph = create_graph(api, {"name": "Long", "nodes": [node("wait", "sleep", seconds=30)]})
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    logged_in(browser, asgi_server, user)
    browser.get(f"http://{asgi_server}/executions/{run_id}/live/")
    wait = WebDriverWait(browser, 20, poll_frequency=0.05)
    wait.until(lambda b: status_of(b, "wait") == "RUNNING")
    browser.find_element("id", "cancel").click()
    wait.until(lambda b: b.find_element("id", "status").text == "CANCELLED")
    assert status_of(browser, "wait") == "CANCELLED"


def test_the_live_page_is_for_its_owner(api, user, other_user, worker, asgi_server):
    graph = create_graph(api, {"name": "Mine", "nodes": [node("o", "output", name="o", value=1)]})
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    assert Client().get(f"/executions/{run_id}/live/").status_code == 302  # log in first
    stranger = Client()
    stranger.force_login(other_user)
    assert stranger.get(f"/executions/{run_id}/live/").status_code == 404
    owner = Client()
    owner.force_login(get_user_model().objects.get(pk=user.pk))
    assert owner.get(f"/executions/{run_id}/live/").status_code == 200


def test_the_live_page_shows_a_models_text_as_it_streams(
    api,
    user,
    worker,
    asgi_server,
    browser,
    model,  # noqa: F811  (the fixture imported above)
):
    from selenium.webdriver.support.ui import WebDriverWait

    text = "Once upon a time, " * 30
    model.script = [{"text": text, "pause": 0.02}]  # about 3 s of tokens
    document = {
        "name": "Storyteller",
        "nodes": [node("tell", "llm_text", prompt="A story."), node("out", "output", name="s")],
        "links": [link("tell", "response", "out", "value")],
    }
    graph = create_graph(api, document)
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    logged_in(browser, asgi_server, user)
    browser.get(f"http://{asgi_server}/executions/{run_id}/live/")
    wait = WebDriverWait(browser, 20, poll_frequency=0.05)

    def shown():
        panels = browser.find_elements("css selector", "pre.stream")
        return panels[0].text if panels else ""

    wait.until(lambda _: 0 < len(shown()) < len(text.strip()))  # part of it, while it streams
    wait.until(lambda _: status_of(browser, "tell") == "COMPLETED")
    assert shown().rstrip() == text.rstrip()  # all of it, once, in order


def test_a_re_run_from_the_live_page_shows_its_preview_first(
    api, user, worker, asgi_server, browser
):
    from selenium.webdriver.support.ui import WebDriverWait

    from executions.models import GraphExecution

    document = {
        "name": "Breaks before it posts",
        "nodes": [
            node("first", "text_template", format="hello"),
            node("step", "text_template", format="{{ x | no_such_filter }}", values={"x": 1}),
            node("send", "http_request", url="http://example.invalid/hook", method="POST"),
        ],
        "links": [
            link("first", "output", "step", "values_#_y"),
            link("step", "output", "send", "body"),
        ],
    }
    graph = create_graph(api, document)
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    logged_in(browser, asgi_server, user)
    browser.get(f"http://{asgi_server}/executions/{run_id}/live/")
    wait = WebDriverWait(browser, 20, poll_frequency=0.05)
    wait.until(lambda b: b.find_element("id", "status").text == "FAILED")
    wait.until(lambda b: b.find_element("id", "rerun").is_displayed())
    assert browser.find_element("id", "chosen").text == "step"  # the failed node
    assert browser.find_element("id", "confirm-rerun").get_attribute("disabled") == "true"

    browser.find_element("id", "preview-rerun").click()
    wait.until(lambda b: b.find_elements("css selector", '#preview p[data-line="reused"]'))
    preview = browser.find_element("id", "preview").text
    assert "Reused: first" in preview and "Runs: step, send" in preview
    assert "Fires again (sends, posts or pays): send" in preview
    send = browser.find_element("css selector", '.node[data-node="send"]')
    assert send.get_attribute("data-plan") == "run" and send.get_attribute("data-sensitive") == ""
    assert "fires again" in send.text
    reused = browser.find_element("css selector", '.node[data-node="first"]')
    assert reused.get_attribute("data-plan") == "reused"

    browser.find_element("css selector", '#rerun-nodes input[value="step"]').click()  # none
    assert browser.find_element("id", "confirm-rerun").get_attribute("disabled") == "true"
    browser.find_element("id", "preview-rerun").click()
    wait.until(lambda b: b.find_elements("css selector", "#preview p.problem"))
    assert not GraphExecution.objects.filter(rerun_of=run_id).exists()

    browser.find_element("css selector", '#rerun-nodes input[value="step"]').click()
    browser.find_element("id", "preview-rerun").click()
    wait.until(lambda b: b.find_element("id", "confirm-rerun").get_attribute("disabled") is None)
    browser.find_element("id", "confirm-rerun").click()
    wait.until(lambda b: run_id not in b.current_url)
    rerun = GraphExecution.objects.get(rerun_of=run_id)
    assert browser.current_url.endswith(f"/console/runs/{rerun.pk}/")
    wait.until(lambda b: b.find_element("id", "status").text == "FAILED")  # same version
