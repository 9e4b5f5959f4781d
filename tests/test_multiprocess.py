"""Two app servers behind a load balancer (issue 5; RELIABILITY.md T12, T17, T21 across
processes): two gunicorn masters, each with its own workers and their schedulers, started
with the repository's gunicorn.conf.py on ports of their own, share one database and one
Redis (rate limits and metrics). Clients alternate between them as a load balancer would.

The brute-force and kill -9 tests need PostgreSQL (TEST_DATABASE_URL), the setup where a
site runs several app servers. The close and the concurrent votes run on SQLite too: two
servers on one SQLite file in WAL mode on one machine are as supported as two workers of
one server (all writes queue on the database's lock)."""

from __future__ import annotations

import html
import itertools
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url

from ballots.models import Round
from tests.ballots import conftest as rounds
from tests.ballots.conftest import close, yes_no
from tests.ballots.test_concurrency import (
    _RECEIPT_TEXT,
    RECEIPT_PATH,
    Browser,
    Gunicorn,
    approval,
    ballots_of,
    board_report,
    entries_of,
    fresh,
    live_round,
)
from tests.ballots.test_gunicorn_preload import events_in
from tests.ballots.test_scheduler_rounds import electorate_ids, notified, status_of
from tests.conftest import PASSWORD, TEST_DATABASE_URL, redis_keys
from tests.test_operations import parse_exposition, value_of

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "gunicorn.conf.py"
REDIS_URI = "redis://127.0.0.1:6379/7"
WRONG_MESSAGE = "The phone number/email or the password is wrong."
TOO_MANY = "Too many attempts. Please wait a minute and try again."
CAST_ROUTE = "/r/<int:round_id>/cast"

pytestmark = pytest.mark.xdist_group("servers")

# The round fixtures of tests/ballots (its conftest.py does not reach this folder).
estate, make_round, cast = rounds.estate, rounds.make_round, rounds.cast

ON_POSTGRES = bool(TEST_DATABASE_URL) and (
    make_url(TEST_DATABASE_URL).get_backend_name() == "postgresql"
)
postgres_only = pytest.mark.skipif(
    not ON_POSTGRES,
    reason="two app servers against one database: set TEST_DATABASE_URL to a PostgreSQL "
    "database (postgresql+psycopg://…)",
)


# ---------------------------------------------------------------- two servers, one Redis


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own in Redis db 7 (rate limits and metrics), removed
    afterwards."""
    with redis_keys(REDIS_URI, "yishi-mp-test", "the two-server tests") as prefix:
        yield prefix


@dataclass
class Site:
    """Two gunicorn masters on one database and one Redis; every server stopped at the end."""

    gunicorn: Gunicorn
    redis_prefix: str

    def start(self, workers: int = 2, **config) -> tuple:
        """Server A (with --preload) and server B (without), booting at once."""
        settings = {
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_STORAGE_URI": REDIS_URI,
            "RATELIMIT_STORAGE_OPTIONS": {"key_prefix": self.redis_prefix},
            "METRICS_KEY_PREFIX": f"{self.redis_prefix}:metrics",
            **config,
        }
        base = ["-c", str(CONFIG)]
        servers = (
            self.gunicorn.launch(workers, [*base, "--preload"], **settings),
            self.gunicorn.launch(workers, base, **settings),
        )
        for server in servers:
            self.gunicorn.wait_until_ready(server, workers)
        return servers

    def stored_keys(self) -> list[bytes]:
        import redis

        connection = redis.Redis.from_url(REDIS_URI, socket_timeout=2)
        try:
            return list(connection.scan_iter(match=f"{self.redis_prefix}*"))
        finally:
            connection.close()


@pytest.fixture
def site(app, database_uri, tmp_path, redis_prefix):
    servers = Gunicorn(database_uri, tmp_path / "gunicorn")
    yield Site(servers, redis_prefix)
    for server in servers.servers:  # all shut down gracefully at once, then waited for
        if server.process.poll() is None:
            server.process.terminate()
    servers.stop_all()


def wait_while(round_, status: str, servers, seconds: float = 40) -> None:
    """Until the round's status is no longer `status` (changed by the servers' sweeps)."""
    deadline = time.monotonic() + seconds
    while status_of(round_) == status and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status_of(round_) != status, f"still {status}:\n{logs_of(*servers)[-3000:]}"


def logs_of(*servers) -> str:
    return "\n".join(server.log_text() for server in servers)


def no_failures(*servers) -> None:
    log = logs_of(*servers)
    assert '"job_failed"' not in log and "Traceback" not in log, log[-3000:]


# ---------------------------------------------------------------- (a) brute force (T21)


def notice_of(reply) -> str:
    """The page's error notice, as text."""
    match = re.search(
        r'<div class="notice notice--error" role="alert">(.*?)</div>', reply.text, re.S
    )
    assert match, f"no error notice ({reply.status})"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


