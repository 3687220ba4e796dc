"""Schedules: fire times (pure), the API and its beat tasks, firing, and beat end to end."""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_beat.tzcrontab import TzAwareCrontab

from credits.services import balance_of, ledger_apply
from executions.models import GraphExecution
from schedules.beat import STAMP_HEADER
from schedules.cron import (
    CronInvalid,
    fire_times_between,
    latest_fire_time,
    next_fire_times,
    parse,
    zone,
)
from schedules.models import Occurrence, Schedule
from schedules.services import schedule_fire
from schedules.tasks import fire

from .conftest import ROOT, child_database_url, create_graph, wait_for_run
from .documents import greeting, link, node

NEW_YORK = ZoneInfo("America/New_York")


def local(tz, *args, fold=0):
    """A wall-clock time in `tz` as the UTC instant it is."""
    return datetime(*args, tzinfo=tz, fold=fold).astimezone(UTC)


def fires(expr, tz, start, count=5):
    return next_fire_times(parse(expr), tz, start, count)


def offsets(times, tz):
    return [t.astimezone(tz).utcoffset() for t in times]


# --- fire times, no database ------------------------------------------------------------------


def test_every_minute_stays_every_minute():
    start = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)
    assert [t.minute for t in fires("* * * * *", ZoneInfo("UTC"), start)] == [1, 2, 3, 4, 5]


def test_spring_forward_in_new_york_fires_the_skipped_time_once_after_the_change():
    times = fires("30 2 * * *", NEW_YORK, local(NEW_YORK, 2026, 3, 7, 12))
    assert times[:2] == [local(NEW_YORK, 2026, 3, 8, 3, 30), local(NEW_YORK, 2026, 3, 9, 2, 30)]
    assert offsets(times[:2], NEW_YORK) == [timedelta(hours=-4)] * 2
    # Half-hourly through the night: 02:00 and 02:30 do not exist and do not fire twice.
    night = fires("*/30 1-3 * * *", NEW_YORK, local(NEW_YORK, 2026, 3, 8, 0), 4)
    assert [t.astimezone(UTC).strftime("%H:%M") for t in night] == [
        "06:00",
        "06:30",
        "07:00",
        "07:30",
    ]


def test_fall_back_in_new_york_fires_a_daily_time_once_and_hourly_in_each_real_hour():
    daily = fires("30 1 * * *", NEW_YORK, local(NEW_YORK, 2026, 10, 31, 12), 3)
    assert daily == [
        local(NEW_YORK, 2026, 11, 1, 1, 30),  # the first 01:30 (EDT), not again at 01:30 EST
        local(NEW_YORK, 2026, 11, 2, 1, 30),
        local(NEW_YORK, 2026, 11, 3, 1, 30),
    ]
    assert offsets(daily[:1], NEW_YORK) == [timedelta(hours=-4)]
    hourly = fires("0 * * * *", NEW_YORK, local(NEW_YORK, 2026, 11, 1, 0, 30), 3)
    assert [t.astimezone(UTC).hour for t in hourly] == [5, 7, 8]  # 01:00 EDT, 02:00 EST, 03:00


def test_kolkata_half_hour_offset():
    kolkata = ZoneInfo("Asia/Kolkata")
    times = fires("0 9 * * 1-5", kolkata, datetime(2026, 3, 6, tzinfo=UTC), 3)
    assert [t.astimezone(kolkata).isoformat() for t in times] == [
        "2026-03-06T09:00:00+05:30",
        "2026-03-09T09:00:00+05:30",  # Friday, then Monday
        "2026-03-10T09:00:00+05:30",
    ]
    assert times[0].astimezone(UTC).strftime("%H:%M") == "03:30"


