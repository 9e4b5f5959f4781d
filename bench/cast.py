"""How many ballots a small server takes per second, over HTTP, through gunicorn.

`python -m bench.cast` builds a separate database by running the migrations, seeds one
compound with a committee member and --voters verified residents (SQLAlchemy Core bulk
inserts, one password hash for all), creates and opens a round through the services (a
yes/no/abstain question and an approval question, up to 2 of 4), and starts gunicorn on
127.0.0.1 with `bench.wsgi:app` and gunicorn's sync workers, as `make serve-prod` runs it
(on 2 cores, gthread workers with 4 threads took about half as many ballots per second).
Then --clients threads, each with one connection (`http.client`; sync workers close it
after every answer, gthread workers keep it alive) and one cookie jar per voter:

1. log every voter in through the real login form (not timed);
2. `healthz`: --healthz-requests GET /healthz in all, split over the clients;
3. `cast`: every voter opens the ballot page (GET /r/<id>/vote, for the CSRF token of the
   voter's session) and casts one ballot (POST /r/<id>/cast, a fresh random nonce), and
   expects 303 to the receipt. Latency percentiles are of the POSTs only; ballots_per_s is
   the 303s divided by the wall time of the whole phase (the GETs included).

The question and review screens between the two (POST /r/<id>/vote) only render pages
and are skipped. Afterwards, in-process against the database: the current ballots must
equal the 303s, with no errors; then the round is closed with `services.close_round` at
its closing time, the counted ballots checked, and the published board given to the
standalone verifier (`python -m crypto.verify board.json`). gunicorn is stopped in any
case. The machine's CPUs are shared by the server, the database and the clients: the
figures are for all of them on one box.

Progress goes to stderr; the last line of stdout is one JSON object with the figures.

    python -m bench.cast                        # 5,000 voters, SQLite file in a temp dir
    python -m bench.cast --voters 200 --clients 8
    python -m bench.cast --database-url postgresql+psycopg://postgres@127.0.0.1:5432/yishi_bench_cast
    python -m bench.cast --worker-class gthread --threads 4

A PostgreSQL database named in --database-url is dropped and created again, so its name
must contain "bench". Goals: at least 500 ballots/s, and p99 under 250 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench import machine_speed
from bench.close import seed_voters, verify
from bench.pages import (
    PASSWORD,
    _sqlalchemy_url,
    build_app,
    drop_postgres,
    instance_directory,
    percentile,
    progress,
    recreate_postgres,
)

GOAL_BALLOTS_PER_S = 500.0
GOAL_P99_MS = 250.0
HOST = "127.0.0.1"
BENCH_SECRET_KEY = "bench-secret-key-not-for-production"  # noqa: S105  (as in bench.wsgi)
ROOT = Path(__file__).resolve().parent.parent
_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_RECEIPT = re.compile(r"^/r/(\d+)/receipts/(\d+)$")


# ---------------------------------------------------------------- the round


def create_and_open_round(community_id: int, committee_id: int, now: datetime) -> int:
    from ballots import services
    from community.models import Community, User
    from web.extensions import db

    draft = services.RoundDraft(
        title="北门改造方案表决",
        opens_at=now,
        closes_at=now + timedelta(days=3),
        questions=[
            services.QuestionDraft(title="是否同意北门改造方案？"),
            services.QuestionDraft(
                title="改造内容（最多选两项）",
                method="approval",
                options=["门禁闸机", "非机动车棚", "快递柜", "绿化"],
                max_choices=2,
            ),
        ],
    )
    actor = db.session.get(User, committee_id)
    round_ = services.create_round(actor, db.session.get(Community, community_id), draft, now)
    db.session.commit()
    if not services.open_round(round_.id, now):
        raise RuntimeError("the round did not open")
    db.session.commit()
    return round_.id


def ballot_fields(rng: random.Random) -> list[tuple[str, str]]:
    fields = [("a_q1", rng.choices(["yes", "no", "abstain"], weights=[6, 3, 1])[0])]
    for option in sorted(rng.sample(["o1", "o2", "o3", "o4"], rng.choice([0, 1, 2, 2]))):
        fields.append(("a_q2", option))
    return fields


# ---------------------------------------------------------------- gunicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Server:
    """gunicorn serving bench.wsgi:app on a free loopback port; its log in a file.

    `name` names the log file (several servers in one scratch folder), `args` are more
    gunicorn options, `env` more environment (over the benchmark's own)."""

    def __init__(
        self,
        url: str,
        scratch: Path,
        workers: int,
        worker_class: str,
        threads: int,
        *,
        name: str = "gunicorn",
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ):
        self.port = free_port()
        self.log_path = scratch / f"{name}.log"
        gunicorn = Path(sys.executable).parent / "gunicorn"
        command = [
            str(gunicorn),
            "--workers",
            str(workers),
            "--bind",
            f"{HOST}:{self.port}",
            "--worker-class",
            worker_class,
            "--log-level",
            "warning",
        ]
        if worker_class == "gthread":
            command += ["--threads", str(threads)]
        command += [*args, "bench.wsgi:app"]
        environment = dict(
            os.environ,
            DATABASE_URL=url,
            SECRET_KEY=BENCH_SECRET_KEY,
            YISHI_INSTANCE_PATH=str(scratch / "instance"),
            YISHI_SCHEDULER="off",
        )
        environment.update(env or {})
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603  (our own virtualenv's gunicorn)
            command, cwd=ROOT, env=environment, stdout=self.log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.process.returncode}):\n{self.tail()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                response.read()
                conn.close()
                if response.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz in {seconds} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        if not self.log.closed:
            self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def worker_pids(self) -> list[int]:
        """The master's children now (Linux /proc)."""
        master = self.process.pid
        children = Path(f"/proc/{master}/task/{master}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def cpu_seconds(self) -> float:
        """User and system CPU time of the workers so far (Linux /proc): a figure that
        other load on the machine does not change much."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:  # ppid: a worker of this master
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # gunicorn's graceful shutdown of its workers
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# ---------------------------------------------------------------- HTTP clients


class Connection:
    """One keep-alive connection of a client thread. A request on a connection that the
    server closed meanwhile (idle keep-alive) is sent once more on a fresh one: the cast
    is idempotent by its nonce, the other requests are reads or a login."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self.reconnects = 0

    def request(self, method: str, path: str, cookies: dict, body: str | None = None):
        headers = {"Host": f"{HOST}:{self.port}"}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                self.conn.close()
                if attempt == 2:
                    raise
                self.reconnects += 1
        for header in response.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel.value == "" or morsel["max-age"] == "0":
                    cookies.pop(name, None)
                else:
                    cookies[name] = morsel.value
        return response.status, response.headers, data

    def close(self) -> None:
        self.conn.close()


@dataclass
class Voter:
    phone: str
    cookies: dict = field(default_factory=dict)


@dataclass
class Outcome:
    post_ms: list[float] = field(default_factory=list)
    get_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    receipts: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    reconnects: int = 0

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


def _token(body: bytes, what: str) -> str:
    match = _TOKEN.search(body.decode("utf-8", "replace"))
    if not match:
        raise RuntimeError(f"no CSRF token on {what}")
    return match.group(1)


def log_in(conn: Connection, voter: Voter) -> None:
    status, _headers, body = conn.request("GET", "/auth/login", voter.cookies)
    if status != 200:
        raise RuntimeError(f"GET /auth/login answered {status}")
    form = {"contact": voter.phone, "password": PASSWORD, "csrf_token": _token(body, "login")}
    status, _headers, body = conn.request("POST", "/auth/login", voter.cookies, urlencode(form))
    if status != 302:
        raise RuntimeError(f"login of {voter.phone} answered {status}")


def vote(conn: Connection, voter: Voter, round_id: int, rng, out: Outcome) -> None:
    started = time.perf_counter()
    status, _headers, body = conn.request("GET", f"/r/{round_id}/vote", voter.cookies)
    out.get_ms.append((time.perf_counter() - started) * 1000)
    if status != 200:
        out.count(status)
        out.errors.append(f"GET vote {status}")
        return
    form = [("csrf_token", _token(body, "the ballot page")), ("nonce", rng.randbytes(16).hex())]
    form += ballot_fields(rng)
    started = time.perf_counter()
    status, headers, body = conn.request(
        "POST", f"/r/{round_id}/cast", voter.cookies, urlencode(form)
    )
    out.post_ms.append((time.perf_counter() - started) * 1000)
    out.count(status)
    location = (headers.get("Location") or "").split("://", 1)[-1]
    location = location[location.find("/") :] if "/" in location else location
    match = _RECEIPT.match(location)
    if status != 303 or not match or int(match.group(1)) != round_id:
        out.errors.append(f"POST cast {status} {location!r} {body[:200]!r}")
        return
    out.receipts.add(int(match.group(2)))


def run_clients(connections: list[Connection], work, jobs: list) -> tuple[float, list[Outcome]]:
    """`work(conn, job, rng, out)` for every job (until it returns False), from one thread
    per connection (job i goes to thread i mod threads). Returns the wall time and each
    thread's outcome."""
    clients = len(connections)
    shares = [jobs[i::clients] for i in range(clients)]
    outcomes = [Outcome() for _ in range(clients)]
    start = threading.Barrier(clients + 1)

    def thread(index: int) -> None:
        conn, out = connections[index], outcomes[index]
        rng = random.Random(f"{index}-{time.time_ns()}")
        start.wait()
        for job in shares[index]:
            try:
                if work(conn, job, rng, out) is False:
                    break
            except Exception as error:  # noqa: BLE001  (counted, the run goes on)
                out.errors.append(f"{type(error).__name__}: {error}")
        out.reconnects, conn.reconnects = conn.reconnects, 0

    threads = [threading.Thread(target=thread, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - began, outcomes


def merged(outcomes: list[Outcome]) -> Outcome:
    total = Outcome()
    for out in outcomes:
        total.post_ms += out.post_ms
        total.get_ms += out.get_ms
        for status, n in out.statuses.items():
            total.statuses[status] = total.statuses.get(status, 0) + n
        total.receipts |= out.receipts
        total.errors += out.errors
        total.reconnects += out.reconnects
    return total


def _ms(samples: list[float], pct: float) -> float | None:
    return round(percentile(samples, pct), 1) if samples else None


# ---------------------------------------------------------------- the phases


def measure(server: Server, voters: list[Voter], round_id: int, args) -> dict:
    # One connection per client thread, kept across the phases.
    connections = [Connection(server.port) for _ in range(args.clients)]
    try:
        seconds, outcomes = run_clients(
            connections, lambda conn, voter, rng, out: log_in(conn, voter), voters
        )
        logins = merged(outcomes)
        if logins.errors:
            raise RuntimeError(f"{len(logins.errors)} logins failed: {logins.errors[:3]}")
        progress(f"logged in {len(voters)} voters in {seconds:.1f} s (not timed)")

        def healthz(conn: Connection, _job, _rng, out: Outcome) -> None:
            started = time.perf_counter()
            status, _headers, _body = conn.request("GET", "/healthz", {})
            out.get_ms.append((time.perf_counter() - started) * 1000)
            out.count(status)
            if status != 200:
                out.errors.append(f"healthz {status}")

        seconds, outcomes = run_clients(connections, healthz, list(range(args.healthz_requests)))
        health = merged(outcomes)
        healthz_per_s = health.statuses.get(200, 0) / seconds
        progress(
            f"healthz: {args.healthz_requests} requests in {seconds:.2f} s = "
            f"{healthz_per_s:.0f}/s, p50 {_ms(health.get_ms, 50)} ms, "
            f"p99 {_ms(health.get_ms, 99)} ms, errors {len(health.errors)}"
        )

        deadline = time.perf_counter() + args.seconds_limit if args.seconds_limit else None

        def cast(conn: Connection, voter: Voter, rng, out: Outcome):
            if deadline is not None and time.perf_counter() > deadline:
                return False
            vote(conn, voter, round_id, rng, out)
            return None

        load_before = os.getloadavg()[0]
        server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
        seconds, outcomes = run_clients(connections, cast, voters)
        server_cpu = server.cpu_seconds() - server_cpu
        client_cpu = time.process_time() - client_cpu
        load_after = os.getloadavg()[0]
        casting = merged(outcomes)
    finally:
        for conn in connections:
            conn.close()
    ballots = casting.statuses.get(303, 0)
    figures = {
        "ballots": ballots,
        "cast_seconds": round(seconds, 2),
        "ballots_per_s": round(ballots / seconds, 1),
        "p50_ms": _ms(casting.post_ms, 50),
        "p95_ms": _ms(casting.post_ms, 95),
        "p99_ms": _ms(casting.post_ms, 99),
        "max_ms": round(max(casting.post_ms), 1) if casting.post_ms else None,
        "vote_page_p50_ms": _ms(casting.get_ms, 50),
        "vote_page_p99_ms": _ms(casting.get_ms, 99),
        "healthz_per_s": round(healthz_per_s, 1),
        "healthz_p50_ms": _ms(health.get_ms, 50),
        "healthz_p99_ms": _ms(health.get_ms, 99),
        "errors": len(casting.errors) + len(health.errors),
        "statuses": {str(k): v for k, v in sorted(casting.statuses.items())},
        "reconnects": casting.reconnects + health.reconnects,
        # CPU per ballot (its GET and POST) of the gunicorn workers and of the clients;
        # with PostgreSQL, the database server's own CPU comes on top.
        "server_cpu_ms_per_ballot": round(server_cpu * 1000 / ballots, 2) if ballots else None,
        "client_cpu_ms_per_ballot": round(client_cpu * 1000 / ballots, 2) if ballots else None,
        # Other work on the machine shows up in the timings: the 1-minute load average.
        "load_average": [round(load_before, 2), round(load_after, 2)],
    }
    progress(
        f"cast: {ballots} ballots in {seconds:.2f} s = {figures['ballots_per_s']}/s; POST "
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms; "
        f"statuses {figures['statuses']}"
    )
    for error in casting.errors[:5] + health.errors[:5]:
        progress(f"  error: {error}")
    figures["_receipts"] = casting.receipts
    return figures


def check_and_close(round_id: int, figures: dict, scratch: Path, verify_board: bool) -> dict:
    """In-process: the database holds one current ballot per 303, and the close counts
    them all; then the standalone verifier reads the published board."""
    from ballots import services
    from ballots.models import Ballot, Round, Voter
    from web.extensions import db

    db.session.remove()
    current = db.session.scalar(
        select(func.count())
        .select_from(Ballot)
        .where(Ballot.round_id == round_id, Ballot.is_current.is_(True))
    )
    receipts = figures.pop("_receipts")
    voted = db.session.scalar(select(func.count(Voter.voted_at)).where(Voter.round_id == round_id))
    problems = []
    if current != figures["ballots"] or len(receipts) != figures["ballots"] or voted != current:
        problems.append(
            f"{figures['ballots']} ballots answered 303 ({len(receipts)} receipts), but the "
            f"database has {current} current ballots and {voted} voters who voted"
        )
    closes_at = db.session.get(Round, round_id).closes_at
    db.session.remove()
    started = time.perf_counter()
    if not services.close_round(round_id, closes_at):
        raise RuntimeError("close_round did not close the round")
    db.session.commit()
    close_seconds = time.perf_counter() - started
    result = db.session.get(Round, round_id).result_data
    if result["counted"] != current:
        problems.append(f"the close counted {result['counted']} of {current} ballots")
    progress(
        f"database: {current} current ballots; closed in {close_seconds:.2f} s, "
        f"{result['counted']} counted"
    )
    verified = verify(round_id, scratch)[0] if verify_board else "skipped"
    if verified == "failed":
        problems.append("the verifier rejected the board")
    for problem in problems:
        progress(f"PROBLEM: {problem}")
    return {
        "current_ballots": current,
        "counted": result["counted"],
        "close_seconds": round(close_seconds, 2),
        "verify": verified,
        "consistent": not problems,
    }


# ---------------------------------------------------------------- the command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cast", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--voters", type=int, default=5000, help="voters, each one ballot")
    parser.add_argument("--clients", type=int, default=32, help="concurrent client threads")
    parser.add_argument(
        "--database-url",
        help="default: a fresh SQLite file in a temporary directory; a PostgreSQL database "
        'is dropped and created again (its name must contain "bench")',
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument(
        "--worker-class",
        choices=("sync", "gthread"),
        default="sync",
        help="gunicorn worker class (default sync, as `make serve-prod` runs)",
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument(
        "--healthz-requests", type=int, default=5000, help="GET /healthz in all (default 5000)"
    )
    parser.add_argument(
        "--seconds-limit",
        type=float,
        help="stop starting new ballots after this many seconds of casting",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the standalone verifier")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep a PostgreSQL database")
    args = parser.parse_args(argv)
    if args.voters < 1 or args.clients < 1 or args.workers < 1 or args.threads < 1:
        parser.error("--voters, --clients, --workers and --threads must be at least 1")
    if args.healthz_requests < 1:
        parser.error("--healthz-requests must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="yishi-bench-cast-") as scratch_name:
        scratch = Path(scratch_name)
        url = _sqlalchemy_url(args.database_url or f"sqlite:///{scratch / 'bench.db'}")
        engine_name = make_url(url).get_backend_name()
        if engine_name == "postgresql":
            recreate_postgres(url)
        elif engine_name == "sqlite":
            path = make_url(url).database
            if path and Path(path).exists() and Path(path).stat().st_size:
                raise SystemExit(f"{path} exists: the benchmark seeds a fresh database")
        progress(f"database: {make_url(url).render_as_string(hide_password=True)}")
        progress(
            f"voters {args.voters}, clients {args.clients}, gunicorn workers {args.workers} "
            f"({args.worker_class}"
            + (f", {args.threads} threads each" if args.worker_class == "gthread" else "")
            + f"), engine {engine_name}, CPUs {os.cpu_count()}"
        )
        server = None
        try:
            with instance_directory(scratch / "instance"):
                app = build_app(url)
                from web.extensions import db

                with app.app_context():
                    started = time.perf_counter()
                    now = datetime.now(UTC).replace(microsecond=0)
                    seeded = seed_voters(db.engine, args.voters, rng, now)
                    round_id = create_and_open_round(
                        seeded["community_id"], seeded["committee_id"], now
                    )
                    db.session.remove()
                    setup_seconds = time.perf_counter() - started
                    progress(f"seeded and opened round {round_id} in {setup_seconds:.1f} s")
                    voters = [Voter(f"139{uid:08d}") for uid in seeded["voter_user_ids"]]
                    rng.shuffle(voters)
                    # The server's own connections only: the seeding ones are done.
                    db.engine.dispose()
                    server = Server(url, scratch, args.workers, args.worker_class, args.threads)
                    server.wait_ready()
                    progress(f"gunicorn on {HOST}:{server.port}")
                    figures = measure(server, voters, round_id, args)
                    server.stop()
                    log_tail = server.tail(5)
                    server = None
                    figures.update(check_and_close(round_id, figures, scratch, not args.no_verify))
                    db.session.remove()
                    db.engine.dispose()
        finally:
            if server is not None:
                server.stop()
            if engine_name == "postgresql" and not args.keep:
                drop_postgres(url)
    if figures["errors"]:
        progress("gunicorn's last log lines:\n" + log_tail)
    result = {
        "voters": args.voters,
        "ballots_per_s": figures.pop("ballots_per_s"),
        "p50_ms": figures.pop("p50_ms"),
        "p99_ms": figures.pop("p99_ms"),
        "healthz_per_s": figures.pop("healthz_per_s"),
        "engine": engine_name,
        "clients": args.clients,
        "workers": args.workers,
        "worker_class": args.worker_class,
        "threads": args.threads if args.worker_class == "gthread" else 1,
        "cpus": os.cpu_count(),
        "one_core_verify_per_s": machine_speed(),
        "setup_seconds": round(setup_seconds, 1),
        **figures,
    }
    result["goal_met"] = (
        result["ballots_per_s"] >= GOAL_BALLOTS_PER_S
        and result["p99_ms"] is not None
        and result["p99_ms"] < GOAL_P99_MS
        and result["errors"] == 0
        and result["consistent"]
    )
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["consistent"] else 1)
