"""The in-app scheduler: domain packages register *sweeps*, APScheduler runs them.

A sweep is a plain function `sweep(now: datetime) -> int` that does every piece of work due
at `now` (so work missed while the server was down is done at the next run) and returns how
many things it changed. Sweeps must be idempotent: several processes may each run a
scheduler, so every state change is a conditional UPDATE in the domain code
(`… WHERE status = 'open'`). The scheduler only decides *when* to look; it never decides
*whether* something happens, and no job store holds anything that matters (DESIGN.md,
"Scheduled jobs"; RELIABILITY.md, the APScheduler traps).

    from web.scheduler import register_sweep

    @register_sweep("expire_proposals", every_seconds=60)
    def expire_proposals(now: datetime) -> int: ...

Sweeps register at import time, so a domain's jobs module must be imported before
`start_scheduler(app)`. Start the scheduler once per serving process: `make run` serves
with `--no-reload`, and `is_serving_process()` keeps other `flask` commands from starting it.
Under gunicorn, `gunicorn.conf.py` sets YISHI_SCHEDULER=workers: the app does not start
its scheduler where it is created (with `--preload` that is the master, which must fork
without threads), and each worker starts its own once it has the app, and stops it when
it exits (also when `--max-requests` recycles it).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from blinker import Namespace
from flask import Flask, current_app
from flask.cli import AppGroup
from flask.helpers import get_debug_flag
from sqlalchemy.exc import StatementError

from web.database import write_intent
from web.extensions import db

logger = logging.getLogger("yishi.jobs")

EXTENSION = "yishi_scheduler"
# YISHI_SCHEDULER's value under gunicorn.conf.py: the server's worker hooks start and stop
# the scheduler, creating the app never does.
IN_WORKERS = "workers"
JOB_PREFIX = "sweep:"
ROOT = Path(__file__).resolve().parent.parent

SweepFunction = Callable[[datetime], int]

# Sent with the app as sender after every sweep run: `sweep_ran.send(app, job=name,
# failed=bool)`. web/metrics.py counts runs and failures with it.
sweep_ran = Namespace().signal("sweep-ran")


@dataclass(frozen=True)
class Sweep:
    name: str
    func: SweepFunction
    every_seconds: int


# In registration order; `run_all_due` and the scheduler run them in this order.
sweeps: list[Sweep] = []

_lock = threading.RLock()


def register_sweep(name: str, every_seconds: int = 10) -> Callable[[SweepFunction], SweepFunction]:
    """Decorator: register `func(now) -> int` as a sweep; the function is returned unchanged."""
    if not name:
        raise ValueError("a sweep needs a name")
    if every_seconds < 1:
        raise ValueError("every_seconds must be at least 1")

    def decorator(func: SweepFunction) -> SweepFunction:
        with _lock:
            if any(sweep.name == name for sweep in sweeps):
                raise ValueError(f"a sweep named {name!r} is already registered")
            sweeps.append(Sweep(name, func, int(every_seconds)))
        return func

    return decorator


def unregister_sweep(name: str) -> None:
    """Remove a sweep (for tests); nothing happens when no sweep has that name.
    A running scheduler keeps the jobs it was started with."""
    with _lock:
        sweeps[:] = [sweep for sweep in sweeps if sweep.name != name]


def find_sweep(name: str) -> Sweep:
    for sweep in sweeps:
        if sweep.name == name:
            return sweep
    raise KeyError(name)


def interval_seconds(app: Flask, sweep: Sweep) -> int:
    """The sweep's interval, shortened to SCHEDULER_TICK_SECONDS when that is set."""
    tick = app.config.get("SCHEDULER_TICK_SECONDS")
    return min(sweep.every_seconds, int(tick)) if tick else sweep.every_seconds


# ---------------------------------------------------------------- running sweeps


def run_sweep(app: Flask, sweep: Sweep, now: datetime | None = None) -> int:
    """Run one sweep in its own app context and transaction; commit, or roll back and log.

    Never raises (it runs on the scheduler's threads): a failure is logged as `job_failed`
    and counts as 0 changes; the next run retries, since a sweep does all due work."""
    changed, _failed = _run(app, sweep, now)
    return changed


