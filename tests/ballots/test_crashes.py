"""Crashes and a busy database (RELIABILITY.md T17–T19): `kill -9` of the server during a
burst of casts loses no acknowledged ballot, `kill -9` in the middle of a close leaves the
round open for the next sweep to close once, and a held SQLite write lock makes a cast
wait, or answer 503 with Retry-After, never 500."""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.ballots.conftest import T1
from tests.ballots.test_concurrency import (
    RECEIPT_PATH,
    Browser,
    Gunicorn,
    ballots_of,
    board_report,
    entries_of,
    fresh,
    live_round,
    row_counts,
    start_script,
)
from tests.conftest import TEST_DATABASE_URL, IsolatedClient, csrf_token, login

sqlite_only = pytest.mark.skipif(
    bool(TEST_DATABASE_URL), reason="SQLite's database-wide write lock; PostgreSQL locks rows"
)


@pytest.fixture
def gunicorn(app, database_uri, tmp_path):
    servers = Gunicorn(database_uri, tmp_path / "gunicorn")
    yield servers
    servers.stop_all()


def notified(kind: str) -> list[int]:
    from deliberation.models import Notification

    return sorted(fresh().scalars(select(Notification.user_id).where(Notification.kind == kind)))


# ---------------------------------------------------------------- T17: kill -9 during casts


@pytest.mark.xdist_group("servers")
def test_kill_9_during_a_burst_of_casts_loses_no_acknowledged_ballot(
    db, estate, make_round, gunicorn
):
    """T17: four voters re-vote in a loop through two workers; master and workers are
    killed with SIGKILL mid-burst. After a restart every ballot whose 303 arrived is on
    the board where its receipt says, each voter has one current ballot (the latest),
    the chain verifies, and voting goes on."""
    from ballots import services

    round_ = live_round(make_round)
    path = f"/r/{round_.id}/cast"
    server = gunicorn.start(workers=2)
    browsers = [Browser(server.port).login(voter) for voter in estate.voters]
    tokens = [browser.token(f"/r/{round_.id}/vote") for browser in browsers]
    acknowledged: list[tuple[int, int, str]] = []  # (voter, ballot id, nonce)
    unexpected: list = []
    stop = threading.Event()

    def vote_again_and_again(i: int) -> None:
        choices = ["yes", "no", "abstain"]
        n = 0
        while not stop.is_set():
            nonce = services.new_nonce()
            form = {"csrf_token": tokens[i], "nonce": nonce, "a_q1": choices[(i + n) % 3]}
            n += 1
            try:
                reply = browsers[i].post(path, form, keep_cookies=False, timeout=10)
            except (OSError, http.client.HTTPException):
                return  # the server is gone
            if reply.status == 303:
                acknowledged.append((i, int(RECEIPT_PATH.search(reply.location).group(2)), nonce))
            elif reply.status not in (409, 503):
                unexpected.append(reply.status)

    threads = [threading.Thread(target=vote_again_and_again, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 16 and time.monotonic() < deadline:
        time.sleep(0.01)
    gunicorn.kill(server)  # kill -9, while requests are in flight
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)
    assert not unexpected, unexpected
    assert len(acknowledged) >= 4, "too few ballots before the kill to test anything"

    restarted = gunicorn.start(workers=2)
    for i, browser in enumerate(browsers):
        browser.port = restarted.port
        nonce = services.new_nonce()
        reply = browser.post(path, {"csrf_token": tokens[i], "nonce": nonce, "a_q1": "yes"})
        assert reply.status == 303, reply.text[-2000:]
        acknowledged.append((i, int(RECEIPT_PATH.search(reply.location).group(2)), nonce))

    stored = {ballot.id: ballot for ballot in ballots_of(round_.id)}
    for _i, ballot_id, nonce in acknowledged:
        assert ballot_id in stored, f"acknowledged ballot {ballot_id} is gone"
        assert stored[ballot_id].nonce == nonce
    # Ballots committed just before the kill whose 303 never arrived may be there too.
    assert len(stored) >= len(acknowledged)
    receipts = [json.loads(stored[ballot_id].receipt) for _i, ballot_id, _n in acknowledged]
    report = board_report(round_.id, receipts)
    assert report.ok, report.problems
    entries = {entry.n: entry for entry in entries_of(round_.id, "ballot")}
    for receipt in receipts:
        assert entries[receipt["n"]].hash == receipt["head"]
    for i in range(4):
        last = [ballot_id for voter, ballot_id, _n in acknowledged if voter == i][-1]
        mine = [b for b in stored.values() if b.voter_id == stored[last].voter_id]
        assert [b.id for b in mine if b.is_current] == [last]
        assert max(b.board_n for b in mine) == stored[last].board_n


# ---------------------------------------------------------------- T18: kill -9 during the close

SLOW_CLOSE = """
from crypto import writer
from web.scheduler import find_sweep, run_sweep

here, now = Path(sys.argv[1]), datetime.fromisoformat(sys.argv[2])
original = writer.result_payload


def slow(*args, **kwargs):
    # Half-way through the close: the close entry is added, the result is signed.
    payload = original(*args, **kwargs)
    (here / "inside-close").touch()
    time.sleep(120)
    return payload


writer.result_payload = slow
run_sweep(app, find_sweep("close_rounds"), now)
print(json.dumps({"finished": True}))
"""


@pytest.mark.xdist_group("servers")
def test_kill_9_in_the_middle_of_the_close_leaves_it_to_the_next_sweep(
    app, db, estate, make_round, cast, database_uri, tmp_path
):
    """T18: a process closing the round is killed with SIGKILL half-way through: the round
    is still open with no close entry, and the next sweep closes it once."""
    from web.scheduler import run_all_due

    round_ = make_round()
    for voter, answer in zip(estate.voters, ("yes", "yes", "no", "no"), strict=True):
        cast(voter, round_, {"q1": [answer]})
    before = row_counts()
    here = tmp_path / "slow-close"
    process = start_script(
        database_uri, here, "slow_close", SLOW_CLOSE, args=[str(here), T1.isoformat()]
    )
    try:
        deadline = time.monotonic() + 60
        while not (here / "inside-close").exists():
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the close never got half-way"
            time.sleep(0.02)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=20)
    assert process.returncode == -signal.SIGKILL

    fresh().refresh(round_)
    assert round_.status == "open" and round_.closed_at is None and round_.result is None
    assert entries_of(round_.id, "close") == [] and entries_of(round_.id, "result") == []
    assert row_counts() == before
    assert notified("round_closed") == []

    assert run_all_due(app, T1 + timedelta(minutes=1))["close_rounds"] == 1
    assert run_all_due(app, T1 + timedelta(minutes=2))["close_rounds"] == 0
    fresh().refresh(round_)
    assert round_.status == "closed" and round_.closed_at == T1
    assert round_.result_data["questions"][0]["counts"] == {"yes": 2, "no": 2, "abstain": 0}
    assert len(entries_of(round_.id, "close")) == 1
    assert len(entries_of(round_.id, "result")) == 1
    assert len(notified("round_closed")) == 5
    report = board_report(round_.id)
    assert report.ok, report.problems


