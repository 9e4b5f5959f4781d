"""T13 (RELIABILITY.md): gunicorn with `--preload` and `--max-requests` recycling, served with
the repository's gunicorn.conf.py. The master (which creates the app with --preload) runs
no scheduler and forks without threads; every worker runs exactly one scheduler, started
once it has the app and stopped when it is recycled; a round due while workers are being
recycled closes exactly once; and no database connection is used on both sides of a fork.

The app is served through a test-only WSGI module (never part of the real app) that leaves
a pooled connection open where the app is created and answers one extra route reporting
what the serving process sees: its pid, where its connection was opened, its PostgreSQL
backend, its scheduler threads and heartbeat."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text, update

from ballots import services
from ballots.models import Round
from tests.ballots.test_concurrency import Browser, Gunicorn, board_report, entries_of, fresh
from tests.ballots.test_scheduler_rounds import electorate_ids, notified, status_of

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "gunicorn.conf.py"
MAX_REQUESTS = 6
PROCESS_ROUTE = "/_test/process"

WSGI_ENTRY = '''\
"""Written by tests/ballots/test_gunicorn_preload.py: the app on the test's database, and
what the test needs to see inside the server's processes."""
import json
import os
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import event, text

from app import create_app
from crypto import passwords
from web.database import read_only
from web.extensions import db
from web.scheduler import last_heartbeat

config = json.loads(os.environ["YISHI_TEST_APP_CONFIG"])
config["PASSWORD_COST"] = passwords.MINIMAL
app = create_app(config)


def backend_pid():
    """This session's PostgreSQL backend (None on SQLite); either way it uses a connection."""
    postgres = db.engine.dialect.name == "postgresql"
    query = "SELECT pg_backend_pid()" if postgres else "SELECT NULL"
    return db.session.execute(text(query)).scalar_one()


with app.app_context():

    @event.listens_for(db.engine, "connect")
    def _opened_here(dbapi_connection, record):
        record.info["opened_by"] = os.getpid()

    @event.listens_for(db.engine, "checkout")
    def _never_shared(dbapi_connection, record, proxy):
        if record.info.get("opened_by") != os.getpid():
            line = {"event": "connection_shared_across_fork", "pid": os.getpid()}
            print(json.dumps(dict(line, opened_by=record.info.get("opened_by"))), flush=True)

    # Where the app is created (the master, with --preload) a connection is opened and
    # left in the pool when the workers are forked.
    with read_only():
        CREATED = {"pid": os.getpid(), "backend": backend_pid()}
    db.session.rollback()
    db.session.remove()
    assert db.engine.pool.checkedin() == 1


@app.get("/_test/process")
def process():
    deadline = time.monotonic() + 10  # a new worker's first sweep
    while last_heartbeat(app) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    heartbeat = last_heartbeat(app)
    with read_only():
        backend = backend_pid()
        opened_by = db.session.connection().info.get("opened_by")
    db.session.rollback()
    return {
        "pid": os.getpid(),
        "created_in": CREATED,
        "opened_by": opened_by,
        "backend": backend,
        "heartbeat_age": (datetime.now(UTC) - heartbeat).total_seconds() if heartbeat else None,
        "schedulers": sum(t.name == "APScheduler" and t.is_alive() for t in threading.enumerate()),
    }