@pytest.mark.parametrize(
    ("expr", "tz", "start"),
    [
        ("30 2 * * *", "America/New_York", datetime(2026, 3, 6, 12)),
        ("30 1 * * *", "America/New_York", datetime(2026, 10, 30, 12)),
        ("0 * * * *", "America/New_York", datetime(2026, 10, 31, 22)),
        ("*/30 1-3 * * *", "America/New_York", datetime(2026, 3, 7, 22)),
        ("15 0,3 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12)),
        ("0 9 * * *", "Asia/Kolkata", datetime(2026, 3, 6)),
    ],
)
def test_fire_times_are_the_times_beat_fires(expr, tz, start):
    """Steps django-celery-beat's own crontab through the days around a clock change, as
    beat's loop does, and compares its fires with the times the API shows."""
    tz_info = ZoneInfo(tz)
    now = start.replace(tzinfo=tz_info).astimezone(UTC)
    end = now + timedelta(days=3)
    fields = parse(expr).fields
    schedule = TzAwareCrontab(
        minute=fields["minute"],
        hour=fields["hour"],
        day_of_month=fields["day_of_month"],
        month_of_year=fields["month_of_year"],
        day_of_week=fields["day_of_week"],
        tz=tz_info,
    )
    clock = [now]
    schedule.nowfun = lambda: clock[0].astimezone(tz_info)
    last_run, beat_fires = now, []
    while clock[0] < end:
        due, next_check = schedule.is_due(last_run)
        if due:
            beat_fires.append(clock[0])
            last_run = clock[0]
        clock[0] += timedelta(seconds=min(max(next_check, 1), 60))
    ours, _ = fire_times_between(parse(expr), tz_info, now, end, 1000)
    assert beat_fires == ours


def test_a_fire_belongs_to_the_latest_fire_time_before_it():
    cron, tz = parse("*/15 * * * *"), ZoneInfo("UTC")
    at = datetime(2026, 5, 1, 12, 14, 59, tzinfo=UTC)
    assert latest_fire_time(cron, tz, at) == datetime(2026, 5, 1, 12, 15, tzinfo=UTC)  # tolerance
    assert latest_fire_time(cron, tz, at - timedelta(seconds=10)) == datetime(
        2026, 5, 1, 12, 0, tzinfo=UTC
    )
    fall_back = local(NEW_YORK, 2026, 11, 1, 1, 30, fold=1)  # the second 01:30
    assert latest_fire_time(parse("30 1 * * *"), NEW_YORK, fall_back) == local(
        NEW_YORK, 2026, 11, 1, 1, 30
    )


@pytest.mark.parametrize(
    "expr",
    ["* * * *", "* * * * * *", "61 * * * *", "0 0 L * *", "@daily", "0 0 31 2 *", "a b c d e"],
)
def test_bad_cron_expressions_are_refused(expr):
    with pytest.raises(CronInvalid):
        parse(expr)


@pytest.mark.parametrize("name", ["EST5EDT/x", "Mars/Olympus", "../etc/passwd", "", "utc "])
def test_unknown_time_zones_are_refused(name):
    with pytest.raises(CronInvalid):
        zone(name)


# --- the API and its beat tasks ---------------------------------------------------------------


def schedule_body(graph, **extra):
    return {"graph_id": graph["id"], "cron": "0 9 * * 1-5", **extra}


@pytest.fixture
def graph(api):
    return create_graph(api, greeting())


def test_create_keeps_a_beat_task_in_the_schedules_time_zone(api, graph):
    response = api.post(
        "/api/schedules/",
        schedule_body(graph, timezone="Asia/Kolkata", inputs={"who": "team"}),
        format="json",
    )
    assert response.status_code == 201, response.json()
    record = response.json()
    assert record["graph_version"] is None and record["overlap"] == "skip"
    assert record["enabled"] is True and record["last_run_at"] is None
    assert len(record["next_runs"]) == 5
    assert all(t.endswith("+05:30") and "T09:00:00" in t for t in record["next_runs"])
    task = PeriodicTask.objects.get(agent_schedule__id=record["id"])
    assert task.task == "schedules.fire" and task.enabled
    assert str(task.crontab.timezone) == "Asia/Kolkata"
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "9", "1-5")
    assert api.get(f"/api/schedules/{record['id']}/").json()["cron"] == "0 9 * * 1-5"
    assert api.get("/api/schedules/").json()["count"] == 1


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"cron": "0 9 * *"}, "cron", "5 fields"),
        ({"cron": "0 25 * * *"}, "cron", "invalid cron"),
        ({"timezone": "Moon/Base"}, "timezone", "unknown time zone"),
        ({"graph_version": 7}, "graph_version", "no version 7"),
        ({"overlap": "sometimes"}, "overlap", "not a valid choice"),
        ({"inputs": {"nobody": 1}}, "input", "unknown graph input"),
        ({"inputs": [1, 2]}, "inputs", "dictionary"),
        ({"graph_id": "not-a-uuid"}, "graph_id", "UUID"),
    ],
)
def test_bad_schedules_get_400_and_store_nothing(api, graph, changes, field, words):
    response = api.post("/api/schedules/", schedule_body(graph, **changes), format="json")
    assert response.status_code == 400
    assert field in str(response.json()) and words in str(response.json())
    assert (
        not Schedule.objects.exists()
        and not PeriodicTask.objects.filter(task="schedules.fire").exists()
    )


