"""Ballots under concurrency, against the real database (RELIABILITY.md T01–T03, T05–T09).

Races run in real threads, each with its own app context and database session, released
together by a `threading.Barrier`; the HTTP races go through a real gunicorn with two worker
processes. Nothing is mocked: the guarantees under test are the round's row lock (SQLite:
BEGIN IMMEDIATE), the conditional updates and the partial unique indexes. (One test
switches the application's duplicate check off, to see what the database's guard does.)

The helpers here (`race`, `Gunicorn`, `Browser`, `start_script`, `live_round`, ...) are
also used by test_scheduler_rounds.py and test_crashes.py."""

from __future__ import annotations

import contextlib
import functools
import html
import http.client
import json
import logging
import os
import re
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest
import time_machine
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import MultiDict

from tests.ballots.conftest import T0, T1, close, yes_no
from tests.conftest import PASSWORD, csrf_token

ROOT = Path(__file__).resolve().parents[2]
DURING = T0 + timedelta(hours=1)  # a moment while the fixtures' rounds are open
RECEIPT_PATH = re.compile(r"/r/(\d+)/receipts/(\d+)$")
_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_RECEIPT_TEXT = re.compile(r'<textarea id="receipt-text"[^>]*>(.*?)</textarea>', re.S)


# ---------------------------------------------------------------- reading the database


def fresh():
    """End the test's read snapshot, so the next query sees what other sessions committed."""
    from web.extensions import db

    db.session.rollback()
    return db.session


def row_counts() -> dict[str, int]:
    from ballots.models import Ballot, BoardEntry, Credential, Voter

    session = fresh()
    return {
        "ballots": session.scalar(select(func.count(Ballot.id))),
        "board_entries": session.scalar(select(func.count(BoardEntry.id))),
        "credentials": session.scalar(select(func.count(Credential.id))),
        "voted": session.scalar(select(func.count(Voter.voted_at))),
    }


def ballots_of(round_id: int, voter_id: int | None = None) -> list:
    from ballots.models import Ballot

    query = select(Ballot).where(Ballot.round_id == round_id).order_by(Ballot.board_n)
    if voter_id is not None:
        query = query.where(Ballot.voter_id == voter_id)
    return list(fresh().scalars(query))


def voter_id_of(user, round_) -> int:
    from ballots.models import Voter

    return fresh().scalar(
        select(Voter.id).where(Voter.round_id == round_.id, Voter.slot == f"u:{user.id}")
    )


def entries_of(round_id: int, entry_type: str | None = None) -> list:
    from ballots.models import BoardEntry

    query = select(BoardEntry).where(BoardEntry.round_id == round_id).order_by(BoardEntry.n)
    if entry_type:
        query = query.where(BoardEntry.type == entry_type)
    return list(fresh().scalars(query))


def board_report(round_id: int, receipts: Iterable = ()):
    """The standalone verifier's report on the round's whole board (open or closed)."""
    from ballots import services
    from ballots.models import Round
    from crypto.verify import verify_board

    round_ = fresh().get(Round, round_id)
    document = services.board_document(round_, released_only=False)
    return verify_board(document, list(receipts), workers=1)


def live_round(make_round, questions=None, **kwargs):
    """A round open now by the real clock (for requests through real servers)."""
    now = datetime.now(UTC).replace(microsecond=0)
    kwargs.setdefault("opens_at", now - timedelta(minutes=1))
    kwargs.setdefault("closes_at", now + timedelta(days=7))
    return make_round(questions, **kwargs)


def approval(title: str = "Which trees?", options=("Ginkgo", "Camphor", "Osmanthus", "Pine")):
    from ballots.services import QuestionDraft

    return QuestionDraft(title=title, method="approval", options=list(options), max_choices=2)


# ---------------------------------------------------------------- threads behind a barrier


@dataclass
class Outcome:
    kind: str  # "ok", "refused" (a domain error) or "error" (anything else)
    value: object = None

    def __repr__(self) -> str:
        return f"{self.kind}:{self.value!r}"


@dataclass(frozen=True)
class Cast:
    ballot_id: int
    board_n: int
    nonce: str
    receipt: str
    answers: dict


