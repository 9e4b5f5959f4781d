"""A soak: minutes of mixed load on the multi-process PostgreSQL setup, memory watched.

`python -m bench.soak --minutes 5` builds a fresh database by running the migrations
(PostgreSQL `yishi_mp_soak` on 127.0.0.1 unless --database-url says otherwise; it is dropped
and created again, so its name must contain "soak" or "bench"), seeds one compound with a
committee member and --voters verified residents (`bench.close.seed_voters`), --proposals
proposals published through the deliberation services with --comments comments between
them, and a round opened through the ballot services (`bench.cast.create_and_open_round`).
Then it starts --servers gunicorn masters (default 1) of --workers workers each (default 2,
gunicorn's sync workers, the repository's gunicorn.conf.py: every worker runs the scheduled
sweeps, as in production) serving `bench.wsgi:app` with the rate limits on and kept in
Redis (--redis-url, under a key prefix of the run's own, deleted afterwards), relaxed so
that the load clients, all on 127.0.0.1, are not limited.

--clients threads, each with one keep-alive connection (`bench.cast.Connection`; with
several servers, client i talks to server i mod servers) and a share of the voters, each
voter logged in through the real login form with a cookie jar of its own (not timed), do
each of these once, then one at random, as a random voter of theirs, until time is up:

- browse (weight 6): GET the compound page, the proposal list, a proposal's page, the
  round's page or the notifications; expects 200;
- comment (weight 2): GET a proposal's page (counted as browse) for the CSRF token of the
  voter's session, POST a comment; expects a redirect back to the proposal;
- vote (weight 2): `bench.cast.vote`: GET the ballot page (counted as browse), POST a
  ballot with a fresh nonce (a re-vote once the voter has voted); expects 303 to the
  receipt.

Latency percentiles are of the GETs for browse and of the POSTs for comment and vote. Any
other answer, and any connection error, counts as an error (a sample is printed). Every
--sample-seconds the VmRSS of every gunicorn worker is read from /proc: the output has the
peak per worker per minute and the growth from the first minute to the last (for a run
under two minutes: first half to second half), which should stay under 10 %.

Afterwards, in-process, with the servers stopped: every acknowledged ballot (303) is in
the database, each voter who voted has one current ballot, every acknowledged comment is
there; then the round is closed and the published board is given to the standalone
verifier (`python -m crypto.verify board.json`). The CPUs are shared by the servers, the
database, Redis and the clients: the figures are for all of them on one box.

Progress goes to stderr; the last line of stdout is one JSON object with the figures.

    python -m bench.soak --minutes 5
    python -m bench.soak --seconds 20 --voters 40 --clients 4     # a quick run
    python -m bench.soak --minutes 5 --servers 2                  # two app servers
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bench.cast import (
    HOST,
    ROOT,
    Connection,
    Outcome,
    Server,
    Voter,
    _token,
    create_and_open_round,
    log_in,
    run_clients,
    vote,
)
from bench.close import seed_voters, verify
from bench.pages import (
    COMMENTS,
    GATES,
    TOPICS,
    _sqlalchemy_url,
    build_app,
    drop_postgres,
    instance_directory,
    percentile,
    progress,
)

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/yishi_mp_soak"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
GOAL_RSS_GROWTH_PERCENT = 10.0
KINDS = {"browse": 6, "comment": 2, "vote": 2}
STANCES = ["for", "against", "question", "neutral"]
_PROPOSAL_REDIRECT = re.compile(r"/p/(\d+)(?:[?#].*)?$")

# The limits stay on (and in Redis), but the load clients all come from 127.0.0.1 and post
# faster than people: relaxed so that they are counted, never reached.
RELAXED_LIMITS = {
    "LOGIN_LIMIT_PER_IP": "1000000 per minute",
    "LOGIN_LIMIT_PER_ACCOUNT": "10000 per minute",
    "WRITE_LIMIT_PER_MEMBER": "1000000 per minute",
    "WRITE_LIMIT_PER_ADDRESS": "10000000 per minute",
}


# ---------------------------------------------------------------- the database and the data


def recreate_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and Path(parsed.database).exists():
            raise SystemExit(f"{parsed.database} exists: the soak seeds a fresh database")
        return
    if not any(marker in (parsed.database or "") for marker in ("soak", "bench")):
        raise SystemExit(
            f"refusing to drop and re-create {parsed.database!r}: "
            'the soak database name must contain "soak" or "bench"'
        )
    drop_postgres(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def seed_discussion(
    community_id: int, author_ids: list[int], proposals: int, comments: int, rng
) -> list[int]:
    """Proposals published and commented on through the deliberation services (needs an
    application context). Returns the proposals' ids."""
    from community.models import Community, User
    from deliberation import services as deliberation
    from deliberation.models import Proposal
    from web.extensions import db

    community = db.session.get(Community, community_id)
    categories = {value for value, _label in deliberation.categories(community)}
    ids = []
    for k in range(proposals):
        topic = TOPICS[k % len(TOPICS)]
        gate, gate_en = GATES[k % len(GATES)]
        values = {"b": k % 12 + 1, "u": k % 4 + 1, "gate": gate, "gate_en": gate_en}
        draft = deliberation.ProposalDraft(
            title=rng.choice(topic.zh_titles).format(**values),
            body=topic.zh_body.format(**values),
            category=topic.category if topic.category in categories else "other",
        )
        author = db.session.get(User, rng.choice(author_ids))
        ids.append(deliberation.submit_proposal(author, community, draft, publish=True).id)
    db.session.commit()
    for _ in range(comments):
        proposal = db.session.get(Proposal, rng.choice(ids))
        stance = rng.choice(STANCES)
        author = db.session.get(User, rng.choice(author_ids))
        deliberation.post_comment(author, proposal, rng.choice(COMMENTS[stance]), stance)
    db.session.commit()
    return ids