@postgres_only
def test_a_login_brute_force_alternating_between_the_servers_is_limited_across_both(
    db, make_user, site
):
    """Failed logins are counted in Redis, not per server: five wrong passwords sent in
    turn to A and B lock the account on both (429, Retry-After, the right password
    refused), an unknown account is answered with the same words at every step, and
    twenty failures from one address lock that address for every account on both."""
    member, other = make_user(), make_user()
    a, b = site.start()

    def attempt(k: int, contact: str, password: str):
        """The k-th attempt on an account: the login page from one server, the form
        posted to the other, in turn."""
        browser = Browser((a, b)[k % 2].port)
        token = browser.token("/auth/login")
        browser.port = (b, a)[k % 2].port
        return browser.post(
            "/auth/login", {"contact": contact, "password": password, "csrf_token": token}
        )

    def locked_on_both(contact: str, password: str) -> list[str]:
        notices = []
        for server in (a, b):
            browser = Browser(server.port)
            token = browser.token("/auth/login")
            reply = browser.post(
                "/auth/login", {"contact": contact, "password": password, "csrf_token": token}
            )
            assert reply.status == 429, (server.port, reply.status, reply.text[-1500:])
            assert int(reply.headers["Retry-After"]) > 0
            notices.append(notice_of(reply))
        return notices

    unknown = "13700000001"
    for n in range(5):
        known = attempt(n, member.phone, f"guess {n}")
        stranger = attempt(n, unknown, f"guess {n}")
        assert (known.status, stranger.status) == (400, 400)
        assert notice_of(known) == notice_of(stranger) == WRONG_MESSAGE

    assert locked_on_both(member.phone, PASSWORD) == [TOO_MANY, TOO_MANY]
    assert locked_on_both(unknown, "guess 6") == [TOO_MANY, TOO_MANY]

    # Ten failures from 127.0.0.1 so far; ten more, each on an account of its own.
    for n in range(10):
        reply = attempt(n, f"1370000{n + 100:04d}", "guess guess")
        assert reply.status == 400, reply.text[-1500:]
    assert locked_on_both(other.phone, PASSWORD) == [TOO_MANY, TOO_MANY]

    # Both servers counted, and the counts are in the shared Redis.
    for server in (a, b):
        log = server.log_text()
        assert events_in(log, "login_failed"), log[-2000:]
        assert events_in(log, "login_locked_out"), log[-2000:]
    keys = [key.decode() for key in site.stored_keys()]
    assert any("login-account" in key for key in keys), keys
    assert any("login-ip" in key for key in keys), keys


# ---------------------------------------------------------------- (b) one close (T12)


