"""How long closing a big voting round takes: freeze, recount, sign and publish.

`python -m bench.close` builds a separate database by running the migrations, seeds one
compound with a committee member and --ballots verified residents (SQLAlchemy Core bulk
inserts), creates a round of three questions with `ballots.services.create_round` (a
yes/no/abstain question by simple majority, a single choice of 3, an approval of up to 2
of 5), opens it with `services.open_round` (which freezes the electorate and starts the
board), and gives every voter one online ballot. Then it times what the scheduler's close
job does, `services.close_round(round_id, closes_at)` and the commit: reading the board
back, recounting it, signing the result statement, appending the close and result
entries, and notifying the electorate. Afterwards the published board is checked with the
standalone verifier (`python -m crypto.verify board.json`).

The ballots are written in bulk by default: for each voter, exactly the rows
`services.cast_ballot` writes for a first custodial ballot (a credential entry and a
ballot entry on the hash chain, the credential, the ballot with its signed receipt, the
voter's `voted_at`), built with the constructors of `crypto.writer` and inserted with Core
in batches. `--cast-with-service` calls `services.cast_ballot` once per voter instead,
committing every 1,000 ballots: slower (minutes for 100,000), but the service itself. The
verifier checks the board either way.

Progress goes to stderr; the last line of stdout is one JSON object with the figures.

    python -m bench.close                       # 100,000 ballots, SQLite file in a temp dir
    python -m bench.close --ballots 2000 --cast-with-service
    python -m bench.close --database-url postgresql+psycopg://postgres@127.0.0.1:5432/yishi_bench_close

A PostgreSQL database named in --database-url is dropped and created again, so its name
must contain "bench". Goal: the close in under 10 s.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import make_url

from bench.pages import (
    BATCH,
    PASSWORD,
    _sqlalchemy_url,
    build_app,
    drop_postgres,
    instance_directory,
    progress,
    recreate_postgres,
)

GOAL_SECONDS = 10.0
COMMIT_EVERY = 1000  # --cast-with-service: ballots per transaction
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- the community


def seed_voters(engine, voters: int, rng: random.Random, now: datetime) -> dict:
    """One compound; user 1 is its committee member (no unit: not a voter), users 2… are
    verified residents, each with a unit of their own and (seven in ten) a private area."""
    from community.identity import name_skeleton
    from community.models import Community, Membership, User
    from crypto import passwords

    # One hash for everyone: hashing every password would only measure Argon2.
    password_hash = passwords.hash_password(PASSWORD, passwords.MINIMAL)
    joined = now - timedelta(days=90)
    community = {
        "id": 1,
        "name": "阳光花园",
        "kind": "compound",
        "parent_id": None,
        "path": "/1/",
        "timezone": "Asia/Shanghai",
        "description": "",
        "created_at": joined,
    }
    users, memberships = [], []
    for uid in range(1, voters + 2):
        name = "业委会主任" if uid == 1 else f"居民{uid}"
        users.append(
            {
                "id": uid,
                "display_name": name,
                "name_key": name_skeleton(name),
                "phone": f"139{uid:08d}",
                "email": None,
                "password_hash": password_hash,
                "session_version": 1,
                "is_active": True,
                "is_admin": False,
                "locale": "zh",
                "large_text": False,
                "created_at": joined,
                "last_login_at": None,
            }
        )
        committee = uid == 1
        owner = not committee and rng.random() < 0.7
        k = uid - 2  # the voter's place: building, entrance, floor and flat
        memberships.append(
            {
                "id": uid,
                "user_id": uid,
                "community_id": 1,
                "role": "committee" if committee else ("owner" if owner else "resident"),
                "status": "verified",
                "unit": None
                if committee
                else f"{k // 2400 + 1}栋{k // 600 % 4 + 1}单元{k // 20 % 30 + 1}{k % 20 + 1:02d}",
                "private_area": Decimal(rng.randint(4500, 14000)) / 100 if owner else None,
                "how_joined": "appointed" if committee else "invite",
                "requested_at": joined,
                "decided_at": joined,
                "decided_by_id": None,
                "decision_reason": None,
                "suspended_until": None,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(Community.__table__), [community])
        for table, rows in ((User.__table__, users), (Membership.__table__, memberships)):
            for start in range(0, len(rows), BATCH):
                conn.execute(insert(table), rows[start : start + BATCH])
    _move_sequences(engine, ("communities", "users", "memberships"))
    return {"community_id": 1, "committee_id": 1, "voter_user_ids": list(range(2, voters + 2))}


def _move_sequences(engine, tables) -> None:
    """PostgreSQL: the id sequences past the explicit ids (SQLite needs nothing)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        for table in tables:
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
            )


