"""The console (issue 21) for a non-staff user: pages answer their owner and no one else,
and in headless Chromium a user logs in, starts a run from a graph's form, watches it, sees
a failure, approves a review and uses the profile and credits pages. Each page's screenshot
is written under .local/console-screens/ for a person to look at."""

import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from executions.models import GraphExecution

from .conftest import create_graph, wait_for_run
from .documents import link, node
from .test_control import execute
from .test_live_page import browser  # noqa: F401  (headless Chromium, a fixture)

SCREENS = Path(__file__).resolve().parent.parent / ".local" / "console-screens"


def typed_graph():
    return {
        "name": "Greeter",
        "nodes": [
            node("who", "input", name="who", type="short_text", description="whom to greet"),
            node("times", "input", name="times", type="integer", value=2),
            node("loud", "input", name="loud", type="boolean", value=False),
            node(
                "greet",
                "text_template",
                format="{% for i in range(n) %}Hello {{ w }}{% if l %}!{% endif %} {% endfor %}",
            ),
            node("out", "output", name="greeting"),
        ],
        "links": [
            link("who", "result", "greet", "values_#_w"),
            link("times", "result", "greet", "values_#_n"),
            link("loud", "result", "greet", "values_#_l"),
            link("greet", "output", "out", "value"),
        ],
    }


def logged_in_client(user):
    client = Client()
    client.force_login(get_user_model().objects.get(pk=user.pk))
    return client


def test_console_pages_answer_their_owner_only(api, user, other_user):
    graph = create_graph(api, typed_graph())
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {"inputs": {"who": "Ada"}},
                      format="json").json()["id"]  # fmt: skip
    anonymous = Client()
    assert anonymous.get("/").status_code == 302
    assert anonymous.get("/console/runs/")["Location"].startswith("/accounts/login/")
    mine = logged_in_client(user)
    assert mine.get("/")["Location"] == "/console/runs/"
    for path in ("/console/runs/", f"/console/runs/{run_id}/", "/console/graphs/",
                 f"/console/graphs/{graph['id']}/", "/console/reviews/", "/console/credits/",
                 "/console/profile/", "/accounts/password_change/",
                 f"/executions/{run_id}/live/"):  # fmt: skip
        assert mine.get(path).status_code == 200, path
    status = GraphExecution.objects.get(pk=run_id).status
    listing = mine.get(f"/console/runs/?status={status}&trigger=manual&q=Greet").content.decode()
    assert run_id[:8] in listing
    assert "No runs match" in mine.get("/console/runs/?status=CANCELLED").content.decode()
    assert run_id[:8] in mine.get("/console/runs/?q=" + run_id).content.decode()
    assert "No runs match" in mine.get("/console/runs/?trigger=schedule").content.decode()
    theirs = logged_in_client(other_user)
    for path in (f"/console/runs/{run_id}/", f"/console/graphs/{graph['id']}/"):
        assert theirs.get(path).status_code == 404, path
    assert run_id[:8] not in theirs.get("/console/runs/").content.decode()
    boss = get_user_model().objects.create_superuser("boss", "b@example.com", "pw")
    staff = Client()
    staff.force_login(boss)
    assert staff.get(f"/console/runs/{run_id}/").status_code == 200  # staff may watch any


def test_a_traced_run_links_its_trace(api, user, settings):
    graph = create_graph(api, typed_graph())
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {"inputs": {"who": "Ada"}},
                      format="json").json()["id"]  # fmt: skip
    page = logged_in_client(user).get(f"/console/runs/{run_id}/").content.decode()
    assert (
        'id="trace"' not in page
        and api.get(f"/api/executions/{run_id}/").json()["trace_id"] is None
    )
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    GraphExecution.objects.filter(pk=run_id).update(
        traceparent=f"00-{trace_id}-00f067aa0ba902b7-01"
    )
    assert api.get(f"/api/executions/{run_id}/").json()["trace_id"] == trace_id
    page = logged_in_client(user).get(f"/console/runs/{run_id}/").content.decode()
    assert f'<code id="trace" title="{trace_id}">4bf92f3577b3</code>' in page
    settings.TRACES_URL = "https://traces.example.com/trace/{trace_id}"
    page = logged_in_client(user).get(f"/console/runs/{run_id}/").content.decode()
    assert f'href="https://traces.example.com/trace/{trace_id}"' in page


