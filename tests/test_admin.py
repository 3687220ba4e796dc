"""The admin console: staff see graphs (versions, nodes, links) and executions (node
executions inline, read-only); other users are sent to the login page."""

import pytest
from django.contrib.auth import get_user_model

from executions.engine import Status
from executions.models import GraphExecution, NodeExecution
from graphs.services import graph_create

from .documents import greeting

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-123456")
    client.force_login(admin)
    return client


@pytest.fixture
def execution(user):
    version = graph_create(owner=user, document=greeting())
    run = GraphExecution.objects.create(
        graph=version.graph, graph_version=version, user=user, status=Status.COMPLETED
    )
    NodeExecution.objects.create(
        execution=run,
        node_id="greet",
        block="text_template",
        status=Status.COMPLETED,
        input_data={"format": "Hi"},
        output_data={"output": ["Hi"]},
        task_id="t-1",
    )
    return run


def test_staff_see_graphs_versions_and_executions(staff_client, execution):
    version = execution.graph_version
    pages = {
        "/admin/graphs/graph/": "Greeting",
        f"/admin/graphs/graph/{execution.graph_id}/change/": "Greeting",
        "/admin/graphs/graphversion/": "Greeting",
        f"/admin/graphs/graphversion/{version.pk}/change/": "values_#_name",
        "/admin/executions/graphexecution/": str(execution.pk),
        f"/admin/executions/graphexecution/{execution.pk}/change/": "t-1",
        "/admin/executions/graphexecution/?status__exact=COMPLETED": str(execution.pk),
        f"/admin/executions/graphexecution/?q={execution.pk}": str(execution.pk),
    }
    for path, expected in pages.items():
        response = staff_client.get(path)
        assert response.status_code == 200, path
        assert expected in response.content.decode(), path


def test_executions_cannot_be_edited_or_added_in_the_admin(staff_client, execution):
    assert staff_client.get("/admin/executions/graphexecution/add/").status_code == 403
    response = staff_client.post(
        f"/admin/executions/graphexecution/{execution.pk}/change/", {"status": "FAILED"}
    )
    assert response.status_code == 403
    execution.refresh_from_db()
    assert execution.status == Status.COMPLETED


def test_non_staff_cannot_reach_the_admin(client, user, execution):
    client.force_login(user)
    response = client.get("/admin/executions/graphexecution/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_admin_cancel_and_resume_actions(staff_client, user):
    version = graph_create(owner=user, document=greeting())
    running = GraphExecution.objects.create(
        graph=version.graph, graph_version=version, user=user, status=Status.RUNNING
    )
    done = GraphExecution.objects.create(
        graph=version.graph, graph_version=version, user=user, status=Status.COMPLETED
    )
    response = staff_client.post(
        "/admin/executions/graphexecution/",
        {"action": "cancel_runs", "_selected_action": [running.pk, done.pk]},
        follow=True,
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "cancelled" in page and "already ended" in page
    running.refresh_from_db()
    done.refresh_from_db()
    assert running.status == Status.CANCELLED and done.status == Status.COMPLETED


def test_staff_see_schedules_with_occurrences_and_can_disable_them(staff_client, user):
    from django_celery_beat.models import PeriodicTask

    from schedules.models import Occurrence
    from schedules.services import schedule_create

    version = graph_create(owner=user, document=greeting())
    schedule = schedule_create(
        owner=user, values={"graph_id": version.graph_id, "cron": "0 * * * *"}
    )
    Occurrence.objects.create(
        schedule=schedule, fire_time="2026-06-01T10:00:00Z", outcome="skipped", reason="overlap"
    )
    page = staff_client.get(f"/admin/schedules/schedule/{schedule.pk}/change/")
    assert page.status_code == 200
    assert b"overlap" in page.content and b"next fire times" in page.content.lower()
    listing = staff_client.get(f"/admin/schedules/occurrence/?schedule__id={schedule.pk}")
    assert listing.status_code == 200 and b"overlap" in listing.content
    assert staff_client.get("/admin/django_celery_beat/periodictask/").status_code == 200

    response = staff_client.post(
        "/admin/schedules/schedule/",
        {"action": "disable", "_selected_action": [str(schedule.pk)]},
    )
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert not schedule.enabled
    assert not PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled


def test_non_staff_cannot_reach_the_schedules_admin(client, user):
    client.force_login(user)
    response = client.get("/admin/schedules/schedule/")
    assert response.status_code == 302 and "/login/" in response["Location"]