def run_all_due(app: Flask, now: datetime | None = None) -> dict[str, int]:
    """Run every registered sweep once, in order; one failing does not stop the others."""
    return {sweep.name: run_sweep(app, sweep, now) for sweep in list(sweeps)}


def last_heartbeat(app: Flask) -> datetime | None:
    """When a sweep last ran in this process (successfully or not), by the server clock."""
    return _state(app)["heartbeat"]


def is_running(app: Flask) -> bool:
    """Whether this process runs the app's scheduler (a copy inherited by fork does not)."""
    state = _state(app)
    scheduler = state["scheduler"]
    return scheduler is not None and scheduler.running and state["pid"] == os.getpid()


def _run(app: Flask, sweep: Sweep, now: datetime | None) -> tuple[int, bool]:
    now = _utc(now)
    started = time.perf_counter()
    changed, failed = 0, False
    # Jobs write: on SQLite their transactions must begin with BEGIN IMMEDIATE.
    token = write_intent.set(True)
    try:
        with app.app_context():
            try:
                _log(logging.DEBUG, "job_started", job=sweep.name, now=now)
                changed = int(sweep.func(now) or 0)
                db.session.commit()
            except Exception:
                _rollback_quietly()
                raise
            finally:
                db.session.remove()
    except Exception as error:
        changed, failed = 0, True
        _log(
            logging.ERROR,
            "job_failed",
            job=sweep.name,
            now=now,
            error_type=type(error).__name__,
            error=_describe(error),
            where=_where(error),
            duration_ms=_ms_since(started),
        )
    finally:
        write_intent.reset(token)
        _state(app)["heartbeat"] = datetime.now(UTC)
        sweep_ran.send(app, job=sweep.name, failed=failed)
    if not failed:
        _log(
            logging.INFO if changed else logging.DEBUG,
            "job_finished",
            job=sweep.name,
            now=now,
            changed=changed,
            duration_ms=_ms_since(started),
        )
    return changed, failed


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def _rollback_quietly() -> None:
    try:
        db.session.rollback()
    except Exception as error:  # the connection may be gone; remove() discards it
        _log(logging.WARNING, "job_rollback_failed", error_type=type(error).__name__)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


# ---------------------------------------------------------------- logs


def _log(level: int, event: str, **fields) -> None:
    """One JSON line per event, like `web.logs.security_event`; never secrets or choices."""
    if not logger.isEnabledFor(level):
        return
    record = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": event,
        "pid": os.getpid(),
    }
    record.update(fields)
    logger.log(level, json.dumps(record, ensure_ascii=True, default=_json_value, sort_keys=True))


def _json_value(value) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _describe(error: BaseException) -> str:
    """The error's first line. For database errors that is the driver's message without
    the SQL and its parameters, which may hold personal data or ballot choices."""
    if isinstance(error, StatementError) and error.orig is not None:
        error = error.orig
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else ""


def _where(error: BaseException) -> str | None:
    """The deepest frame of our own code the error passed through: file:line in function."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(ROOT) and ".venv" not in path.parts:
            return f"{path.relative_to(ROOT)}:{frame.lineno} in {frame.name}"
    return None


def _configure_logger() -> None:
    # Like the security log: INFO unless the deployment configured this logger itself.
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def _on_scheduler_event(event) -> None:
    name = event.job_id.removeprefix(JOB_PREFIX)
    if event.code == EVENT_JOB_MAX_INSTANCES:
        # The previous run is still going; coalesce means the next tick catches up.
        _log(logging.WARNING, "job_skipped", job=name, reason="previous run still running")
    elif event.code == EVENT_JOB_MISSED:
        _log(logging.WARNING, "job_missed", job=name, scheduled=event.scheduled_run_time)
    else:  # EVENT_JOB_ERROR: run_sweep catches everything, so this means a bug here
        _log(
            logging.ERROR,
            "job_failed",
            job=name,
            error_type=type(event.exception).__name__,
            error=_describe(event.exception),
        )


# ---------------------------------------------------------------- the scheduler


def _state(app: Flask) -> dict:
    state = app.extensions.get(EXTENSION)
    if state is None:
        with _lock:
            state = app.extensions.setdefault(
                EXTENSION, {"scheduler": None, "pid": None, "stop": None, "heartbeat": None}
            )
    return state


def is_serving_process() -> bool:
    """Whether this process serves requests and so should run the scheduler: a WSGI server
    or script (no `flask` command running), or `flask run` — but not the reloader's watching
    parent, and not other commands such as `flask db upgrade` or `flask jobs run`.

    Never with YISHI_SCHEDULER=workers (gunicorn.conf.py): the app may then be created in
    gunicorn's master (`--preload`), and each worker starts its own scheduler instead."""
    if os.environ.get("YISHI_SCHEDULER") == IN_WORKERS:
        return False
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True
    if ctx.command.name != "run":
        return False
    reload = ctx.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return not reload or os.environ.get("WERKZEUG_RUN_MAIN") == "true"