def test_the_profile_makes_and_revokes_api_tokens(user):
    client = logged_in_client(user)
    page = client.post("/console/profile/", {"action": "create"}).content.decode()
    key = page.split('id="new-token">')[1].split("<")[0]
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/graphs/").status_code == 200
    from knox.models import AuthToken

    token = AuthToken.objects.get(user=user)
    client.post("/console/profile/", {"action": "revoke", "token": token.token_key})
    assert api.get("/api/graphs/").status_code == 401


def shot(driver, name):
    SCREENS.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(1400, 1000)
    driver.save_screenshot(str(SCREENS / f"{name}.png"))


def log_in(driver, server, username, password):
    driver.get(f"http://{server}/")
    assert "/accounts/login/" in driver.current_url
    shot(driver, "01-login")
    driver.find_element("id", "id_username").send_keys(username)
    driver.find_element("id", "id_password").send_keys(password)
    driver.find_element("css selector", "button[type=submit]").click()


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver")
def test_a_user_runs_a_graph_from_its_form_and_watches_it(
    api,
    user,
    worker,
    asgi_server,
    browser,  # noqa: F811
):
    from selenium.webdriver.support.ui import WebDriverWait

    user.set_password("pw-123456")
    user.save()
    graph = create_graph(api, typed_graph())
    wait = WebDriverWait(browser, 20, poll_frequency=0.05)
    log_in(browser, asgi_server, user.username, "pw-123456")
    wait.until(lambda b: b.current_url.endswith("/console/runs/"))
    browser.get(f"http://{asgi_server}/console/graphs/{graph['id']}/")
    wait.until(lambda b: b.find_elements("css selector", "#graph .node"))
    browser.find_element("id", "input-who").send_keys("Ada")
    times = browser.find_element("id", "input-times")
    times.clear()
    times.send_keys("3")
    browser.find_element("id", "input-loud").click()
    shot(browser, "02-graph-run-form")
    browser.find_element("id", "run-submit").click()
    wait.until(lambda b: "/console/runs/" in b.current_url and b.current_url.count("/") > 5)
    wait.until(lambda b: b.find_element("id", "status").text == "COMPLETED")
    wait.until(lambda b: len(b.find_elements("css selector", "#timeline .row")) == 5)
    assert "Hello Ada! Hello Ada! Hello Ada!" in browser.find_element("id", "outputs").text
    browser.find_element("css selector", '.node[data-node="greet"]').click()
    wait.until(lambda b: "Hello Ada!" in b.find_element("id", "detail").text)
    shot(browser, "03-run-completed")
    browser.get(f"http://{asgi_server}/console/runs/")
    rows = browser.find_elements("css selector", "#runs tbody tr")
    assert len(rows) == 1 and "completed" in rows[0].text and "manual" in rows[0].text
    shot(browser, "04-runs")


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver")
def test_failures_show_in_red_and_reviews_are_decided_in_the_console(
    api,
    user,
    worker,
    asgi_server,
    browser,  # noqa: F811
):
    from selenium.webdriver.support.ui import WebDriverWait

    from .test_live_page import logged_in

    broken = create_graph(api, {
        "name": "Broken", "nodes": [node("a", "store_value", input=1),
                                    node("bad", "calculator", operation="divide", b=0)],
        "links": [link("a", "output", "bad", "a")],
    })  # fmt: skip
    failed = wait_for_run(api, execute(api, broken))
    reviewed = create_graph(api, {
        "name": "Needs a yes",
        "nodes": [node("ask", "human_review", data={"send": "yes"}, message="Send it?"),
                  node("out", "output", name="sent")],
        "links": [link("ask", "approved_data", "out", "value")],
    })  # fmt: skip
    waiting = execute(api, reviewed)
    logged_in(browser, asgi_server, user)
    wait = WebDriverWait(browser, 20, poll_frequency=0.05)
    browser.get(f"http://{asgi_server}/console/runs/{failed['id']}/")
    wait.until(lambda b: b.find_element("id", "status").text == "FAILED")
    wait.until(lambda b: b.find_element("css selector", '.node[data-node="bad"]')
               .get_attribute("data-status") == "FAILED")  # fmt: skip
    assert "FAILED" in browser.find_element("id", "status").get_attribute("class")
    fill = browser.find_element(
        "css selector", '.node[data-node="bad"] rect'
    ).value_of_css_property("fill")
    assert fill == "rgb(255, 235, 233)"  # red
    wait.until(lambda b: b.find_elements("css selector", "#timeline .ran.FAILED"))
    browser.find_element("css selector", '.node[data-node="bad"]').click()
    wait.until(lambda b: "division by zero" in b.find_element("css selector", "pre.log").text)
    assert "error" in browser.find_element("css selector", "pre.log").text  # its log's level
    shot(browser, "05-run-failed")
    browser.get(f"http://{asgi_server}/console/reviews/")
    wait.until(lambda b: b.find_elements("css selector", "section.review"))
    shot(browser, "06-reviews")
    browser.find_element("css selector", "section.review .approve").click()
    wait.until(lambda b: "Approved" in b.find_element("css selector", ".outcome").text)
    assert wait_for_run(api, waiting)["outputs"] == {"sent": [{"send": "yes"}]}
    browser.get(f"http://{asgi_server}/console/credits/")
    wait.until(lambda b: b.execute_script("return typeof Chart") == "function")
    assert browser.find_element("id", "balance").text.isdigit()
    shot(browser, "07-credits")