def test_another_users_graph_cannot_be_scheduled(other_api, graph):
    response = other_api.post("/api/schedules/", schedule_body(graph), format="json")
    assert response.status_code == 400 and "not found" in response.json()["detail"]
    assert not Schedule.objects.exists()


def test_patch_changes_the_beat_task_in_step(api, graph):
    sid = api.post("/api/schedules/", schedule_body(graph), format="json").json()["id"]
    response = api.patch(
        f"/api/schedules/{sid}/",
        {"cron": "*/5 * * * *", "timezone": "Europe/Berlin"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    task = PeriodicTask.objects.get(agent_schedule__id=sid)
    assert (task.crontab.minute, str(task.crontab.timezone)) == ("*/5", "Europe/Berlin")

    disabled = api.patch(f"/api/schedules/{sid}/", {"enabled": False}, format="json").json()
    assert disabled["enabled"] is False and disabled["next_runs"] == []
    assert not PeriodicTask.objects.get(agent_schedule__id=sid).enabled

    refused = api.patch(f"/api/schedules/{sid}/", {"cron": "nope"}, format="json")
    assert refused.status_code == 400
    assert Schedule.objects.get(pk=sid).cron == "*/5 * * * *"


def test_other_users_schedules_are_not_found(api, other_api, graph):
    sid = api.post("/api/schedules/", schedule_body(graph), format="json").json()["id"]
    for method in ("get", "patch", "delete"):
        assert (
            getattr(other_api, method)(f"/api/schedules/{sid}/", format="json").status_code == 404
        )
    assert other_api.get(f"/api/schedules/{sid}/occurrences/").status_code == 404
    assert other_api.get("/api/schedules/").json()["count"] == 0


def test_deleting_a_schedule_or_its_graph_removes_the_beat_task(api, graph):
    first = api.post("/api/schedules/", schedule_body(graph), format="json").json()["id"]
    second = api.post("/api/schedules/", schedule_body(graph), format="json").json()["id"]
    assert PeriodicTask.objects.filter(task="schedules.fire").count() == 2
    assert api.delete(f"/api/schedules/{first}/").status_code == 204
    assert PeriodicTask.objects.filter(task="schedules.fire").count() == 1

    assert api.delete(f"/api/graphs/{graph['id']}/").status_code == 204
    assert not Schedule.objects.filter(pk=second).exists()
    assert not PeriodicTask.objects.filter(task="schedules.fire").exists()
    assert not CrontabSchedule.objects.filter(timezone="UTC", hour="9", minute="0").exists()


# --- firing -----------------------------------------------------------------------------------


def make_schedule(api, graph, **extra):
    sid = api.post("/api/schedules/", schedule_body(graph, **extra), format="json").json()["id"]
    return Schedule.objects.get(pk=sid)


def armed_before(schedule, fire_time):
    """As if the schedule had been made a minute before `fire_time`."""
    Schedule.objects.filter(pk=schedule.pk).update(armed_at=fire_time - timedelta(minutes=1))


def test_overlap_skip_records_why_and_allow_starts_anyway(api, graph):
    schedule = make_schedule(api, graph, cron="0 * * * *")
    armed_before(schedule, datetime(2026, 6, 1, 10, tzinfo=UTC))
    previous = GraphExecution.objects.create(
        graph_id=graph["id"],
        graph_version_id=Schedule.objects.get(pk=schedule.pk).graph.versions.get().pk,
        user=schedule.owner,
        status="RUNNING",
        schedule=schedule,
    )
    skipped = schedule_fire(schedule.pk, datetime(2026, 6, 1, 10, 0, 1, tzinfo=UTC))
    assert (skipped.outcome, skipped.reason) == ("skipped", "overlap")
    assert str(previous.pk) in skipped.detail and skipped.execution is None

    api.patch(f"/api/schedules/{schedule.pk}/", {"overlap": "allow"}, format="json")
    started = schedule_fire(schedule.pk, datetime(2026, 6, 1, 11, 0, 1, tzinfo=UTC))
    assert started.outcome == "started" and started.execution.schedule_id == schedule.pk
    record = api.get(f"/api/executions/{started.execution_id}/").json()
    assert record["schedule_id"] == str(schedule.pk)
    assert Schedule.objects.get(pk=schedule.pk).last_run_at == started.fire_time


def test_a_schedules_budget_is_its_runs_budget(api, graph):
    schedule = make_schedule(api, graph, cron="0 * * * *", budget=7)
    assert api.get(f"/api/schedules/{schedule.pk}/").json()["budget"] == 7
    armed_before(schedule, datetime(2026, 6, 1, 10, tzinfo=UTC))
    started = schedule_fire(schedule.pk, datetime(2026, 6, 1, 10, 0, 1, tzinfo=UTC))
    assert api.get(f"/api/executions/{started.execution_id}/").json()["budget"] == 7
    for bad in (0, 2**31, "lots"):
        answer = api.patch(f"/api/schedules/{schedule.pk}/", {"budget": bad}, format="json")
        assert answer.status_code == 400 and "budget" in str(answer.json()), answer.json()
    cleared = api.patch(f"/api/schedules/{schedule.pk}/", {"budget": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["budget"] is None


def test_insufficient_credits_give_a_skipped_occurrence_with_the_reason(api, user):
    paid = {
        "name": "Paid",
        "nodes": [node("start", "input", name="x", value="v"), node("s", "sleep", seconds=0)],
        "links": [link("start", "result", "s", "value")],
    }
    graph = create_graph(api, paid)
    schedule = make_schedule(api, graph, cron="*/10 * * * *")
    armed_before(schedule, datetime(2026, 6, 1, 10, tzinfo=UTC))
    ledger_apply(user_id=user.pk, amount=-balance_of(user.pk), type="ADJUSTMENT", reference="x")
    occurrence = schedule_fire(schedule.pk, datetime(2026, 6, 1, 10, 0, tzinfo=UTC))
    assert (occurrence.outcome, occurrence.reason) == ("skipped", "insufficient_credits")
    assert "insufficient credits" in occurrence.detail and "balance 0" in occurrence.detail
    assert not GraphExecution.objects.exists()
    listed = api.get(f"/api/schedules/{schedule.pk}/occurrences/").json()
    assert listed["count"] == 1
    assert listed["results"][0]["reason"] == "insufficient_credits"
    assert listed["results"][0]["execution_id"] is None


def test_a_graph_that_no_longer_takes_the_inputs_is_skipped_with_the_reason(api, graph):
    schedule = make_schedule(api, graph, cron="0 * * * *", inputs={"who": "x"})
    armed_before(schedule, datetime(2026, 6, 1, 10, tzinfo=UTC))
    changed = {**greeting(), "nodes": greeting()["nodes"]}
    changed["nodes"][0] = node("who", "input", name="person", value="world")
    assert api.put(f"/api/graphs/{graph['id']}/", changed, format="json").status_code == 200
    occurrence = schedule_fire(schedule.pk, datetime(2026, 6, 1, 10, 0, 5, tzinfo=UTC))
    assert (occurrence.outcome, occurrence.reason) == ("skipped", "graph_invalid")
    assert "unknown graph input 'who'" in occurrence.detail


def test_fire_times_beat_never_fired_are_recorded_as_missed(api, graph):
    schedule = make_schedule(api, graph, cron="0 * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(armed_at=datetime(2026, 6, 1, 6, 30, tzinfo=UTC))
    occurrence = schedule_fire(schedule.pk, datetime(2026, 6, 1, 10, 0, 3, tzinfo=UTC))
    assert occurrence.outcome == "started"
    rows = list(Occurrence.objects.order_by("fire_time").values_list("fire_time", "reason"))
    assert rows == [
        (datetime(2026, 6, 1, 7, tzinfo=UTC), "missed"),
        (datetime(2026, 6, 1, 8, tzinfo=UTC), "missed"),
        (datetime(2026, 6, 1, 9, tzinfo=UTC), "missed"),
        (datetime(2026, 6, 1, 10, tzinfo=UTC), ""),
    ]
    # A fire for a time from before the schedule took effect (beat catching up) does nothing.
    assert schedule_fire(schedule.pk, datetime(2026, 6, 1, 6, 0, 1, tzinfo=UTC)) is None
    assert Occurrence.objects.count() == 4


@pytest.mark.integration
def test_a_duplicate_fire_starts_one_run(api, graph, worker):
    schedule = make_schedule(api, graph, cron="*/5 * * * *", overlap="allow")
    armed_before(schedule, datetime(2026, 6, 1, 10, 5, tzinfo=UTC))
    stamp = "2026-06-01T10:05:00.250000+00:00"
    sent = [
        fire.apply_async(
            args=[str(schedule.pk)], headers={STAMP_HEADER: stamp}, ignore_result=False
        )
        for _ in range(3)
    ]
    for result in sent:
        result.get(timeout=30)
    occurrence = Occurrence.objects.get(schedule=schedule)
    # The fire time comes from beat's stamp in the message, not from when it was handled.
    assert occurrence.fire_time == datetime(2026, 6, 1, 10, 5, tzinfo=UTC)
    assert GraphExecution.objects.filter(schedule=schedule).count() == 1
    assert wait_for_run(api, occurrence.execution_id)["status"] == "COMPLETED"


# --- beat end to end --------------------------------------------------------------------------


@pytest.fixture
def beat_process(worker):
    env = {
        **os.environ,
        "DATABASE_URL": child_database_url(),
    }

    def start():
        log = open(ROOT / ".local" / "test-beat.log", "w")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "info"),
                *("--scheduler", "schedules.beat:Scheduler", "--max-interval", "1"),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append((proc, log))

    started: list = []
    yield start
    from common.worker_process import stop_worker

    for proc, log in started:
        stop_worker(proc)
        log.close()


@pytest.mark.integration
def test_beat_fires_a_schedule_and_its_run_completes(api, graph, beat_process):
    if datetime.now(UTC).second >= 50:  # keep the whole test inside one minute's slot
        time.sleep(61 - datetime.now(UTC).second)
    schedule = make_schedule(api, graph, cron="* * * * *", inputs={"who": "beat"})
    # As if the schedule had been made a moment before this minute began: this minute's
    # fire time is due now, and beat fires it as soon as it starts.
    just_before = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(seconds=1)
    Schedule.objects.filter(pk=schedule.pk).update(armed_at=just_before)
    PeriodicTask.objects.filter(pk=schedule.periodic_task_id).update(last_run_at=just_before)
    beat_process()

    deadline = time.monotonic() + 60
    while not (started := Occurrence.objects.filter(schedule=schedule, outcome="started")):
        assert time.monotonic() < deadline, "beat did not fire the schedule"
        time.sleep(0.2)
    occurrence = started.get()
    assert occurrence.fire_time == just_before + timedelta(seconds=1)
    record = wait_for_run(api, occurrence.execution_id)
    assert record["status"] == "COMPLETED"
    assert record["outputs"] == {"greeting": ["Hello beat!"]}
    assert record["schedule_id"] == str(schedule.pk)
    assert Occurrence.objects.filter(schedule=schedule).count() == 1