def counted_rows() -> dict[str, int]:
    from ballots.models import Ballot, BoardEntry
    from deliberation.models import Comment, Proposal
    from web.extensions import db

    def count(model) -> int:
        return db.session.scalar(select(func.count()).select_from(model))

    return {
        "proposals": count(Proposal),
        "comments": count(Comment),
        "ballots": count(Ballot),
        "board_entries": count(BoardEntry),
    }


# ---------------------------------------------------------------- the load


@dataclass
class Client:
    """One client thread: its voters, and what it saw."""

    voters: list[Voter]
    ms: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    errors: list[str] = field(default_factory=list)
    comments: int = 0
    votes: Outcome = field(default_factory=Outcome)  # bench.cast.vote's own record
    voted: set[str] = field(default_factory=set)


class Load:
    def __init__(self, round_id: int, proposal_ids: list[int], community_id: int, args):
        self.round_id = round_id
        self.proposal_ids = proposal_ids
        self.community_id = community_id
        self.args = args
        self.deadline = 0.0

    def pages(self, rng) -> str:
        c = self.community_id
        return rng.choice(
            [
                f"/c/{c}",
                f"/c/{c}/proposals",
                f"/c/{c}/proposals?sort=discussed",
                f"/p/{rng.choice(self.proposal_ids)}",
                f"/p/{rng.choice(self.proposal_ids)}",
                f"/r/{self.round_id}",
                "/notifications",
            ]
        )

    def get(self, conn: Connection, voter: Voter, path: str, client: Client) -> bytes | None:
        started = time.perf_counter()
        status, _headers, body = conn.request("GET", path, voter.cookies)
        client.ms["browse"].append((time.perf_counter() - started) * 1000)
        if status != 200:
            client.errors.append(f"GET {path} {status} {body[:200]!r}")
            return None
        return body

    def comment(self, conn: Connection, voter: Voter, rng, client: Client) -> None:
        proposal_id = rng.choice(self.proposal_ids)
        page = self.get(conn, voter, f"/p/{proposal_id}", client)
        if page is None:
            return
        stance = rng.choice(STANCES)
        form = {
            "csrf_token": _token(page, "the proposal page"),
            "stance": stance,
            "body": f"{rng.choice(COMMENTS[stance])} ({rng.randrange(10**6)})",
        }
        started = time.perf_counter()
        status, headers, body = conn.request(
            "POST", f"/p/{proposal_id}/comments", voter.cookies, urlencode(form)
        )
        client.ms["comment"].append((time.perf_counter() - started) * 1000)
        match = _PROPOSAL_REDIRECT.search(headers.get("Location") or "")
        if status not in (302, 303) or not match or int(match.group(1)) != proposal_id:
            client.errors.append(
                f"POST comment {status} {headers.get('Location')!r} {body[:200]!r}"
            )
            return
        client.comments += 1

    def work(self, conn: Connection, client: Client, rng, _out: Outcome) -> None:
        kinds, weights = list(KINDS), list(KINDS.values())
        think = self.args.think_ms / 1000
        first = list(kinds)  # every client does each kind once first, then at random
        while time.perf_counter() < self.deadline:
            voter = rng.choice(client.voters)
            kind = first.pop(0) if first else rng.choices(kinds, weights=weights)[0]
            try:
                if kind == "browse":
                    self.get(conn, voter, self.pages(rng), client)
                elif kind == "comment":
                    self.comment(conn, voter, rng, client)
                else:
                    before = len(client.votes.receipts)
                    vote(conn, voter, self.round_id, rng, client.votes)
                    if len(client.votes.receipts) > before:
                        client.voted.add(voter.phone)
            except Exception as error:  # noqa: BLE001  (counted, the run goes on)
                client.errors.append(f"{kind}: {type(error).__name__}: {error}")
            if think:
                time.sleep(think)