def race(app, jobs: list[Callable], timeout: float = 60) -> list[Outcome]:
    """Run each `job(arrive)` in a thread of its own with its own app context and session.
    A job loads what it needs, then calls `arrive()`, which ends its read transaction (no
    lock is held while waiting) and waits at the barrier until every job is there."""
    from web.database import write_intent
    from web.errors import DomainError
    from web.extensions import db

    barrier = threading.Barrier(len(jobs), timeout=30)
    outcomes: list[Outcome | None] = [None] * len(jobs)

    def run(i: int, job: Callable) -> None:
        arrived = []

        def arrive():
            db.session.rollback()
            arrived.append(True)
            barrier.wait()

        token = write_intent.set(True)  # like a POST request or a job
        try:
            with app.app_context():
                try:
                    outcomes[i] = Outcome("ok", job(arrive))
                except DomainError as error:
                    outcomes[i] = Outcome("refused", error)
                except BaseException as error:  # reported by the test
                    outcomes[i] = Outcome("error", error)
                finally:
                    if not arrived:
                        barrier.abort()  # the others would wait for this one in vain
                    db.session.rollback()
                    db.session.remove()
        finally:
            write_intent.reset(token)

    threads = [
        threading.Thread(target=run, args=(i, job), daemon=True) for i, job in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a racing thread hung"
    return outcomes  # type: ignore[return-value]


def cast_job(user_id: int, round_id: int, answers: dict, *, nonce=None, now=DURING, **kwargs):
    """A job for `race`: cast (or re-cast) a ballot through the service and commit."""

    def job(arrive) -> Cast:
        from ballots import services
        from ballots.models import Round
        from community.models import User
        from web.database import read_only
        from web.extensions import db

        with read_only():
            user = db.session.get(User, user_id)
            round_ = db.session.get(Round, round_id)
        ballot_nonce = nonce or services.new_nonce()
        arrive()
        ballot = services.cast_ballot(user, round_, answers, ballot_nonce, now=now, **kwargs)
        done = Cast(ballot.id, ballot.board_n, ballot.nonce, ballot.receipt, answers)
        db.session.commit()
        return done

    return job


def kinds(outcomes: list[Outcome]) -> list[str]:
    return [outcome.kind for outcome in outcomes]


def no_errors(outcomes: list[Outcome]) -> None:
    errors = [o for o in outcomes if o.kind == "error"]
    assert not errors, f"raised instead of a ballot or a domain error: {errors}"


def browser_signed(round_, answers: dict, nonce: str, seed: bytes | None = None) -> dict:
    """What the voter's browser sends when it signs with its own key (WebCrypto)."""
    from crypto import board, writer

    seed = seed or board.new_seed()
    credential = board.public_key(seed)
    body = writer.ballot_body(round_.round_hash, credential, nonce, answers)
    return {"credential": credential, "signature": board.sign(seed, "ballot", body)}


# ---------------------------------------------------------------- real servers and processes

WSGI_ENTRY = '''\
"""Written by tests/ballots: the app on the test's database, configured from the environment."""
import json
import os

from app import create_app
from crypto import passwords

config = json.loads(os.environ["YISHI_TEST_APP_CONFIG"])
config["PASSWORD_COST"] = passwords.MINIMAL
app = create_app(config)
'''


@functools.cache
def _has_control_socket() -> bool:
    import gunicorn.config

    return any(s.name == "control_socket_disable" for s in gunicorn.config.KNOWN_SETTINGS)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_config(database_uri: str, **overrides) -> dict:
    config = {
        "SQLALCHEMY_DATABASE_URI": database_uri,
        "SECRET_KEY": "test-secret-key-not-for-production",
        # Every client here comes from 127.0.0.1; the limiter is not under test.
        "RATELIMIT_ENABLED": False,
        "RATELIMIT_STORAGE_URI": "memory://",
        "SCHEDULER_ENABLED": False,
    }
    config.update(overrides)
    return config


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []


class Gunicorn:
    """gunicorn serving the app on the test's database; every server is stopped at the end."""

    def __init__(self, database_uri: str, directory: Path):
        self.database_uri = database_uri
        self.directory = directory
        self.servers: list[Server] = []
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "yishi_test_wsgi.py").write_text(WSGI_ENTRY)

    def start(self, workers: int = 2, args: Iterable[str] = (), **config) -> Server:
        server = self.launch(workers, args, **config)
        self.wait_until_ready(server, workers)
        return server

    def launch(self, workers: int = 2, args: Iterable[str] = (), **config) -> Server:
        """Start a server without waiting for it (several can then boot at once)."""
        port = free_port()
        log = self.directory / f"gunicorn-{len(self.servers) + 1}.log"
        env = dict(os.environ)
        env["YISHI_TEST_APP_CONFIG"] = json.dumps(server_config(self.database_uri, **config))
        env.pop("DATABASE_URL", None)
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(ROOT),
            "--pythonpath",
            str(self.directory),
            "--timeout",
            "30",
            "--graceful-timeout",
            "1",
            # gunicorn 25+: no shared control socket in ~/.gunicorn (servers run in parallel).
            *(["--no-control-socket"] if _has_control_socket() else []),
            *args,
            "yishi_test_wsgi:app",
        ]
        with log.open("ab") as out:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill -9 reaches the workers
            )
        server = Server(process, port, log)
        self.servers.append(server)
        return server

    def wait_until_ready(self, server: Server, workers: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(
                    f"gunicorn exited with {server.process.returncode}:\n{server.log_text()}"
                )
            booted = server.log_text().count("Booting worker with pid")
            if booted >= workers:
                try:
                    if Browser(server.port).get("/healthz").status == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        pytest.fail(f"gunicorn did not start within 30 s:\n{server.log_text()}")

    def kill(self, server: Server) -> None:
        """kill -9 the master and every worker at once (the group of a process we started)."""
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)

    def stop(self, server: Server) -> None:
        if server.process.poll() is None:
            server.process.terminate()
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill(server)
        # Workers whose master died may linger a moment; the group is ours.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for server in self.servers:
            self.stop(server)


@pytest.fixture
def gunicorn(app, database_uri, tmp_path):
    servers = Gunicorn(database_uri, tmp_path / "gunicorn")
    yield servers
    servers.stop_all()


@dataclass
class Reply:
    status: int
    headers: object
    text: str

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