'''


@pytest.fixture
def gunicorn(app, database_uri, tmp_path):
    servers = Gunicorn(database_uri, tmp_path / "gunicorn")
    (servers.directory / "yishi_test_wsgi.py").write_text(WSGI_ENTRY)
    yield servers
    servers.stop_all()


def threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def events_in(log: str, event: str) -> list[dict]:
    """The JSON log lines (the scheduler's, the test module's) of `event`."""
    found = []
    for line in log.splitlines():
        if line.startswith("{") and f'"{event}"' in line:
            record = json.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


def pids_of(records: list[dict]) -> list[int]:
    return sorted(record["pid"] for record in records)


def live_backends(pids) -> set[int]:
    rows = fresh().execute(
        text("SELECT pid FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": list(pids)}
    )
    return set(rows.scalars())


def drive(server, round_, generations: int, deadline_s: float = 120) -> tuple[list[dict], float]:
    """Ask the process route, one request at a time, until the round has closed, workers of
    `generations` generations have served (the two recycled `generations - 1` times each),
    and a worker that had not served before the close has. Returns the answers and when
    the close was seen."""
    seen: list[dict] = []
    closed_at = None
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            reply = Browser(server.port).get(PROCESS_ROUTE, timeout=20)
        except OSError as error:  # e.g. a master that stopped forking workers
            pytest.fail(f"no answer: {error!r}\n{server.log_text()[-3000:]}")
        assert reply.status == 200, (reply.status, reply.text[:2000])
        seen.append(dict(json.loads(reply.text), at=time.monotonic()))
        if closed_at is None and status_of(round_) != "open":
            closed_at = time.monotonic()
        if closed_at is not None and len({s["pid"] for s in seen}) >= 2 * generations:
            before = {s["pid"] for s in seen if s["at"] < closed_at}
            if {s["pid"] for s in seen} - before:
                return seen, closed_at
    pytest.fail(f"the round did not close, or too few workers served:\n{server.log_text()[-3000:]}")


def test_the_app_leaves_its_scheduler_to_the_workers_under_the_gunicorn_config(
    app_config, monkeypatch
):
    """gunicorn.conf.py sets YISHI_SCHEDULER=workers: creating the app (in the master, with
    --preload) starts no scheduler, though the sweeps stay on for the workers to start."""
    from app import create_app
    from web.scheduler import EXTENSION, is_serving_process, start_scheduler, stop_scheduler

    monkeypatch.setenv("YISHI_SCHEDULER", "workers")
    assert not is_serving_process()
    created = create_app(dict(app_config, SCHEDULER_ENABLED=True))
    assert (created.extensions.get(EXTENSION) or {}).get("scheduler") is None
    try:
        scheduler = start_scheduler(created)  # what the worker's post_worker_init does
        assert scheduler is not None and scheduler.running
        assert start_scheduler(created) is scheduler
    finally:
        stop_scheduler(created)


@pytest.mark.xdist_group("servers")
@pytest.mark.parametrize(
    ("preload", "generations"),
    # Without --preload each new worker loads the app itself, which takes longer.
    [(True, 3), (False, 2)],
    ids=["preload", "no-preload"],
)
def test_recycled_workers_each_run_one_scheduler_and_close_a_round_once(
    db, estate, make_round, cast, gunicorn, preload, generations
):
    """T13: two workers, each recycled after a few requests, with --preload or without. The
    round closes a few seconds in, while workers come and go: once, with one result and one
    notification per voter. Every worker that served ran exactly one live scheduler; every
    recycled one stopped it; the master ran none and has a single thread; no connection
    opened in one process was checked out in another; on PostgreSQL every worker has its
    own backends, and the master's connection survives its children."""
    from web.database import read_only, write_intent

    args = ["-c", str(CONFIG), "--max-requests", str(MAX_REQUESTS), "--max-requests-jitter", "0"]
    server = gunicorn.start(
        workers=2,
        args=[*args, *(["--preload"] if preload else [])],
        SCHEDULER_ENABLED=True,
        SCHEDULER_TICK_SECONDS=1,
    )
    master = server.process.pid
    assert threads_of(master) == 1
    # The round is due a few seconds after the workers are up (and are sweeping: on SQLite
    # the test writes with the write lock, as a job does).
    token = write_intent.set(True)
    try:
        fresh()
        now = datetime.now(UTC).replace(microsecond=0)
        opens_at = now - timedelta(minutes=1)
        round_ = make_round(opens_at=opens_at, closes_at=now + timedelta(minutes=10), opened=False)
        # Due already: the workers' sweeps may open it before the test does (either way,
        # once).
        services.open_round(round_.id, opens_at)
        db.session.commit()
        assert status_of(round_) == "open"
        cast(estate.voters[0], round_, {"q1": ["yes"]}, now=now)
        cast(estate.voters[1], round_, {"q1": ["no"]}, now=now)
        # The close falls due a few seconds on, however slowly the ballots went in.
        closes_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
        db.session.execute(update(Round).where(Round.id == round_.id).values(closes_at=closes_at))
        db.session.commit()
    finally:
        write_intent.reset(token)

    with read_only():  # on SQLite, polling the round takes no write lock from the workers
        seen, closed_at = drive(server, round_, generations)

    time.sleep(1.5)  # the live workers sweep again, the recycled ones have gone
    alive = set(server.worker_pids())
    log = server.log_text()
    tail = log[-3000:]
    served = {s["pid"] for s in seen}
    recycled = served - alive
    assert master not in served
    assert len(recycled) >= 2 * (generations - 1), (sorted(served), sorted(alive), tail)
    assert log.count("Booting worker with pid") >= 2 * generations, tail
    # Workers that served only before the close, and workers that served only after it.
    assert {s["pid"] for s in seen if s["at"] < closed_at} - {
        s["pid"] for s in seen if s["at"] >= closed_at
    }, "recycled across the close"

    # One scheduler per worker, started once and alive; none in the master.
    assert threads_of(master) == 1
    started = pids_of(events_in(log, "scheduler_started"))
    assert len(started) == len(set(started)), "a worker started its scheduler twice"
    assert served <= set(started) and master not in started, (started, sorted(served))
    assert recycled <= set(pids_of(events_in(log, "scheduler_stopped"))), tail
    for s in seen:
        assert s["schedulers"] == 1, s
        assert s["heartbeat_age"] is not None and s["heartbeat_age"] < 10, s
    assert '"job_failed"' not in log and "Traceback" not in log, tail

    # No connection on both sides of a fork.
    assert events_in(log, "connection_shared_across_fork") == [], tail
    for s in seen:
        assert s["opened_by"] == s["pid"], s
        assert s["created_in"]["pid"] == (master if preload else s["pid"]), s
    if db.engine.dialect.name == "postgresql":
        created = {s["created_in"]["backend"] for s in seen}
        used_by: dict[int, set[int]] = {}
        for s in seen:
            used_by.setdefault(s["backend"], set()).add(s["pid"])
        assert all(len(pids) == 1 for pids in used_by.values()), used_by
        if preload:
            (master_backend,) = created
            assert master_backend not in used_by
            assert live_backends([master_backend]) == {master_backend}, "the master's survived"
        gone = {b for b, pids in used_by.items() if pids <= recycled}
        deadline = time.monotonic() + 10
        while live_backends(gone) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not live_backends(gone), "a recycled worker's connections were left open"

    # The round closed once.
    assert status_of(round_) == "closed", tail
    assert round_.closed_at == closes_at
    assert len(entries_of(round_.id, "close")) == 1
    assert len(entries_of(round_.id, "result")) == 1
    assert notified("round_closed") == electorate_ids(estate)
    report = board_report(round_.id)
    assert report.ok, report.problems
