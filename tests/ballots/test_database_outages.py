"""T20: PostgreSQL connections killed under the application: a clear 503 (never a 500),
nothing half-written, and the next request works (pool_pre_ping and invalidation)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.ballots.test_concurrency import board_report, live_round, row_counts
from tests.conftest import TEST_DATABASE_URL, csrf_token

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="PostgreSQL connections only")


def _kill_other_connections(database_uri: str) -> int:
    """pg_terminate_backend every other session of this database (the pool's idle ones)."""
    engine = create_engine(database_uri, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    engine.dispose()
    return int(killed)


def test_idle_connections_killed_between_requests_are_replaced(
    db, estate, make_round, login_as, database_uri
):
    round_ = live_round(make_round)
    client = login_as(estate.voters[0])
    assert client.get(f"/r/{round_.id}").status_code == 200
    db.session.commit()
    assert _kill_other_connections(database_uri) >= 1
    page = client.get(f"/r/{round_.id}")
    assert page.status_code == 200, "pre-ping replaced the dead connection"
    token = csrf_token(client, f"/r/{round_.id}/vote")
    cast = client.post(
        f"/r/{round_.id}/cast", data={"csrf_token": token, "nonce": "1" * 32, "a_q1": "yes"}
    )
    assert cast.status_code == 303


def test_a_connection_killed_in_the_middle_of_a_cast_is_a_503_and_the_retry_works(
    db, estate, make_round, login_as, monkeypatch
):
    from ballots import services

    round_ = live_round(make_round)
    client = login_as(estate.voters[0])
    token = csrf_token(client, f"/r/{round_.id}/vote")
    before = row_counts()
    original = services._lock_open
    calls = {"n": 0}

    def dying_lock(locked_round):
        calls["n"] += 1
        if calls["n"] == 1:  # the server goes away while the cast holds its transaction
            from web.extensions import db as database

            database.session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return original(locked_round)

    monkeypatch.setattr(services, "_lock_open", dying_lock)
    form = {"csrf_token": token, "nonce": "2" * 32, "a_q1": "no"}
    failed = client.post(f"/r/{round_.id}/cast", data=form)
    assert failed.status_code == 503, failed.get_data(as_text=True)[:500]
    assert failed.headers.get("Retry-After")
    assert row_counts() == before, "nothing half-written"
    retry = client.post(f"/r/{round_.id}/cast", data=form)
    assert retry.status_code == 303
    assert row_counts()["ballots"] == before["ballots"] + 1
    report = board_report(round_.id)
    assert report.ok, report.problems