class Browser:
    """A minimal HTTP client with a cookie jar: one connection per request."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form=None, *, keep_cookies=True, timeout=30):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Accept-Language": "en"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form, doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if keep_cookies:
            for header in response.headers.get_all("Set-Cookie") or []:
                jar = SimpleCookie()
                jar.load(header)
                for key, morsel in jar.items():
                    if morsel["max-age"] == "0" or morsel.value == "":
                        self.cookies.pop(key, None)
                    else:
                        self.cookies[key] = morsel.value
        return Reply(response.status, response.headers, data.decode("utf-8", "replace"))

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form, **kwargs) -> Reply:
        return self.request("POST", path, form, **kwargs)

    def token(self, path: str = "/") -> str:
        reply = self.get(path)
        match = _TOKEN.search(reply.text)
        assert match, f"no CSRF token on {path} ({reply.status})"
        return match.group(1)

    def login(self, user) -> Browser:
        token = self.token("/auth/login")
        reply = self.post(
            "/auth/login", {"contact": user.phone, "password": PASSWORD, "csrf_token": token}
        )
        assert reply.status == 302, reply.text[:2000]
        return self


def burst(browser: Browser, path: str, forms: list[dict], *, receipts: bool = False) -> list:
    """POST every form at once (one thread and connection each, behind a barrier). With
    `receipts`, a 303 is followed to the receipt page and the receipt text read from it."""
    barrier = threading.Barrier(len(forms), timeout=30)

    def post(form):
        barrier.wait()
        try:
            reply = browser.post(path, form, keep_cookies=False)
        except OSError as error:
            return error, None
        receipt = None
        if receipts and reply.status == 303:
            try:
                page = browser.get(reply.location, keep_cookies=False)
                match = _RECEIPT_TEXT.search(page.text)
                receipt = json.loads(html.unescape(match.group(1))) if match else None
            except OSError:
                pass
        return reply, receipt

    with ThreadPoolExecutor(len(forms)) as pool:
        return list(pool.map(post, forms))


SCRIPT_PRELUDE = """\
import json, os, sys, time
from datetime import datetime
from pathlib import Path

from app import create_app
from crypto import passwords

config = json.loads(os.environ["YISHI_TEST_APP_CONFIG"])
config["PASSWORD_COST"] = passwords.MINIMAL
app = create_app(config)
"""


def start_script(
    database_uri: str, directory: Path, name: str, body: str, args: Iterable[str] = (), **config
):
    """Start `python <script> <args>` that creates the app on the test's database and runs
    `body` (its last line of output should be a JSON object, read by `finish_script`)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / f"{name}.py"
    script.write_text(SCRIPT_PRELUDE + body)
    env = dict(os.environ)
    env["YISHI_TEST_APP_CONFIG"] = json.dumps(server_config(database_uri, **config))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_script(process: subprocess.Popen, timeout: float = 60) -> dict:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"script failed ({process.returncode}):\n{err[-4000:]}"
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- T01, T02: one voter, many casts


@pytest.mark.parametrize("threads", [2, 8])
def test_concurrent_first_casts_by_one_voter_leave_one_current_ballot(
    app, db, estate, make_round, threads
):
    """T01: the voter's first ballot, cast from several sessions at the same instant."""
    round_ = make_round()
    voter = estate.voters[0]
    choices = ["yes", "no", "abstain"]
    jobs = [cast_job(voter.id, round_.id, {"q1": [choices[i % 3]]}) for i in range(threads)]

    outcomes = race(app, jobs)

    no_errors(outcomes)
    assert kinds(outcomes) == ["ok"] * threads, outcomes  # re-voting is allowed: all recorded
    ballots = ballots_of(round_.id)
    assert sorted(b.id for b in ballots) == sorted(o.value.ballot_id for o in outcomes)
    current = [b for b in ballots if b.is_current]
    assert len(current) == 1, "exactly one current ballot"
    assert current[0].board_n == max(b.board_n for b in ballots), "the last ballot counts"
    # One custodial credential, registered once and reused by every later ballot.
    assert len(entries_of(round_.id, "credential")) == 1
    assert len({b.credential_id for b in ballots}) == 1
    report = board_report(round_.id, [json.loads(o.value.receipt) for o in outcomes])
    assert report.ok, report.problems
    last = next(o.value for o in outcomes if o.value.ballot_id == current[0].id)
    assert close(db, round_)
    counts = round_.result_data["questions"][0]["counts"]
    assert counts == {c: int(c == last.answers["q1"][0]) for c in choices}


@pytest.mark.parametrize("signing", ["custodial", "browser"])
def test_concurrent_re_votes_leave_one_current_ballot_and_one_live_credential(
    app, db, estate, make_round, cast, signing
):
    """T02: voters who already voted re-vote from several sessions at once (with the
    server's custodial key, or each time with a fresh key of their own browser)."""
    from ballots import services
    from ballots.models import Credential

    round_ = make_round()
    first, second = estate.voters[0], estate.voters[1]
    cast(first, round_, {"q1": ["no"]})
    cast(second, round_, {"q1": ["no"]})
    jobs = []
    for i in range(6):
        user = first if i % 2 == 0 else second
        answers = {"q1": ["yes" if i < 4 else "abstain"]}
        nonce = services.new_nonce()
        extra = browser_signed(round_, answers, nonce) if signing == "browser" else {}
        jobs.append(cast_job(user.id, round_.id, answers, nonce=nonce, **extra))

    outcomes = race(app, jobs)

    no_errors(outcomes)
    assert kinds(outcomes) == ["ok"] * 6, outcomes
    board_answers = {
        e.n: json.loads(e.payload)["ballot"]["answers"] for e in entries_of(round_.id, "ballot")
    }
    expected = {"yes": 0, "no": 0, "abstain": 0}
    for user in (first, second):
        voter_id = voter_id_of(user, round_)
        ballots = ballots_of(round_.id, voter_id)
        assert len(ballots) == 4
        current = [b for b in ballots if b.is_current]
        assert len(current) == 1
        assert current[0].board_n == max(b.board_n for b in ballots)
        live = (
            fresh()
            .scalars(
                select(Credential).where(
                    Credential.voter_id == voter_id, Credential.revoked.is_(False)
                )
            )
            .all()
        )
        assert len(live) == 1
        assert live[0].id == current[0].credential_id
        expected[board_answers[current[0].board_n]["q1"][0]] += 1
    report = board_report(round_.id)
    assert report.ok, report.problems
    assert close(db, round_)
    assert round_.result_data["questions"][0]["counts"] == expected
    assert round_.result_data["counted"] == 2