def test_a_round_due_to_close_is_closed_once_with_both_servers_sweeping(
    db, estate, make_round, cast, site
):
    """Four schedulers (two workers of each server, ticking every second) all find the
    round due, to open and then to close: it is opened once and closed once, with one
    open, one close and one result entry, one notification per member of the electorate,
    and in all the processes' logs one sweep reporting each change."""
    from web.database import read_only, write_intent

    a, b = site.start(SCHEDULER_ENABLED=True, SCHEDULER_TICK_SECONDS=1)
    token = write_intent.set(True)  # SQLite: write as the sweeping workers do
    try:
        fresh()
        # Due to open at once; the close is far enough off that a slow machine casts the
        # three ballots in time, and is brought forward once they are in (time passing).
        now = datetime.now(UTC).replace(microsecond=0)
        round_ = make_round(
            opens_at=now - timedelta(seconds=1),
            closes_at=now + timedelta(minutes=10),
            opened=False,
        )
        with read_only():  # polling takes no write lock from the sweeping workers
            wait_while(round_, "scheduled", (a, b))
        fresh()
        now = datetime.now(UTC)
        cast(estate.voters[0], round_, {"q1": ["yes"]}, now=now)
        cast(estate.voters[1], round_, {"q1": ["no"]}, now=now)
        cast(estate.voters[2], round_, {"q1": ["yes"]}, now=now)
        closes_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        db.session.execute(update(Round).where(Round.id == round_.id).values(closes_at=closes_at))
        db.session.commit()
    finally:
        write_intent.reset(token)

    # From here the test only reads: on SQLite, without the write lock, so that polling
    # the round's status never keeps the sweeping workers waiting past their busy timeout.
    with read_only():
        wait_while(round_, "open", (a, b))
        time.sleep(2)  # every scheduler sweeps again

        started = [events_in(server.log_text(), "scheduler_started") for server in (a, b)]
        assert [len(s) for s in started] == [2, 2], logs_of(a, b)[-3000:]
        assert len({line["pid"] for lines in started for line in lines}) == 4
        no_failures(a, b)
        finished = [line for s in (a, b) for line in events_in(s.log_text(), "job_finished")]
        for job in ("open_rounds", "close_rounds"):
            changes = [line["changed"] for line in finished if line["job"] == job]
            assert changes == [1], (job, finished)

        assert len(entries_of(round_.id, "open")) == 1
        assert round_.closed_at == closes_at
        assert len(entries_of(round_.id, "close")) == 1
        assert len(entries_of(round_.id, "result")) == 1
        assert round_.result_data["counted"] == 3
        assert round_.result_data["questions"][0]["counts"] == {"yes": 2, "no": 1, "abstain": 0}
        assert notified("round_closed") == electorate_ids(estate)
        report = board_report(round_.id)
        assert report.ok, report.problems


# ---------------------------------------------------------------- (c) concurrent votes


@dataclass
class Acknowledged:
    voter: int  # index into the test's voters
    ballot_id: int
    nonce: str
    receipt: dict | None = None


def ballot_id_of(reply) -> int:
    """The ballot a 303 to its receipt page names."""
    return int(RECEIPT_PATH.search(reply.location).group(2))


def cast_form(token: str, nonce: str, n: int) -> dict:
    return {
        "csrf_token": token,
        "nonce": nonce,
        "a_q1": ("yes", "no", "abstain")[n % 3],
        "a_q2": [("o1", "o2"), ("o3",), ("o2", "o4"), ()][n % 4],
    }