def start_scheduler(app: Flask) -> BackgroundScheduler | None:
    """Start one background scheduler for `app` in this process, with one interval job per
    registered sweep, each due at once (start-up catch-up). None when SCHEDULER_ENABLED is
    off. Calling it again returns the running scheduler."""
    if not app.config.get("SCHEDULER_ENABLED"):
        return None
    state = _state(app)
    with _lock:
        running = state["scheduler"]
        # A scheduler inherited through fork() has no thread in this process.
        if running is not None and running.running and state["pid"] == os.getpid():
            return running
        _configure_logger()
        scheduler = BackgroundScheduler(
            timezone=UTC,
            daemon=True,
            jobstores={"default": MemoryJobStore()},
            # A run that was due while we were busy or down runs once, whenever late.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        now = datetime.now(UTC)
        for sweep in list(sweeps):
            scheduler.add_job(
                run_sweep,
                trigger="interval",
                seconds=interval_seconds(app, sweep),
                args=(app, sweep),
                id=JOB_PREFIX + sweep.name,
                name=sweep.name,
                next_run_time=now,
            )
        scheduler.add_listener(
            _on_scheduler_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR
        )
        scheduler.start()
        stop = functools.partial(_shutdown, scheduler)
        atexit.register(stop)
        state.update(scheduler=scheduler, pid=os.getpid(), stop=stop)
    _log(
        logging.INFO,
        "scheduler_started",
        jobs={sweep.name: interval_seconds(app, sweep) for sweep in list(sweeps)},
    )
    return scheduler


def stop_scheduler(app: Flask, wait: bool = True) -> None:
    """Shut the app's scheduler down (waiting for running sweeps unless wait=False)."""
    state = _state(app)
    with _lock:
        scheduler, stop = state["scheduler"], state["stop"]
        state.update(scheduler=None, pid=None, stop=None)
    if stop is not None:
        atexit.unregister(stop)
    if scheduler is not None and scheduler.running:
        _shutdown(scheduler, wait=wait)
        _log(logging.INFO, "scheduler_stopped")


def _shutdown(scheduler: BackgroundScheduler, wait: bool = False) -> None:
    with contextlib.suppress(SchedulerNotRunningError):
        scheduler.shutdown(wait=wait)


# ---------------------------------------------------------------- command line


def register_cli(app: Flask) -> None:
    """`flask jobs run` and `flask jobs list`."""
    _configure_logger()
    jobs = AppGroup("jobs", help="Scheduled sweeps: list them, or run them all once now.")

    @jobs.command("run")
    def run_command():
        """Run every sweep once now and print how many things each changed."""
        application = current_app._get_current_object()
        if not sweeps:
            click.echo("No sweeps are registered.")
            return
        failures = []
        for sweep in list(sweeps):
            changed, failed = _run(application, sweep, None)
            if failed:
                failures.append(sweep.name)
            click.echo(f"{sweep.name}: {'failed (see the yishi.jobs log)' if failed else changed}")
        if failures:
            raise click.ClickException(f"{len(failures)} sweep(s) failed: {', '.join(failures)}")

    @jobs.command("list")
    def list_command():
        """List the registered sweeps and how often the scheduler runs each."""
        application = current_app._get_current_object()
        if not sweeps:
            click.echo("No sweeps are registered.")
        for sweep in list(sweeps):
            click.echo(f"{sweep.name}: every {interval_seconds(application, sweep)} s")

    app.cli.add_command(jobs)