# ---------------------------------------------------------------- T19: a held SQLite write lock


def _hold_write_lock(database_uri: str) -> sqlite3.Connection:
    blocker = sqlite3.connect(
        database_uri.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


def _release(blocker: sqlite3.Connection) -> None:
    blocker.execute("ROLLBACK")
    blocker.close()


@sqlite_only
def test_a_cast_waits_for_a_write_lock_held_for_3_seconds_and_succeeds(
    db, estate, make_round, login_as, database_uri
):
    """T19: another connection holds the write lock for 3 s; the cast waits (busy timeout
    5 s) and is recorded."""
    from ballots import services

    round_ = live_round(make_round)
    client = login_as(estate.voters[0])
    token = csrf_token(client, f"/r/{round_.id}/vote")
    form = {"csrf_token": token, "nonce": services.new_nonce(), "a_q1": "yes"}
    blocker = _hold_write_lock(database_uri)
    releaser = threading.Timer(3.0, _release, args=(blocker,))
    releaser.start()
    started = time.monotonic()
    try:
        response = client.post(f"/r/{round_.id}/cast", data=form)
    finally:
        releaser.join(timeout=10)
    waited = time.monotonic() - started
    assert response.status_code == 303, response.get_data(as_text=True)[-2000:]
    assert waited >= 2.5, f"the cast did not wait for the lock ({waited:.2f} s)"
    assert len(ballots_of(round_.id)) == 1


@sqlite_only
def test_a_cast_blocked_past_the_busy_timeout_gets_503_with_retry_after_then_succeeds(
    app_config, db, estate, make_round, database_uri
):
    """T19: the lock is held past the busy timeout (200 ms here, 5 s in production): the
    cast gets a 503 with Retry-After (never a 500) and writes nothing; the retry once the
    lock is gone is recorded, and a close sweep blocked the same way is retried."""
    from app import create_app
    from ballots import services
    from web.extensions import db as database
    from web.scheduler import run_all_due

    round_ = live_round(make_round)
    busy = create_app(dict(app_config, SQLITE_BUSY_TIMEOUT_MS=200))
    busy.test_client_class = IsolatedClient  # each request in a context of its own
    try:
        client = busy.test_client()
        login(client, estate.voters[0])
        token = csrf_token(client, f"/r/{round_.id}/vote")
        form = {"csrf_token": token, "nonce": services.new_nonce(), "a_q1": "no"}
        before = row_counts()
        blocker = _hold_write_lock(database_uri)
        try:
            response = client.post(
                f"/r/{round_.id}/cast", data=form, headers={"Accept-Language": "en"}
            )
            assert response.status_code == 503, response.get_data(as_text=True)[-2000:]
            assert int(response.headers["Retry-After"]) > 0
            assert "busy" in response.get_data(as_text=True)
            swept = run_all_due(busy, round_.closes_at)
            assert swept["close_rounds"] == 0
        finally:
            _release(blocker)
        assert row_counts() == before
        assert fresh().get(type(round_), round_.id).status == "open"

        retry = client.post(f"/r/{round_.id}/cast", data=form)
        assert retry.status_code == 303
        assert len(ballots_of(round_.id)) == 1
        assert run_all_due(busy, round_.closes_at)["close_rounds"] == 1
    finally:
        with busy.app_context():
            database.session.remove()
            database.engine.dispose()
    fresh().refresh(round_)
    assert round_.status == "closed" and round_.result_data["counted"] == 1