# ---------------------------------------------------------------- T03: the database's own guard


def _is_unique_violation(error: IntegrityError, index: str, columns: str) -> bool:
    text = str(error.orig)
    return index in text or f"UNIQUE constraint failed: {columns}" in text


def test_the_database_refuses_a_second_current_ballot_and_a_second_live_credential(
    db, estate, make_round, cast
):
    """T03: with the application's checks bypassed (rows written directly), the partial
    unique indexes uq_ballots_current and uq_round_credentials_live still refuse them."""
    from ballots import services
    from ballots.models import Ballot, Credential
    from crypto import board
    from web.database import write_intent

    round_ = make_round()
    ballot = cast(estate.voters[0], round_, {"q1": ["yes"]})
    credential = db.session.get(Credential, ballot.credential_id)
    columns = {c.key: getattr(ballot, c.key) for c in Ballot.__table__.columns if c.key != "id"}
    token = write_intent.set(True)
    try:
        fresh()
        with pytest.raises(IntegrityError) as refused:
            db.session.execute(
                insert(Ballot).values(
                    dict(columns, nonce=services.new_nonce(), board_n=ballot.board_n + 100)
                )
            )
        assert _is_unique_violation(
            refused.value, "uq_ballots_current", "ballots.round_id, ballots.voter_id"
        )
        db.session.rollback()
        # The index is partial: a superseded (not current) ballot of the same voter is fine.
        db.session.execute(
            insert(Ballot).values(
                dict(
                    columns,
                    nonce=services.new_nonce(),
                    board_n=ballot.board_n + 100,
                    is_current=False,
                )
            )
        )
        db.session.rollback()

        live = {
            "round_id": round_.id,
            "voter_id": credential.voter_id,
            "public_key": board.public_key(board.new_seed()),
            "seed": None,
            "custodial": False,
            "board_n": credential.board_n + 100,
        }
        with pytest.raises(IntegrityError) as refused:
            db.session.execute(insert(Credential).values(dict(live, revoked=False)))
        assert _is_unique_violation(
            refused.value, "uq_round_credentials_live", "round_credentials.voter_id"
        )
        db.session.rollback()
        db.session.execute(insert(Credential).values(dict(live, revoked=True)))
        db.session.rollback()
    finally:
        write_intent.reset(token)
    assert row_counts()["ballots"] == 1
    assert len(ballots_of(round_.id)) == 1


def test_a_duplicate_the_database_refuses_is_a_409_not_a_500(
    db, estate, make_round, login_as, monkeypatch
):
    """T03 over HTTP: when the application's own duplicate check is bypassed, the database
    refuses the duplicate, and the voter gets a clear 409 (RELIABILITY: "the loser gets
    IntegrityError, which must become a 409, never a 500"), with nothing written."""
    from ballots import services

    round_ = live_round(make_round)
    client = login_as(estate.voters[0])
    token = csrf_token(client, f"/r/{round_.id}/vote")
    form = {"csrf_token": token, "nonce": services.new_nonce(), "a_q1": "yes"}
    assert client.post(f"/r/{round_.id}/cast", data=form).status_code == 303
    before = row_counts()
    # The idempotency check skipped: the same nonce again reaches the unique index.
    monkeypatch.setattr(services, "_same_nonce", lambda *args: None)
    again = client.post(f"/r/{round_.id}/cast", data=form)
    assert again.status_code != 500, "IntegrityError became a 500"
    assert again.status_code == 409
    assert row_counts() == before


def test_a_cast_that_fails_after_writing_its_credential_leaves_nothing_for_the_next(
    db, estate, make_round, cast, monkeypatch
):
    """A cast that fails after its credential row was written (here: signing the receipt)
    is rolled back whole; the next casts in the same session, which may be given the same
    row ids again (SQLite reuses them), are written and counted, and the board verifies."""
    from ballots import services
    from crypto import writer

    round_ = make_round()
    before = row_counts()
    original = writer.receipt

    def failing(*args, **kwargs):
        raise RuntimeError("the receipt could not be signed")

    monkeypatch.setattr(writer, "receipt", failing)
    with pytest.raises(RuntimeError) as failed:
        cast(estate.voters[0], round_, {"q1": ["yes"]})
    db.session.rollback()
    assert row_counts() == before
    # The error's traceback keeps the failed cast's objects alive, as a logged or
    # reported error does.
    assert failed.traceback
    monkeypatch.setattr(writer, "receipt", original)

    first = cast(estate.voters[0], round_, {"q1": ["yes"]})
    second = cast(estate.voters[1], round_, {"q1": ["no"]})
    again = cast(estate.voters[0], round_, {"q1": ["abstain"]})
    assert len({first.id, second.id, again.id}) == 3
    assert first.credential_id == again.credential_id != second.credential_id
    assert row_counts()["ballots"] == before["ballots"] + 3
    assert services.my_receipt(estate.voters[0], round_, again.id).receipt == again.receipt
    report = board_report(round_.id, [json.loads(b.receipt) for b in (first, second, again)])
    assert report.ok, report.problems
    del failed