def test_concurrent_votes_through_both_servers_leave_a_valid_board(
    db, estate, make_member, make_round, site
):
    """Twelve voters, each logged in on one server, cast three ballots each at once,
    alternating between the servers, and read each receipt from the other server. Every
    receipt is on the board where it says, each voter has one current ballot (the last),
    the close counts one ballot per voter, the verifier accepts the board, and either
    server's /metrics counts the casts of both."""
    from ballots import services

    voters = estate.voters + [
        make_member(estate.community, role="owner", area=Decimal("50.00")) for _ in range(8)
    ]
    round_ = live_round(make_round, [yes_no(), approval()])
    a, b = site.start()
    servers = (a, b)
    path = f"/r/{round_.id}/cast"
    browsers = [Browser(servers[i % 2].port).login(voter) for i, voter in enumerate(voters)]
    tokens = [browser.token(f"/r/{round_.id}/vote") for browser in browsers]
    acknowledged: list[Acknowledged] = []
    unexpected: list = []
    busy = []
    barrier = threading.Barrier(len(voters), timeout=30)

    def vote_three_times(i: int) -> None:
        browser = Browser(0)
        browser.cookies = browsers[i].cookies
        barrier.wait()
        for n in range(3):
            browser.port = servers[(i + n) % 2].port
            form = cast_form(tokens[i], services.new_nonce(), i + n)
            for _attempt in range(5):
                reply = browser.post(path, form, keep_cookies=False, timeout=30)
                if reply.status != 503:
                    break
                busy.append(int(reply.headers["Retry-After"]))  # SQLite's lock, retried
                time.sleep(0.2)
            if reply.status != 303:
                unexpected.append((reply.status, reply.text[-500:]))
                continue
            done = Acknowledged(i, ballot_id_of(reply), form["nonce"])
            browser.port = servers[(i + n + 1) % 2].port
            page = browser.get(reply.location, keep_cookies=False)
            assert page.status == 200, page.status
            done.receipt = json.loads(html.unescape(_RECEIPT_TEXT.search(page.text).group(1)))
            acknowledged.append(done)

    threads = [threading.Thread(target=vote_three_times, args=(i,)) for i in range(len(voters))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert not unexpected, unexpected
    assert len(acknowledged) == 3 * len(voters)
    if ON_POSTGRES:
        assert busy == [], "PostgreSQL locks rows: no cast should have found it busy"
    no_failures(a, b)

    stored = {ballot.id: ballot for ballot in ballots_of(round_.id)}
    assert len(stored) == len(acknowledged)
    entries = {entry.n: entry for entry in entries_of(round_.id, "ballot")}
    for done in acknowledged:
        ballot = stored[done.ballot_id]
        assert ballot.nonce == done.nonce
        assert done.receipt["n"] == ballot.board_n
        assert entries[done.receipt["n"]].hash == done.receipt["head"]
    receipts = [done.receipt for done in acknowledged]
    report = board_report(round_.id, receipts)
    assert report.ok, report.problems
    for i in range(len(voters)):
        mine = sorted((d for d in acknowledged if d.voter == i), key=lambda d: d.receipt["n"])
        voter_id = stored[mine[-1].ballot_id].voter_id
        current = [b.id for b in stored.values() if b.voter_id == voter_id and b.is_current]
        assert current == [mine[-1].ballot_id], (i, current)

    # One Redis for the metrics: server B reports the casts both servers answered.
    scrape = Browser(b.port).get("/metrics")
    assert scrape.status == 200, scrape.text[:500]
    _, samples = parse_exposition(scrape.text)
    casts = value_of(
        samples, "yishi_http_requests_total", method="POST", route=CAST_ROUTE, status="303"
    )
    assert casts == len(acknowledged)

    assert close(db, round_, now=round_.closes_at)
    assert round_.result_data["counted"] == len(voters)
    report = board_report(round_.id, receipts)
    assert report.ok, report.problems


# ---------------------------------------------------------------- (d) kill -9 (T17)


@postgres_only
def test_kill_9_of_both_servers_during_a_burst_of_votes_loses_no_acknowledged_ballot(
    db, estate, make_member, make_round, site
):
    """Six voters re-vote in a loop, in turn through A and B. Server A (master and
    workers) is killed with SIGKILL mid-burst; its voters go on through B, as behind a
    load balancer; then B is killed too. After both are restarted every ballot whose 303
    arrived is on the board with the receipt its voter reads, each voter's last
    acknowledged ballot is the current one, the chain verifies, and voting goes on."""
    import http.client

    from ballots import services

    voters = estate.voters + [
        make_member(estate.community, role="owner", area=Decimal("40.00")) for _ in range(2)
    ]
    round_ = live_round(make_round)
    path = f"/r/{round_.id}/cast"
    a, b = site.start()
    alive = [a, b]
    browsers = [Browser(alive[i % 2].port).login(voter) for i, voter in enumerate(voters)]
    tokens = [browser.token(f"/r/{round_.id}/vote") for browser in browsers]
    acknowledged: list[Acknowledged] = []
    unexpected: list = []
    lost = []  # requests cut off by a kill: maybe stored, never acknowledged
    stop = threading.Event()

    def vote_again_and_again(i: int) -> None:
        browser = Browser(0)
        browser.cookies = browsers[i].cookies
        for n in itertools.count():
            if stop.is_set():
                return
            servers = list(alive)  # the balancer's view: the servers not known dead
            if not servers:
                return
            browser.port = servers[(i + n) % len(servers)].port
            form = cast_form(tokens[i], services.new_nonce(), i + n)
            try:
                reply = browser.post(path, form, keep_cookies=False, timeout=10)
            except (OSError, http.client.HTTPException):
                lost.append((i, form["nonce"]))
                continue
            if reply.status == 303:
                ballot_id = ballot_id_of(reply)
                acknowledged.append(Acknowledged(i, ballot_id, form["nonce"]))
            elif reply.status not in (409, 503):
                unexpected.append((reply.status, reply.text[-500:]))

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 20
        while len(acknowledged) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(acknowledged) >= count, "too few ballots before the kill"

    threads = [threading.Thread(target=vote_again_and_again, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    try:
        wait_for(8)
        site.gunicorn.kill(a)  # kill -9 of A's master and workers, requests in flight
        alive.remove(a)
        before_b = len(acknowledged)
        wait_for(before_b + 8)  # the voters go on through B alone
        site.gunicorn.kill(b)
        alive.remove(b)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)
    assert not unexpected, unexpected

    restarted = site.start()
    for i, browser in enumerate(browsers):
        browser.port = restarted[i % 2].port
        nonce = services.new_nonce()
        reply = browser.post(path, cast_form(tokens[i], nonce, i))
        assert reply.status == 303, reply.text[-2000:]
        acknowledged.append(Acknowledged(i, ballot_id_of(reply), nonce))

    # Every acknowledged ballot, read back by its voter through the restarted servers.
    receipts_path = f"/r/{round_.id}/receipts"

    def receipt_page(k: int):
        done = acknowledged[k]
        reader = Browser(restarted[k % 2].port)
        reader.cookies = dict(browsers[done.voter].cookies)
        return reader.get(f"{receipts_path}/{done.ballot_id}", keep_cookies=False)

    stored = {ballot.id: ballot for ballot in ballots_of(round_.id)}
    with ThreadPoolExecutor(4) as pool:
        pages = list(pool.map(receipt_page, range(len(acknowledged))))
    for done, page in zip(acknowledged, pages, strict=True):
        assert done.ballot_id in stored, f"acknowledged ballot {done.ballot_id} is gone"
        assert stored[done.ballot_id].nonce == done.nonce
        assert page.status == 200, page.status
        done.receipt = json.loads(html.unescape(_RECEIPT_TEXT.search(page.text).group(1)))
    # Ballots committed just before a kill whose 303 never arrived may be there too.
    assert len(acknowledged) <= len(stored) <= len(acknowledged) + len(lost)
    receipts = [done.receipt for done in acknowledged]
    report = board_report(round_.id, receipts)
    assert report.ok, report.problems
    entries = {entry.n: entry for entry in entries_of(round_.id, "ballot")}
    for done in acknowledged:
        assert entries[done.receipt["n"]].hash == done.receipt["head"]
    for i in range(len(voters)):
        last = [d.ballot_id for d in acknowledged if d.voter == i][-1]
        mine = [s for s in stored.values() if s.voter_id == stored[last].voter_id]
        assert [s.id for s in mine if s.is_current] == [last]
        assert max(s.board_n for s in mine) == stored[last].board_n

    assert close(db, round_, now=round_.closes_at)
    assert round_.result_data["counted"] == len(voters)
    report = board_report(round_.id, receipts)
    assert report.ok, report.problems
    no_failures(*restarted)