# ---------------------------------------------------------------- memory


class MemoryWatch:
    """VmRSS of every worker of every server, read from /proc every few seconds."""

    def __init__(self, servers: list[Server], every: float):
        self.servers = servers
        self.every = every
        self.samples: list[tuple[float, str, int]] = []  # (seconds in, worker, kB)
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.started = time.perf_counter()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.sample()  # one at the very end too

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def sample(self) -> None:
        at = time.perf_counter() - self.started
        for number, server in enumerate(self.servers, start=1):
            for pid in server.worker_pids():
                kb = rss_kb(pid)
                if kb is not None:
                    self.samples.append((at, f"{number}:{pid}", kb))

    def figures(self, seconds: float) -> dict:
        """Peak RSS per worker per window (a minute; half the run when it is shorter than
        two minutes), and each worker's growth from the first window to the last."""
        window = 60.0 if seconds >= 120 else max(seconds / 2, 1e-9)
        windows = max(2, math.ceil(seconds / window - 1e-9))
        peaks: dict[str, list[int | None]] = {}
        for at, worker, kb in self.samples:
            slot = min(int(at // window), windows - 1)
            row = peaks.setdefault(worker, [None] * windows)
            row[slot] = max(row[slot] or 0, kb)
        growth = {}
        for worker, row in peaks.items():
            if row[0] and row[-1]:
                growth[worker] = round((row[-1] - row[0]) * 100 / row[0], 1)
        worst = max(growth.values()) if growth else None
        return {
            "rss_window_seconds": round(window, 1),
            "rss_peak_mb_per_window": {
                worker: [round(kb / 1024, 1) if kb else None for kb in row]
                for worker, row in sorted(peaks.items())
            },
            "rss_growth_percent": growth,
            "rss_max_growth_percent": worst,
            # Workers seen in the first and in the last window: none replaced meanwhile.
            "rss_workers_throughout": len(growth),
            "rss_flat": worst is not None and worst < GOAL_RSS_GROWTH_PERCENT,
        }


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- checks afterwards


def check(round_id: int, clients: list[Client], rows_before: dict, scratch: Path) -> dict:
    """In-process: acknowledged ballots and comments are stored, one current ballot per
    voter who voted; then the round is closed and its board verified."""
    from ballots import services
    from ballots.models import Ballot, Round
    from ballots.models import Voter as RoundVoter
    from web.extensions import db

    db.session.remove()
    acknowledged = set().union(*(c.votes.receipts for c in clients))
    voters = set().union(*(c.voted for c in clients))
    stored = set(
        db.session.scalars(
            select(Ballot.id).where(Ballot.round_id == round_id, Ballot.id.in_(acknowledged))
        )
    )
    current = db.session.scalar(
        select(func.count())
        .select_from(Ballot)
        .where(Ballot.round_id == round_id, Ballot.is_current.is_(True))
    )
    voted = db.session.scalar(
        select(func.count(RoundVoter.voted_at)).where(RoundVoter.round_id == round_id)
    )
    rows = counted_rows()
    comments = sum(c.comments for c in clients)
    problems = []
    if stored != acknowledged:
        problems.append(f"{len(acknowledged - stored)} acknowledged ballots are missing")
    if not current == voted == len(voters):
        problems.append(
            f"{len(voters)} voters got a receipt, but the database has {current} current "
            f"ballots and {voted} voters who voted"
        )
    if rows["comments"] != rows_before["comments"] + comments:
        problems.append(
            f"{comments} comments acknowledged, but {rows['comments'] - rows_before['comments']}"
            " were stored"
        )
    closes_at = db.session.get(Round, round_id).closes_at
    db.session.remove()
    if not services.close_round(round_id, closes_at):
        raise RuntimeError("close_round did not close the round")
    db.session.commit()
    counted = db.session.get(Round, round_id).result_data["counted"]
    if counted != current:
        problems.append(f"the close counted {counted} of {current} current ballots")
    verified = verify(round_id, scratch)[0]
    if verified == "failed":
        problems.append("the verifier rejected the board")
    for problem in problems:
        progress(f"PROBLEM: {problem}")
    return {
        "acknowledged_ballots": len(acknowledged),
        "current_ballots": current,
        "counted": counted,
        "verify": verified,
        "rows_at_end": rows,
        "problems": problems,
    }


# ---------------------------------------------------------------- the command


def _ms(samples: list[float], pct: float) -> float | None:
    return round(percentile(samples, pct), 1) if samples else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    how_long = parser.add_mutually_exclusive_group()
    how_long.add_argument("--minutes", type=float, help="length of the load (default 5)")
    how_long.add_argument("--seconds", type=float, help="length of the load, in seconds")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help=f"dropped and created again (default {DEFAULT_DATABASE_URL}); the name must "
        'contain "soak" or "bench"; a sqlite:/// file that does not exist yet works too',
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"rate-limit and metrics storage (default {DEFAULT_REDIS_URL})",
    )
    parser.add_argument("--servers", type=int, default=1, help="gunicorn masters (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="workers each (default 2)")
    parser.add_argument(
        "--worker-class",
        choices=("sync", "gthread"),
        default="sync",
        help="gunicorn worker class (default sync, as make serve-prod)",
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--voters", type=int, default=400, help="residents (default 400)")
    parser.add_argument("--proposals", type=int, default=30, help="proposals (default 30)")
    parser.add_argument("--comments", type=int, default=600, help="comments seeded before the load")
    parser.add_argument(
        "--think-ms", type=float, default=0.0, help="pause after each action (default 0)"
    )
    parser.add_argument(
        "--sample-seconds", type=float, default=3.0, help="RSS sampling period (default 3)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep a PostgreSQL database")
    args = parser.parse_args(argv)
    args.duration = args.seconds if args.seconds is not None else 60 * (args.minutes or 5)
    if args.duration <= 0:
        parser.error("--minutes/--seconds must be positive")
    if min(args.servers, args.workers, args.threads, args.proposals) < 1:
        parser.error("--servers, --workers, --threads and --proposals must be at least 1")
    if args.clients < 1 or args.voters < args.clients:
        parser.error("at least one client, and at least one voter per client")
    return args


def redis_keys_removed(url: str, prefix: str) -> int:
    import redis

    connection = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(connection.scan_iter(match=f"{prefix}*"))
        if keys:
            connection.delete(*keys)
        return len(keys)
    finally:
        connection.close()


def redis_or_exit(url: str) -> None:
    import redis

    connection = redis.Redis.from_url(url, socket_timeout=5)
    try:
        connection.ping()
    except redis.RedisError as error:
        raise SystemExit(f"Redis does not answer at {url}: {error}") from error
    finally:
        connection.close()


def start_servers(url: str, scratch: Path, args, prefix: str) -> list[Server]:
    config = {
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_STORAGE_URI": args.redis_url,
        "RATELIMIT_STORAGE_OPTIONS": {"key_prefix": prefix},
        "METRICS_KEY_PREFIX": f"{prefix}:metrics",
        "SCHEDULER_ENABLED": True,
        **RELAXED_LIMITS,
    }
    env = {"YISHI_BENCH_CONFIG": json.dumps(config), "YISHI_SCHEDULER": "workers"}
    gunicorn_config = ("-c", str(ROOT / "gunicorn.conf.py"))
    servers = [
        Server(
            url,
            scratch,
            args.workers,
            args.worker_class,
            args.threads,
            name=f"gunicorn-{n}",
            args=gunicorn_config,
            env=env,
        )
        for n in range(1, args.servers + 1)
    ]
    for server in servers:
        server.wait_ready()
    return servers


def server_log_problems(servers: list[Server]) -> list[str]:
    found = []
    for server in servers:
        for line in server.log_path.read_text(errors="replace").splitlines():
            if "Traceback" in line or '"job_failed"' in line or "[ERROR]" in line:
                found.append(line[:300])
    return found


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    url = _sqlalchemy_url(args.database_url)
    engine_name = make_url(url).get_backend_name()
    redis_or_exit(args.redis_url)
    prefix = f"yishi-soak:{uuid.uuid4().hex[:12]}"
    recreate_database(url)
    progress(f"database: {make_url(url).render_as_string(hide_password=True)}")
    progress(
        f"{args.duration:.0f} s of load: {args.clients} clients, {args.servers} server(s) of "
        f"{args.workers} {args.worker_class} workers, {args.voters} voters, "
        f"{args.proposals} proposals, CPUs {os.cpu_count()}"
    )
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="yishi-bench-soak-") as scratch_name:
        scratch = Path(scratch_name)
        try:
            with instance_directory(scratch / "instance"):
                app = build_app(url)
                from web.extensions import db

                with app.app_context():
                    started = time.perf_counter()
                    now = datetime.now(UTC).replace(microsecond=0)
                    seeded = seed_voters(db.engine, args.voters, rng, now)
                    community_id = seeded["community_id"]
                    proposal_ids = seed_discussion(
                        community_id, seeded["voter_user_ids"], args.proposals, args.comments, rng
                    )
                    round_id = create_and_open_round(community_id, seeded["committee_id"], now)
                    rows_before = counted_rows()
                    db.session.remove()
                    db.engine.dispose()
                    progress(f"seeded {rows_before} in {time.perf_counter() - started:.1f} s")

                    servers = start_servers(url, scratch, args, prefix)
                    progress("gunicorn on " + ", ".join(f"{HOST}:{s.port}" for s in servers))
                    figures = run_load(servers, seeded, round_id, proposal_ids, args)
                    for server in servers:
                        server.stop()
                    log_problems = server_log_problems(servers)
                    servers = []
                    figures.update(check(round_id, figures.pop("_clients"), rows_before, scratch))
                    db.session.remove()
                    db.engine.dispose()
        finally:
            for server in servers:
                server.stop()
            removed = redis_keys_removed(args.redis_url, prefix)
            progress(f"removed {removed} Redis keys under {prefix}")
            if engine_name == "postgresql" and not args.keep:
                drop_postgres(url)
    for line in log_problems[:5]:
        progress(f"server log: {line}")
    figures["server_log_problems"] = len(log_problems)
    problems = figures.pop("problems")
    result = {
        "seconds": round(args.duration, 1),
        "engine": engine_name,
        "servers": args.servers,
        "workers": args.workers,
        "worker_class": args.worker_class,
        "clients": args.clients,
        "cpus": os.cpu_count(),
        "data": {
            "voters": args.voters,
            "proposals": rows_before["proposals"],
            "comments_at_start": rows_before["comments"],
            "comments_at_end": figures["rows_at_end"]["comments"],
            "ballots_at_end": figures["rows_at_end"]["ballots"],
            "board_entries_at_end": figures["rows_at_end"]["board_entries"],
        },
        **{k: v for k, v in figures.items() if k != "rows_at_end"},
    }
    result["consistent"] = not problems and not log_problems
    result["goal_met"] = result["errors"] == 0 and result["consistent"] and bool(result["rss_flat"])
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return result


def run_load(servers: list[Server], seeded: dict, round_id: int, proposal_ids, args) -> dict:
    phones = [f"139{uid:08d}" for uid in seeded["voter_user_ids"]]
    clients = [
        Client([Voter(phone) for phone in phones[i :: args.clients]]) for i in range(args.clients)
    ]
    connections = [Connection(servers[i % len(servers)].port) for i in range(args.clients)]
    load = Load(round_id, proposal_ids, seeded["community_id"], args)
    try:

        def log_everyone_in(conn: Connection, client: Client, _rng, _out) -> None:
            for voter in client.voters:
                log_in(conn, voter)

        seconds, outcomes = run_clients(connections, log_everyone_in, clients)
        failed = [error for out in outcomes for error in out.errors]
        if failed:
            raise RuntimeError(f"{len(failed)} clients could not log in: {failed[:3]}")
        progress(f"logged in {len(phones)} voters in {seconds:.1f} s (not timed)")

        watch = MemoryWatch(servers, args.sample_seconds)
        watch.start()
        server_cpu = sum(server.cpu_seconds() for server in servers)
        load_before = os.getloadavg()[0]
        load.deadline = time.perf_counter() + args.duration
        seconds, outcomes = run_clients(connections, load.work, clients)
        server_cpu = sum(server.cpu_seconds() for server in servers) - server_cpu
        load_after = os.getloadavg()[0]
        watch.stop()
    finally:
        for conn in connections:
            conn.close()
    for client, out in zip(clients, outcomes, strict=True):
        client.errors += out.errors  # what escaped a client's loop (none expected)
        client.errors += client.votes.errors
        client.ms["browse"] += client.votes.get_ms
        client.ms["vote"] += client.votes.post_ms
    errors = [error for client in clients for error in client.errors]
    kinds = {}
    for kind in KINDS:
        samples = [ms for client in clients for ms in client.ms[kind]]
        kinds[kind] = {
            "requests": len(samples),
            "p50_ms": _ms(samples, 50),
            "p99_ms": _ms(samples, 99),
        }
    requests = sum(kind["requests"] for kind in kinds.values())
    figures = {
        "requests": requests,
        "requests_per_s": round(requests / seconds, 1),
        "errors": len(errors),
        "error_sample": errors[:5],
        **kinds,
        "comments_posted": sum(client.comments for client in clients),
        "ballots_cast": sum(len(client.votes.post_ms) for client in clients),
        "voters_who_voted": len(set().union(*(client.voted for client in clients))),
        "reconnects": sum(out.reconnects for out in outcomes),
        # The workers' CPU per request; the database's and Redis's come on top. Other work
        # on the machine shows in the timings: the 1-minute load average before and after.
        "server_cpu_ms_per_request": round(server_cpu * 1000 / requests, 1) if requests else None,
        "load_average": [round(load_before, 2), round(load_after, 2)],
        **watch.figures(seconds),
        "_clients": clients,
    }
    progress(
        f"{requests} requests in {seconds:.1f} s, {len(errors)} errors; "
        + "; ".join(f"{k} p50 {v['p50_ms']} p99 {v['p99_ms']} ms" for k, v in kinds.items())
        + f"; RSS growth {figures['rss_max_growth_percent']} %"
    )
    for error in errors[:5]:
        progress(f"  error: {error}")
    return figures


if __name__ == "__main__":
    sys.exit(0 if main()["goal_met"] else 1)