# ---------------------------------------------------------------- T05: the same cast twice


def test_the_same_cast_twice_gives_one_ballot_and_the_same_receipt(
    app, db, estate, make_round, cast
):
    """T05 at the service: a retry (sequential) and a double click (four at once)."""
    from ballots import services
    from web.errors import Conflict

    round_ = make_round()
    voter = estate.voters[0]
    nonce = services.new_nonce()
    first = cast(voter, round_, {"q1": ["yes"]}, nonce=nonce)
    receipt = first.receipt
    retry = cast(voter, round_, {"q1": ["yes"]}, nonce=nonce.upper())
    assert (retry.id, retry.receipt) == (first.id, receipt)

    clicked = services.new_nonce()
    outcomes = race(app, [cast_job(voter.id, round_.id, {"q1": ["no"]}, nonce=clicked)] * 4)
    no_errors(outcomes)
    assert kinds(outcomes) == ["ok"] * 4
    assert len({(o.value.ballot_id, o.value.receipt) for o in outcomes}) == 1
    ballots = ballots_of(round_.id)
    assert len(ballots) == 2
    assert [b.is_current for b in ballots] == [False, True]

    # The same form used by another voter is refused, not attributed to them.
    with pytest.raises(Conflict):
        cast(estate.voters[1], round_, {"q1": ["no"]}, nonce=clicked)
    db.session.rollback()
    assert len(ballots_of(round_.id)) == 2
    report = board_report(round_.id)
    assert report.ok, report.problems


def test_the_same_post_twice_gives_the_same_receipt_page(db, estate, make_round, login_as):
    """T05 over HTTP (in-process): the second POST redirects to the first receipt."""
    from ballots import services

    round_ = live_round(make_round)
    client = login_as(estate.voters[0])
    token = csrf_token(client, f"/r/{round_.id}/vote")
    form = {"csrf_token": token, "nonce": services.new_nonce(), "a_q1": "abstain"}
    first = client.post(f"/r/{round_.id}/cast", data=form)
    second = client.post(f"/r/{round_.id}/cast", data=form)
    assert (first.status_code, second.status_code) == (303, 303)
    assert first.headers["Location"] == second.headers["Location"]
    [ballot] = ballots_of(round_.id)
    page = client.get(second.headers["Location"]).get_data(as_text=True)
    shown = json.loads(html.unescape(_RECEIPT_TEXT.search(page).group(1)))
    assert shown == json.loads(ballot.receipt)


@pytest.mark.xdist_group("servers")
def test_twenty_http_casts_by_one_voter_through_two_gunicorn_workers(
    db, estate, make_round, gunicorn
):
    """T01 and T05 through a real server with two worker processes: 20 POSTs of one voter
    at once (different nonces), then the same POST five times at once."""
    from ballots import services

    round_ = live_round(make_round, [yes_no(), approval()])
    server = gunicorn.start(workers=2)
    assert len(server.worker_pids()) == 2
    browser = Browser(server.port).login(estate.voters[0])
    token = browser.token(f"/r/{round_.id}/vote")
    path = f"/r/{round_.id}/cast"
    choices = ["yes", "no", "abstain"]
    forms = [
        {
            "csrf_token": token,
            "nonce": services.new_nonce(),
            "a_q1": choices[i % 3],
            "a_q2": ["o1", f"o{2 + i % 3}"],
        }
        for i in range(20)
    ]

    results = burst(browser, path, forms, receipts=True)

    statuses = [reply.status if isinstance(reply, Reply) else repr(reply) for reply, _ in results]
    assert set(statuses) <= {303, 409, 503}, statuses
    accepted = [(reply, receipt) for reply, receipt in results if reply.status == 303]
    assert accepted, statuses
    accepted_ids = {int(RECEIPT_PATH.search(reply.location).group(2)) for reply, _ in accepted}
    assert len(accepted_ids) == len(accepted), "each nonce got its own ballot"
    ballots = ballots_of(round_.id)
    assert {b.id for b in ballots} == accepted_ids, "every 303, and only those, is a ballot"
    assert [b.is_current for b in ballots].count(True) == 1
    assert ballots[-1].is_current, "the last ballot on the board is the current one"
    receipts = [receipt for _, receipt in accepted]
    assert all(receipts), "every receipt page shows its receipt"
    report = board_report(round_.id, receipts)
    assert report.ok, report.problems

    same = dict(forms[0], nonce=services.new_nonce(), a_q1="yes")
    again = burst(browser, path, [same] * 5)
    assert [reply.status for reply, _ in again] == [303] * 5, [r for r, _ in again]
    assert len({reply.location for reply, _ in again}) == 1, "one receipt for one POST"
    assert len(ballots_of(round_.id)) == len(ballots) + 1
    current = [b for b in ballots_of(round_.id) if b.is_current]
    assert len(current) == 1 and current[0].nonce == same["nonce"]
    assert "Traceback" not in server.log_text()


# ---------------------------------------------------------------- T06: around the close


def test_casts_just_before_at_and_after_the_close_with_the_scheduler_off(
    db, estate, make_round, cast
):
    """T06: accepted at close − 1 ms; refused at the close and 1 s after, although no job
    ran and the round's status still says open."""
    from ballots.services import RoundClosed

    round_ = make_round()
    ballot = cast(estate.voters[0], round_, {"q1": ["yes"]}, now=T1 - timedelta(milliseconds=1))
    assert ballot.is_current
    before = row_counts()
    for moment in (T1, T1 + timedelta(seconds=1)):
        for voter in (estate.voters[0], estate.voters[1]):  # a re-vote and a first ballot
            with pytest.raises(RoundClosed):
                cast(voter, round_, {"q1": ["no"]}, now=moment)
            db.session.rollback()
    assert row_counts() == before
    db.session.refresh(round_)
    assert round_.status == "open" and round_.closed_at is None
    assert [b.id for b in ballots_of(round_.id) if b.is_current] == [ballot.id]