def _analyze(engine) -> None:
    """PostgreSQL: ANALYZE as autovacuum would soon after a load (plans need statistics)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


# ---------------------------------------------------------------- the round


def open_round(community_id: int, committee_id: int, now: datetime) -> int:
    """Create and open the round through the services, as the committee and the opening
    job would. Needs an application context."""
    from ballots import services
    from community.models import Community, User
    from web.extensions import db

    actor = db.session.get(User, committee_id)
    community = db.session.get(Community, community_id)
    draft = services.RoundDraft(
        title="2026年度业主大会表决",
        opens_at=now,
        closes_at=now + timedelta(days=7),
        explanation="三项议题，线上投票，结果在投票结束时公布。",
        questions=[
            services.QuestionDraft(title="是否同意续聘现物业服务企业？"),
            services.QuestionDraft(
                title="公共收益优先用于哪一项？",
                method="single",
                options=["更换电梯", "外墙维修", "增设充电桩"],
            ),
            services.QuestionDraft(
                title="请选出最多两项绿化改造内容",
                method="approval",
                options=["中心花园", "儿童游乐区", "健身步道", "停车棚屋顶", "北门绿化带"],
                max_choices=2,
            ),
        ],
    )
    round_ = services.create_round(actor, community, draft, now=now)
    db.session.commit()
    if not services.open_round(round_.id, now):
        raise RuntimeError("the round did not open")
    db.session.commit()
    return round_.id


def random_answers(rng: random.Random) -> dict[str, list[str]]:
    """A resident's answers, sorted as the ballot format wants them; a few blanks."""
    q1 = rng.choices(["yes", "no", "abstain"], weights=[55, 35, 10])[0]
    q2 = [] if rng.random() < 0.03 else [rng.choices(["o1", "o2", "o3"], weights=[5, 3, 2])[0]]
    picked = rng.sample(["o1", "o2", "o3", "o4", "o5"], rng.choice([0, 1, 2, 2, 2]))
    return {"q1": [q1], "q2": q2, "q3": sorted(picked)}


# ---------------------------------------------------------------- casting


@dataclass
class Cast:
    ballots: int
    seconds: float
    mode: str


def cast_with_service(round_id: int, user_ids: list[int], rng: random.Random, now) -> Cast:
    """services.cast_ballot per voter, a commit every COMMIT_EVERY ballots."""
    from ballots import services
    from ballots.models import Round
    from community.models import User
    from web.extensions import db

    started = time.perf_counter()
    round_ = db.session.get(Round, round_id)
    for i, uid in enumerate(user_ids, 1):
        user = db.session.get(User, uid)
        at = now + timedelta(microseconds=i)
        services.cast_ballot(user, round_, random_answers(rng), services.new_nonce(), now=at)
        if i % COMMIT_EVERY == 0:
            db.session.commit()
            db.session.expunge_all()
            round_ = db.session.get(Round, round_id)
            if i % (COMMIT_EVERY * 10) == 0:
                progress(f"  {i} ballots cast in {time.perf_counter() - started:.1f} s")
    db.session.commit()
    return Cast(len(user_ids), time.perf_counter() - started, "service")