def test_api_entry_points_answer_with_their_own_assets(client, settings):
    index = client.get("/api/")
    assert index.status_code == 200 and index.json()["docs"] == "/api/docs/"
    assert "/api/graphs/<uuid:graph_id>/execute/" in index.json()["endpoints"]
    docs = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs and "cdn" not in docs.lower()
    redoc = client.get("/api/redoc/").content.decode()
    assert "/static/drf_spectacular_sidecar/redoc/" in redoc
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200
    settings.API_THROTTLE_ANON = "2/minute"
    for _ in range(5):  # the docs are never starved by the anonymous rate
        assert client.get("/api/schema/").status_code == 200
        assert client.get("/api/").status_code == 200
    login = {"username": "nobody", "password": "wrong"}
    answers = [client.post("/api/auth/token/", login).status_code for _ in range(4)]
    assert 429 in answers  # while the rate itself holds for the rest of the API


def test_no_admin_page_or_action_answers_500(api, user, django_capture_on_commit_callbacks):
    """Every admin list, add form, change page and action, as staff, with a little of each
    kind of row about."""
    from django.contrib import admin as django_admin
    from django.urls import reverse

    from files.services import file_store

    graph = create_graph(api, typed_graph())
    with django_capture_on_commit_callbacks():
        api.post(f"/api/graphs/{graph['id']}/execute/", {"inputs": {"who": "Ada"}}, format="json")
    file_store(owner_id=user.pk, name="a.txt", content=b"a")
    boss = get_user_model().objects.create_superuser("boss", "b@example.com", "pw")
    staff = Client()
    staff.force_login(boss)
    for model, model_admin in django_admin.site._registry.items():
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        listing = staff.get(changelist)
        assert listing.status_code == 200, changelist
        if model_admin.has_add_permission(listing.wsgi_request):
            add = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
            assert staff.get(add).status_code == 200, add
        first = model.objects.first()
        if first is None:
            continue
        change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first.pk])
        assert staff.get(change).status_code == 200, change
        for action in model_admin.get_actions(listing.wsgi_request):
            with django_capture_on_commit_callbacks():
                answer = staff.post(
                    changelist, {"action": action, "_selected_action": [str(first.pk)]}
                )
            assert answer.status_code in (200, 302), (changelist, action)
    runs = staff.get(reverse("admin:executions_graphexecution_changelist")).content.decode()
    assert "/console/runs/" in runs and "background:#" in runs  # a link and a status badge
    assert "Add graph" not in staff.get(reverse("admin:graphs_graph_changelist")).content.decode()
    prices = staff.get(reverse("admin:credits_blockcost_changelist")).content.decode()
    assert "keep their own prices" in prices and "http_request 2 +1.0/MiB" in prices