def test_http_casts_just_before_at_and_after_the_close(db, estate, make_round, login_as):
    """T06 over HTTP: 303 at close − 1 ms, 409 at the close and 1 s after."""
    from ballots import services

    round_ = make_round()
    statuses = []
    for moment in (T1 - timedelta(milliseconds=1), T1, T1 + timedelta(seconds=1)):
        with time_machine.travel(moment, tick=False):
            client = login_as(estate.voters[0])
            token = csrf_token(client, "/")
            form = {"csrf_token": token, "nonce": services.new_nonce(), "a_q1": "yes"}
            statuses.append(client.post(f"/r/{round_.id}/cast", data=form).status_code)
    assert statuses == [303, 409, 409]
    assert len(ballots_of(round_.id)) == 1


# ---------------------------------------------------------------- T07: casts racing the close


def test_twenty_casts_racing_the_close_are_all_counted_or_refused(
    app, db, estate, make_round, make_member
):
    """T07: 20 voters cast at closes_at − a few ms while the close job runs at closes_at.
    Every accepted ballot is in the tally, every other one got RoundClosed, and no ballot
    is on the board after the close entry."""
    import random

    from ballots.services import RoundClosed
    from web.scheduler import find_sweep, run_sweep

    extra = [make_member(estate.community, role="owner", area=Decimal("50.00")) for _ in range(15)]
    voters = [estate.committee, *estate.voters, *extra]
    round_ = make_round()
    choices = ["yes", "no", "abstain"]
    jobs = [
        cast_job(
            user.id,
            round_.id,
            {"q1": [choices[i % 3]]},
            now=T1 - timedelta(milliseconds=random.randint(1, 50)),
        )
        for i, user in enumerate(voters)
    ]

    def closer(arrive):
        arrive()
        return run_sweep(app, find_sweep("close_rounds"), T1)

    outcomes = race(app, [*jobs, closer])

    no_errors(outcomes)
    assert outcomes[-1].value == 1, "the close ran once"
    casts = outcomes[:-1]
    assert all(o.kind == "ok" or isinstance(o.value, RoundClosed) for o in casts), casts
    accepted = [o.value for o in casts if o.kind == "ok"]
    fresh().refresh(round_)
    assert round_.status == "closed" and round_.closed_at == T1
    statement = round_.result_data
    assert statement["counted"] == len(accepted)
    expected = {c: sum(a.answers["q1"] == [c] for a in accepted) for c in choices}
    assert statement["questions"][0]["counts"] == expected
    [close_entry] = entries_of(round_.id, "close")
    ballot_entries = entries_of(round_.id, "ballot")
    assert sorted(e.n for e in ballot_entries) == sorted(a.board_n for a in accepted)
    assert all(e.n < close_entry.n for e in ballot_entries), "nothing after the close"
    assert json.loads(close_entry.payload)["ballots"] == len(accepted)
    assert len(ballots_of(round_.id)) == len(accepted)
    report = board_report(round_.id, [json.loads(a.receipt) for a in accepted])
    assert report.ok, report.problems


# ---------------------------------------------------------------- T08: ineligible voters

INELIGIBLE = {
    # case: the HTTP status (the service raises NotEligible in every case)
    "member of another community": 404,  # cannot even read the round
    "member of a building inside the compound": 403,  # may read, not vote
    "removed after the round opened": 404,
    "left after the round opened": 404,
    "pending verification": 404,
    "suspended": 403,
    "moderator without a unit": 403,
    "joined after the round opened": 403,
    "resident without area in an owners' round": 403,
}


@pytest.mark.parametrize("case", list(INELIGIBLE))
def test_ineligible_voters_are_refused_and_nothing_is_written(
    db, estate, make_round, make_member, make_community, login_as, case, caplog
):
    """T08: NotEligible from the service, logged once as a refused ballot (T47), 403 (404
    when the round is not even readable) over HTTP, and no row in ballots, board_entries
    or round_credentials."""
    from ballots import services
    from community.models import Membership, utcnow

    def membership(user):
        return db.session.scalar(
            select(Membership).where(
                Membership.user_id == user.id, Membership.community_id == estate.community.id
            )
        )

    electorate = "residents"
    user = None
    if case == "member of another community":
        user = make_member(make_community("Moon Garden"))
    elif case == "member of a building inside the compound":
        building = make_community("Building 7", kind="building", parent=estate.community)
        user = make_member(building)
    elif case in ("removed after the round opened", "left after the round opened"):
        user = make_member(estate.community)
    elif case == "pending verification":
        user = make_member(estate.community, status="pending")
    elif case == "suspended":
        user = make_member(estate.community)
        membership(user).suspended_until = utcnow() + timedelta(days=30)
        db.session.commit()
    elif case == "moderator without a unit":
        user = make_member(estate.community, role="moderator")
    elif case == "resident without area in an owners' round":
        electorate = "owners"
        user = make_member(estate.community, role="resident")
    round_ = live_round(make_round, electorate=electorate)
    if case == "removed after the round opened":
        membership(user).status = "rejected"
        db.session.commit()
    elif case == "left after the round opened":
        db.session.delete(membership(user))
        db.session.commit()
    elif case == "joined after the round opened":
        user = make_member(estate.community)
    before = row_counts()

    caplog.set_level(logging.INFO, logger="yishi.security")
    caplog.clear()
    with pytest.raises(services.NotEligible):
        services.cast_ballot(user, round_, {"q1": ["yes"]}, services.new_nonce())
    assert row_counts() == before
    refusals = [r.getMessage() for r in caplog.records if "ballot_refused" in r.getMessage()]
    assert len(refusals) == 1 and '"reason": "not eligible"' in refusals[0], refusals

    client = login_as(user)
    token = csrf_token(client, "/")
    form = {"csrf_token": token, "nonce": services.new_nonce(), "a_q1": "yes"}
    assert client.post(f"/r/{round_.id}/cast", data=form).status_code == INELIGIBLE[case]
    assert client.get(f"/r/{round_.id}/vote").status_code == INELIGIBLE[case]
    assert row_counts() == before
    # The eligible still vote in the same round.
    voter = login_as(estate.voters[0])
    token = csrf_token(voter, "/")
    form = {"csrf_token": token, "nonce": services.new_nonce(), "a_q1": "yes"}
    assert voter.post(f"/r/{round_.id}/cast", data=form).status_code == 303