def cast_in_bulk(round_id: int, rng: random.Random, now: datetime) -> Cast:
    """Every voter's first online ballot with a custodial credential, row for row what
    `services._record` writes, in Core batches; the round's head moves once at the end."""
    from nacl.signing import SigningKey

    from ballots import keys
    from ballots.models import Ballot, BoardEntry, Credential, Round, Voter
    from crypto import board, writer
    from web.extensions import db

    started = time.perf_counter()
    engine = db.engine
    round_ = db.session.get(Round, round_id)
    round_hash = round_.round_hash
    round_key = SigningKey(keys.round_seed(round_))
    n, previous = round_.head_n, bytes.fromhex(round_.head_hash)
    secret = round_.secrecy == "secret"
    voters = db.session.execute(
        select(Voter.id, Voter.user_id, Voter.unit, Voter.weight)
        .where(Voter.round_id == round_id)
        .order_by(Voter.id)
    ).all()
    db.session.commit()
    with engine.connect() as conn:
        first_credential = (conn.scalar(select(func.max(Credential.id))) or 0) + 1
        first_ballot = (conn.scalar(select(func.max(Ballot.id))) or 0) + 1
        first_entry = (conn.scalar(select(func.max(BoardEntry.id))) or 0) + 1
    entries, credentials, ballots = [], [], []

    def append(entry_type: str, payload: dict) -> dict:
        nonlocal n, previous
        n += 1
        entry = board.next_entry(previous, n, entry_type, payload)
        previous = bytes.fromhex(entry.hash)
        row = {
            "id": first_entry + len(entries),
            "round_id": round_id,
            "n": n,
            "type": entry_type,
            "payload": board.canonical(payload).decode("ascii"),
            "hash": entry.hash,
        }
        entries.append(row)
        return row

    with engine.begin() as conn:

        def flush() -> None:
            for table, rows in (
                (BoardEntry.__table__, entries),
                (Credential.__table__, credentials),
                (Ballot.__table__, ballots),
            ):
                if rows:
                    conn.execute(insert(table), rows)
            # The ids go on from where the batch ended.
            entries.clear()
            credentials.clear()
            ballots.clear()

        written = {"entries": 0, "credentials": 0, "ballots": 0}
        for i, (voter_id, user_id, unit, weight) in enumerate(voters):
            at = now + timedelta(microseconds=i + 1)
            key = SigningKey.generate()
            public = key.verify_key.encode().hex()
            credential_entry = append(
                "credential",
                writer.credential_payload(public, weight, None if secret else unit, True, None),
            )
            credential_id = first_credential + written["credentials"]
            credentials.append(
                {
                    "id": credential_id,
                    "round_id": round_id,
                    "voter_id": voter_id,
                    "public_key": public,
                    "seed": keys.seal_credential_seed(bytes(key), public),
                    "custodial": True,
                    "board_n": credential_entry["n"],
                    "revoked": False,
                }
            )
            written["credentials"] += 1
            nonce = rng.randbytes(16).hex()
            body = writer.ballot_body(round_hash, public, nonce, random_answers(rng))
            signature = key.sign(board.signed_message("ballot", body)).signature.hex()
            payload = writer.ballot_payload(body, signature, "online", None)
            entry = append("ballot", payload)
            digest = board.ballot_hash(payload).hex()
            receipt = writer.receipt(round_hash, entry["n"], digest, entry["hash"], round_key)
            ballots.append(
                {
                    "id": first_ballot + written["ballots"],
                    "round_id": round_id,
                    "voter_id": voter_id,
                    "cast_by_id": user_id,
                    "credential_id": credential_id,
                    "nonce": nonce,
                    "board_n": entry["n"],
                    "ballot_hash": digest,
                    "channel": "online",
                    "entered_by_id": None,
                    "witness": None,
                    "proxy_note": None,
                    "is_current": True,
                    "receipt": board.canonical(receipt).decode("ascii"),
                    "created_at": at,
                }
            )
            written["ballots"] += 1
            written["entries"] += 2
            if len(ballots) >= BATCH:
                first_entry += len(entries)
                flush()
                if written["ballots"] % (BATCH * 4) == 0:
                    progress(
                        f"  {written['ballots']} ballots written in "
                        f"{time.perf_counter() - started:.1f} s"
                    )
        first_entry += len(entries)
        flush()
        conn.execute(
            update(Voter.__table__)
            .where(Voter.__table__.c.round_id == round_id)
            .values(channel="online", voted_at=now + timedelta(microseconds=len(voters)))
        )
        conn.execute(
            update(Round.__table__)
            .where(Round.__table__.c.id == round_id)
            .values(head_n=n, head_hash=previous.hex())
        )
    _move_sequences(engine, ("board_entries", "round_credentials", "ballots"))
    return Cast(len(voters), time.perf_counter() - started, "bulk")


# ---------------------------------------------------------------- closing and checking


def close(round_id: int, at: datetime, profile: bool) -> tuple[float, dict]:
    """Time close_round and its commit, in a fresh session, as the close job runs it."""
    from ballots import services
    from ballots.models import Round
    from web.extensions import db

    db.session.remove()
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    if not services.close_round(round_id, at):
        raise RuntimeError("close_round did not close the round")
    db.session.commit()
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        progress(out.getvalue())
    db.session.remove()
    result = db.session.get(Round, round_id).result_data
    return seconds, result


def counts(round_id: int) -> dict[str, int]:
    from ballots.models import Ballot, BoardEntry
    from deliberation.models import Notification
    from web.extensions import db

    return {
        "board_entries": db.session.scalar(
            select(func.count()).select_from(BoardEntry).where(BoardEntry.round_id == round_id)
        ),
        "current_ballots": db.session.scalar(
            select(func.count())
            .select_from(Ballot)
            .where(Ballot.round_id == round_id, Ballot.is_current.is_(True))
        ),
        "notifications": db.session.scalar(select(func.count()).select_from(Notification)),
    }


