"""The in-app scheduler (RELIABILITY.md T10–T14 groundwork): sweeps change things exactly
once however often and however concurrently they run, a failing sweep rolls back and is
logged without stopping the others, and a started scheduler catches up at once."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import click
import pytest
import time_machine
from apscheduler.jobstores.memory import MemoryJobStore
from sqlalchemy import select, text

from community.models import Community
from web.database import read_only, write_intent
from web.extensions import db
from web.scheduler import (
    find_sweep,
    is_serving_process,
    last_heartbeat,
    register_cli,
    register_sweep,
    run_all_due,
    run_sweep,
    start_scheduler,
    stop_scheduler,
    sweeps,
    unregister_sweep,
)


@pytest.fixture
def temporary_sweep():
    """`register_sweep` for a test: the sweeps it registers are unregistered afterwards."""
    names = []

    def register(name: str, every_seconds: int = 10):
        names.append(name)
        return register_sweep(name, every_seconds=every_seconds)

    yield register
    for name in names:
        unregister_sweep(name)


@pytest.fixture
def serve(app_config):
    """Create apps for the test's database with the scheduler switched on; stopped after.
    Register the test's sweeps first: once app.py starts the scheduler itself, it schedules
    the sweeps registered when the app is created."""
    from app import create_app

    served = []

    def factory(**config):
        application = create_app(dict(app_config, SCHEDULER_ENABLED=True, **config))
        served.append(application)
        return application

    yield factory
    for application in served:
        stop_scheduler(application)
        with application.app_context():
            db.engine.dispose()


def mark_swept(community_id: int) -> int:
    """The conditional update a real sweep would do: it can change the row only once."""
    result = db.session.execute(
        text("UPDATE communities SET description = 'swept' WHERE id = :id AND description = ''"),
        {"id": community_id},
    )
    return result.rowcount


def description(community_id: int) -> str:
    db.session.rollback()  # a fresh snapshot: see what the sweeps committed
    return db.session.scalar(select(Community.description).where(Community.id == community_id))


def job_lines(caplog, event: str) -> list[dict]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "yishi.jobs"]
    return [line for line in lines if line["event"] == event]


def test_sweeping_twice_changes_a_row_once(app, make_community, temporary_sweep):
    community_id = make_community().id

    @temporary_sweep("test_twice")
    def sweep(now):
        return mark_swept(community_id)

    assert run_all_due(app)["test_twice"] == 1
    assert run_all_due(app)["test_twice"] == 0
    assert description(community_id) == "swept"


def test_two_schedulers_sweeping_at_the_same_instant_change_a_row_once(
    app, make_community, temporary_sweep, caplog
):
    caplog.set_level(logging.INFO, logger="yishi.jobs")
    community_id = make_community().id
    both_inside = threading.Barrier(2, timeout=5)

    @temporary_sweep("test_race")
    def sweep(now):
        both_inside.wait()  # each thread is inside its own app context and session
        return mark_swept(community_id)

    results = []

    def scheduler_thread():
        results.append(run_sweep(app, find_sweep("test_race")))

    threads = [threading.Thread(target=scheduler_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)
    assert job_lines(caplog, "job_failed") == []
    assert sorted(results) == [0, 1]
    assert description(community_id) == "swept"


def test_failing_sweep_rolls_back_is_logged_and_others_still_run(
    app, make_community, temporary_sweep, caplog
):
    caplog.set_level(logging.INFO, logger="yishi.jobs")
    broken_id, other_id = make_community().id, make_community().id

    @temporary_sweep("test_broken")
    def broken(now):
        db.session.execute(
            text("UPDATE communities SET description = 'half-done' WHERE id = :id"),
            {"id": broken_id},
        )
        raise RuntimeError("crashed half-way")

    @temporary_sweep("test_after_broken")
    def after_broken(now):
        return mark_swept(other_id)

    results = run_all_due(app)

    assert results["test_broken"] == 0
    assert results["test_after_broken"] == 1
    assert description(broken_id) == ""  # the half-done write was rolled back
    assert description(other_id) == "swept"
    [failure] = job_lines(caplog, "job_failed")
    assert failure["job"] == "test_broken"
    assert failure["error_type"] == "RuntimeError"
    assert failure["error"] == "crashed half-way"
    assert failure["where"].startswith("tests/test_scheduler.py:")
    # What the scheduler's thread would see: a return value, not an exception.
    assert run_sweep(app, find_sweep("test_broken")) == 0
    assert description(broken_id) == ""


def test_failed_sql_is_logged_without_its_parameters(app, temporary_sweep, caplog):
    caplog.set_level(logging.INFO, logger="yishi.jobs")

    @temporary_sweep("test_bad_sql")
    def bad_sql(now):
        db.session.execute(
            text("SELECT * FROM no_such_table WHERE secret = :secret"), {"secret": "hunter2-pw"}
        )
        return 1

    assert run_sweep(app, find_sweep("test_bad_sql")) == 0
    [failure] = job_lines(caplog, "job_failed")
    assert failure["error_type"] in {"OperationalError", "ProgrammingError"}
    assert "no_such_table" in failure["error"]
    assert "hunter2-pw" not in caplog.text


def test_finished_sweeps_log_their_count_and_duration(app, make_community, temporary_sweep, caplog):
    caplog.set_level(logging.DEBUG, logger="yishi.jobs")
    community_id = make_community().id

    @temporary_sweep("test_logged")
    def sweep(now):
        return mark_swept(community_id)

    run_all_due(app)
    run_all_due(app)

    finished = [
        (record.levelno, json.loads(record.getMessage()))
        for record in caplog.records
        if record.name == "yishi.jobs" and '"job_finished"' in record.getMessage()
    ]
    finished = [(level, line) for level, line in finished if line["job"] == "test_logged"]
    assert [line["changed"] for _, line in finished] == [1, 0]
    assert all(line["duration_ms"] >= 0 for _, line in finished)
    levels = [level for level, _ in finished]
    assert levels == [logging.INFO, logging.DEBUG]  # nothing changed: not worth an INFO line


def test_sweeps_get_the_current_utc_time_or_the_time_given(app, temporary_sweep):
    seen = []

    @temporary_sweep("test_clock")
    def sweep(now):
        seen.append(now)
        return 0

    at = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    with time_machine.travel(at, tick=False):
        run_all_due(app)
    later = datetime(2031, 1, 1, tzinfo=UTC)
    run_all_due(app, now=later)
    assert seen == [at, later]
    with pytest.raises(ValueError):
        run_all_due(app, now=datetime(2030, 5, 1))  # naive times are refused


def test_sweeps_run_with_write_intent_even_from_a_read_only_context(app, temporary_sweep):
    intents = []

    @temporary_sweep("test_intent")
    def sweep(now):
        intents.append(write_intent.get())
        return 0

    with read_only():  # as a GET request would be
        run_all_due(app)
        assert write_intent.get() is False  # and the caller's intent is left as it was
    assert intents == [True]


def test_heartbeat_advances_each_time_a_sweep_runs(app, temporary_sweep):
    @temporary_sweep("test_heartbeat")
    def idle(now):
        return 0

    assert last_heartbeat(app) is None
    first = datetime(2030, 1, 1, tzinfo=UTC)
    with time_machine.travel(first, tick=False):
        run_sweep(app, find_sweep("test_heartbeat"))
    assert last_heartbeat(app) == first
    with time_machine.travel(first + timedelta(seconds=10), tick=False):
        run_sweep(app, find_sweep("test_heartbeat"))
    assert last_heartbeat(app) == first + timedelta(seconds=10)


def test_started_scheduler_catches_up_at_once_and_shuts_down_cleanly(
    app, serve, make_community, temporary_sweep, caplog
):
    caplog.set_level(logging.INFO, logger="yishi.jobs")
    community_id = make_community().id
    ran = threading.Event()

    # Due hourly: running within seconds of the start is the start-up catch-up of work that
    # fell due while the server was down (next_run_time=now; no misfire window to miss).
    @temporary_sweep("test_started", every_seconds=3600)
    def sweep(now):
        changed = mark_swept(community_id)
        ran.set()
        return changed

    serving_app = serve()
    scheduler = start_scheduler(serving_app)
    assert scheduler is not None and scheduler.running
    assert start_scheduler(serving_app) is scheduler  # once per app and process
    job = scheduler.get_job("sweep:test_started")
    assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, None)
    assert job.trigger.interval == timedelta(hours=1)
    assert isinstance(scheduler._lookup_jobstore("default"), MemoryJobStore)

    assert ran.wait(timeout=30), "the scheduler did not run the sweep within 30 s"
    thread = scheduler._thread
    stop_scheduler(serving_app)  # waits for the running sweep to commit

    assert not scheduler.running
    assert not thread.is_alive()
    assert description(community_id) == "swept"
    assert last_heartbeat(serving_app) is not None
    assert [line for line in job_lines(caplog, "job_failed") if line["job"] == "test_started"] == []
    finished = [line["job"] for line in job_lines(caplog, "job_finished")]
    assert finished.count("test_started") == 1


def test_tick_setting_makes_every_sweep_run_at_least_that_often(serve, temporary_sweep):
    @temporary_sweep("test_tick", every_seconds=3600)
    def sweep(now):
        return 0

    scheduler = start_scheduler(serve(SCHEDULER_TICK_SECONDS=5))
    assert scheduler.get_job("sweep:test_tick").trigger.interval == timedelta(seconds=5)


def test_scheduler_does_not_start_when_disabled(app, app_config):
    from app import create_app

    assert start_scheduler(app) is None  # the test configuration leaves it off
    assert start_scheduler(create_app(dict(app_config, SCHEDULER_ENABLED=False))) is None


def test_only_serving_processes_start_the_scheduler(monkeypatch):
    assert is_serving_process()  # a WSGI server or script: no `flask` command running
    with click.Context(click.Command("upgrade")):
        assert not is_serving_process()
    run = click.Command("run")
    with click.Context(run) as ctx:
        ctx.params = {"reload": False}
        assert is_serving_process()
        ctx.params = {"reload": True}
        monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
        assert not is_serving_process()  # the reloader's watching parent
        monkeypatch.setenv("WERKZEUG_RUN_MAIN", "true")
        assert is_serving_process()  # the reloader's serving child


def test_sweep_names_are_unique_and_registration_returns_the_function(temporary_sweep):
    def sweep(now):
        return 0

    assert temporary_sweep("test_unique", every_seconds=30)(sweep) is sweep
    assert find_sweep("test_unique").every_seconds == 30
    with pytest.raises(ValueError):
        register_sweep("test_unique")(sweep)
    with pytest.raises(ValueError):
        register_sweep("test_never", every_seconds=0)
    unregister_sweep("test_unique")
    assert "test_unique" not in [s.name for s in sweeps]


def test_jobs_cli_runs_every_sweep_and_lists_them(app, make_community, temporary_sweep):
    register_cli(app)
    community_id = make_community().id

    @temporary_sweep("test_cli", every_seconds=45)
    def sweep(now):
        return mark_swept(community_id)

    runner = app.test_cli_runner()
    first = runner.invoke(args=["jobs", "run"])
    assert first.exit_code == 0, first.output
    assert "test_cli: 1" in first.output
    again = runner.invoke(args=["jobs", "run"])
    assert "test_cli: 0" in again.output
    assert description(community_id) == "swept"
    listed = runner.invoke(args=["jobs", "list"])
    assert listed.exit_code == 0 and "test_cli: every 45 s" in listed.output


def test_jobs_cli_fails_when_a_sweep_fails(app, temporary_sweep):
    register_cli(app)

    @temporary_sweep("test_cli_broken")
    def broken(now):
        raise RuntimeError("broken")

    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code != 0
    assert "test_cli_broken: failed" in result.output