# ---------------------------------------------------------------- T09: malformed ballots

HEX = "0123456789abcdef"
FIELD_NAMES = [
    "a_q1",
    "a_q2",
    "a_q3",
    "a_",
    "a_q10",
    "a_Q1",
    "nonce",
    "credential",
    "signature",
    "step",
    "status",
    "voter_id",
    "round_id",
    "is_current",
]
junk = st.text(max_size=24)
hex_text = st.text(alphabet=HEX + "ABCDEF", min_size=0, max_size=140)
valid_nonce = st.text(alphabet=HEX, min_size=32, max_size=32)
# Each strategy is about half the time valid, so that valid ballots come up often too.
nonces = st.one_of(
    valid_nonce,
    valid_nonce.map(lambda s: f"  {s.upper()}\t"),  # the service strips and lower-cases
    st.sampled_from(["0" * 32, "f" * 32]),  # the same nonce again: the earlier ballot
    st.none(),
    hex_text,
    junk,
)
q1_values = st.one_of(
    st.sampled_from(["yes", "no", "abstain"]).map(lambda choice: [choice]),
    st.lists(st.one_of(st.sampled_from(["yes", "no", "abstain"]), junk), max_size=3),
)
q2_values = st.one_of(
    st.lists(st.sampled_from(["o1", "o2", "o3", "o4"]), max_size=2, unique=True),
    st.lists(st.one_of(st.sampled_from(["o1", "o2", "o3", "o4", "o5"]), junk), max_size=5),
)
keys = st.one_of(
    st.none(),
    st.none(),
    st.text(alphabet=HEX, min_size=64, max_size=64),
    st.text(alphabet=HEX, min_size=128, max_size=128),
    hex_text,
    junk,
)
extras = st.one_of(
    st.just([]),
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(FIELD_NAMES), st.text(min_size=1, max_size=12)).filter(
                lambda name: name != "csrf_token"
            ),
            junk,
        ),
        max_size=4,
    ),
)


def _forbidden(value: str) -> bool:
    return "\x00" in value or "\ufffd" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def _hex(value: str, length: int) -> str | None:
    """The value as the service reads it (stripped, lower case), if it is `length` hex."""
    value = value.strip().lower()
    return value if len(value) == length and all(c in HEX for c in value) else None


def _valid_nonce(value: str) -> bool:
    return _hex(value, 32) is not None


def expected_outcome(
    fields: list[tuple[str, str]], used: dict[str, dict]
) -> tuple[str, dict | None]:
    """What the cast view should do with these fields, the nonces in `used` having been
    cast before (with those answers): ("new", the answers) for a new ballot, ("again", None)
    for the same ballot again (a retry), ("refused", None) for a 4xx — also for a used
    nonce with other answers or a key, so that new answers are never silently dropped."""

    def first(name: str) -> str:
        return next((value for key, value in fields if key == name), "")

    refused = ("refused", None)
    if any(_forbidden(key) or _forbidden(value) for key, value in fields):
        return refused
    q1 = sorted({value for key, value in fields if key == "a_q1"})
    q2 = sorted({value for key, value in fields if key == "a_q2"})
    if len(q1) != 1 or q1[0] not in ("yes", "no", "abstain"):
        return refused
    if not set(q2) <= {"o1", "o2", "o3", "o4"} or len(q2) > 2:
        return refused
    nonce = _hex(first("nonce"), 32)
    if nonce is None:
        return refused
    signed = bool(first("credential") or first("signature"))
    if signed and (_hex(first("credential"), 64) is None or _hex(first("signature"), 128) is None):
        return refused  # not even the form of a key and a signature
    if nonce in used:
        same = not signed and used[nonce] == {"q1": q1, "q2": q2}
        return ("again", None) if same else refused
    if signed:
        return refused  # a signature nobody made does not verify
    return ("new", {"q1": q1, "q2": q2})