def verify(round_id: int, scratch: Path) -> tuple[str, float | None]:
    """Write the published board to a file and run the standalone verifier on it."""
    from ballots import services
    from ballots.models import Round
    from crypto import writer
    from web.extensions import db

    if not (ROOT / "crypto" / "verify.py").exists():
        progress("crypto/verify.py does not exist (yet): the board was not verified")
        return "skipped", None
    started = time.perf_counter()
    document = services.board_document(db.session.get(Round, round_id))
    path = scratch / "board.json"
    path.write_text(writer.document_text(document), encoding="ascii")
    checked = subprocess.run(  # noqa: S603  (our own interpreter and module)
        [sys.executable, "-m", "crypto.verify", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = round(time.perf_counter() - started, 1)
    lines = (checked.stdout + checked.stderr).strip().splitlines()
    progress(f"verifier (exit {checked.returncode}, {seconds} s): " + " | ".join(lines[-5:]))
    return ("ok" if checked.returncode == 0 else "failed"), seconds


# ---------------------------------------------------------------- the command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.close", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--ballots", type=int, default=100_000, help="voters, each one ballot")
    parser.add_argument(
        "--database-url",
        help="default: a fresh SQLite file in a temporary directory; a PostgreSQL database "
        'is dropped and created again (its name must contain "bench")',
    )
    parser.add_argument(
        "--cast-with-service",
        action="store_true",
        help="cast through services.cast_ballot one by one (slow) instead of in bulk",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the standalone verifier")
    parser.add_argument("--profile", action="store_true", help="cProfile the close (stderr)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep a PostgreSQL database")
    args = parser.parse_args(argv)
    if args.ballots < 1:
        parser.error("--ballots must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="yishi-bench-close-") as scratch:
        url = _sqlalchemy_url(args.database_url or f"sqlite:///{Path(scratch) / 'bench.db'}")
        engine_name = make_url(url).get_backend_name()
        if engine_name == "postgresql":
            recreate_postgres(url)
        elif engine_name == "sqlite":
            path = make_url(url).database
            if path and Path(path).exists() and Path(path).stat().st_size:
                raise SystemExit(f"{path} exists: the benchmark seeds a fresh database")
        progress(f"database: {make_url(url).render_as_string(hide_password=True)}")
        try:
            with instance_directory(Path(scratch) / "instance"):
                app = build_app(url)
                from web.extensions import db

                with app.app_context():
                    figures = run(app, db, args, rng, Path(scratch))
                    db.engine.dispose()
        finally:
            if engine_name == "postgresql" and not args.keep:
                drop_postgres(url)

    result = {
        "ballots": figures.pop("ballots"),
        "close_seconds": figures.pop("close_seconds"),
        "engine": engine_name,
        **figures,
    }
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return result


def run(app, db, args, rng: random.Random, scratch: Path) -> dict:
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    seeded = seed_voters(db.engine, args.ballots, rng, now)
    seed_seconds = time.perf_counter() - started
    progress(f"seeded {args.ballots} voters and a committee member in {seed_seconds:.1f} s")

    started = time.perf_counter()
    round_id = open_round(seeded["community_id"], seeded["committee_id"], now)
    open_seconds = time.perf_counter() - started
    progress(f"created and opened round {round_id} in {open_seconds:.1f} s")

    if args.cast_with_service:
        cast = cast_with_service(round_id, seeded["voter_user_ids"], rng, now)
    else:
        cast = cast_in_bulk(round_id, rng, now)
    progress(f"cast {cast.ballots} ballots ({cast.mode}) in {cast.seconds:.1f} s")
    _analyze(db.engine)

    from ballots.models import Round

    closes_at = db.session.get(Round, round_id).closes_at
    db.session.remove()
    # The close job runs at (or after) the scheduled instant; time-travel there.
    close_seconds, result = close(round_id, closes_at, args.profile)
    after = counts(round_id)
    progress(
        f"closed in {close_seconds:.2f} s: {result['counted']} counted of "
        f"{result['credentials']} credentials; {after}"
    )
    for question in result["questions"]:
        progress(f"  {question['id']}: {json.dumps(question, ensure_ascii=False)[:300]}")
    if result["counted"] != cast.ballots or after["current_ballots"] != cast.ballots:
        raise RuntimeError(f"{cast.ballots} ballots cast but {result['counted']} counted")
    verified, verify_seconds = ("skipped", None) if args.no_verify else verify(round_id, scratch)
    if verified == "failed":
        progress("PROBLEM: the verifier rejected the board")
    return {
        "ballots": cast.ballots,
        "close_seconds": round(close_seconds, 2),
        "counted": result["counted"],
        "board_entries": after["board_entries"],
        "notifications": after["notifications"],
        "cast_mode": cast.mode,
        "setup_seconds": round(seed_seconds + open_seconds + cast.seconds, 1),
        "seed_seconds": round(seed_seconds, 1),
        "open_seconds": round(open_seconds, 1),
        "cast_seconds": round(cast.seconds, 1),
        "verify": verified,
        "verify_seconds": verify_seconds,
        "goal_met": close_seconds < GOAL_SECONDS and verified != "failed",
    }


if __name__ == "__main__":
    sys.exit(1 if main()["verify"] == "failed" else 0)