def test_malformed_ballots_get_a_4xx_and_write_nothing(db, estate, make_round, login_as):
    """T09: random field names and values for the answers, nonces, keys and signatures:
    always 303, 400, 409 or 422, never 5xx. A 303 and one new ballot for a valid ballot
    with a new nonce, a 303 to the earlier ballot and nothing written for a nonce used
    before (a retry), otherwise a 4xx and nothing written."""
    from ballots.models import Ballot, BoardEntry

    round_ = live_round(make_round, [yes_no(), approval()])
    client = login_as(estate.voters[0])
    token = csrf_token(client, f"/r/{round_.id}/vote")
    seen = {"new": 0, "again": 0, "refused": 0}

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(nonce=nonces, q1=q1_values, q2=q2_values, credential=keys, signature=keys, extra=extras)
    @example(nonce="a" * 32, q1=["yes"], q2=["o1", "o3"], credential=None, signature=None, extra=[])
    @example(nonce="A" * 32, q1=["no"], q2=[], credential=None, signature=None, extra=[])
    @example(nonce="b" * 32, q1=["yes"], q2=[], credential="", signature="", extra=[("x", "y")])
    @example(nonce="c" * 31, q1=["yes"], q2=[], credential=None, signature=None, extra=[])
    @example(nonce="d" * 32, q1=["yes"], q2=[], credential="0" * 64, signature="0" * 128, extra=[])
    def check(nonce, q1, q2, credential, signature, extra):
        fields = [("a_q1", v) for v in q1] + [("a_q2", v) for v in q2]
        for name, value in (("nonce", nonce), ("credential", credential), ("signature", signature)):
            if value is not None:
                fields.append((name, value))
        fields += extra
        used = {
            nonce: json.loads(payload)["ballot"]["answers"]
            for nonce, payload in fresh().execute(
                select(Ballot.nonce, BoardEntry.payload)
                .join(
                    BoardEntry,
                    (BoardEntry.round_id == Ballot.round_id) & (BoardEntry.n == Ballot.board_n),
                )
                .where(Ballot.round_id == round_.id)
            )
        }
        expected, answers = expected_outcome(fields, used)
        before = row_counts()

        response = client.post(
            f"/r/{round_.id}/cast", data=MultiDict([("csrf_token", token), *fields])
        )

        assert response.status_code in (303, 400, 409, 422), (response.status_code, fields)
        after = row_counts()
        seen[expected] += 1
        if expected == "refused":
            assert response.status_code != 303, fields
            assert after == before, fields
            return
        assert response.status_code == 303, (fields, response.get_data(as_text=True)[-800:])
        ballot_id = int(RECEIPT_PATH.search(response.headers["Location"]).group(2))
        ballot = db.session.get(Ballot, ballot_id)
        nonce_sent = next(value for key, value in fields if key == "nonce")
        assert ballot.nonce == _hex(nonce_sent, 32), "the receipt of another ballot"
        if expected == "again":
            assert after == before, fields
            return
        assert after["ballots"] == before["ballots"] + 1
        entry = db.session.scalar(
            select(BoardEntry).where(
                BoardEntry.round_id == round_.id, BoardEntry.n == ballot.board_n
            )
        )
        assert json.loads(entry.payload)["ballot"]["answers"] == answers

    check()
    assert seen["new"] >= 3 and seen["refused"] >= 3, seen
    report = board_report(round_.id)
    assert report.ok, report.problems


@pytest.mark.parametrize(
    "body",
    [
        b"a_q1=%FF&nonce={nonce}",  # invalid UTF-8
        b"a_q1=yes&nonce=%C0%AF{nonce}",  # an overlong encoding
        b"a_q1=%ED%A0%80&nonce={nonce}",  # a UTF-16 surrogate
        b"a_q1=yes%00&nonce={nonce}",  # NUL
        b"a_q1=yes&nonce={nonce}%00",
        b"a_q1=yes&a_q2=%EF%BF%BD&nonce={nonce}",  # U+FFFD
        b"a_q1=yes&nonce={nonce}&credential=" + b"0" * 64 + b"&signature=" + b"0" * 128,
        b"a_q1=yes&nonce={nonce}&credential=zz&signature=",
        b"a_q1=yes&a_q1=no&nonce={nonce}",
        b"a_q1=maybe&nonce={nonce}",
        b"a_q1=yes&a_q2=o1&a_q2=o2&a_q2=o3&nonce={nonce}",
        b"a_q1=yes&nonce=" + b"g" * 32,
        b"a_q1=yes",
        b"",
    ],
)
def test_raw_malformed_bodies_get_400_and_write_nothing(db, estate, make_round, login_as, body):
    """T09 with bytes no form library would send."""
    from ballots import services

    round_ = live_round(make_round, [yes_no(), approval()])
    client = login_as(estate.voters[0])
    token = csrf_token(client, f"/r/{round_.id}/vote").encode()
    raw = b"csrf_token=" + token + b"&" + body.replace(b"{nonce}", services.new_nonce().encode())
    before = row_counts()
    response = client.post(
        f"/r/{round_.id}/cast", data=raw, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400, response.get_data(as_text=True)[-500:]
    assert row_counts() == before


def test_helpers_agree_with_the_services_about_valid_nonces():
    """The fuzz oracle's idea of a valid nonce is the service's."""
    from ballots.services import _hex_or_error
    from web.errors import InvalidInput

    samples = ["a" * 32, " " + "A" * 32 + "\n", "a" * 31, "g" * 32, "\u00e9" * 32, ""]
    samples += ["\u00a0" + "b" * 32, "\u212a" * 32]
    samples += ["".join(string.hexdigits[i % 22] for i in range(32))]
    for sample in samples:
        try:
            _hex_or_error(sample, 32, "bad")
            accepted = True
        except InvalidInput:
            accepted = False
        assert accepted == _valid_nonce(sample), sample
