"""How fast the standalone verifier checks a big board.

`python -m bench.verify` builds, with crypto.writer.RoundWriter, the board of one closed
round of a large owners' electorate — by default 200,000 ballots: 180,000 credentials
(90 % of the ballots), each of whom votes once, and 20,000 re-votes of voters drawn at
random; two questions (yes/no/abstain decided by the art. 278 double majority with random
private areas, and an approval question) — writes it to a temporary file in the form the
server's board download has (compact JSON, payloads in canonical key order), then times
`python -m crypto.verify FILE --json` in a subprocess: interpreter start, reading and
parsing the file, every check and the recount, as a user running the verifier would see it.

Progress goes to stderr; the last line of stdout is one JSON object with the figures.

    python -m bench.verify                       # 200,000 ballots, workers = CPUs
    python -m bench.verify --ballots 20000 --workers 1
    python -m bench.verify --workers 1 --workers 2   # the same board, timed for each

Goal: at least 20,000 ballots per second on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import machine_speed
from crypto.writer import RoundWriter, document_text

GOAL_BALLOTS_PER_S = 20_000
OPENED = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
CLOSED = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
APPROVAL = ("o1", "o2", "o3", "o4", "o5")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def manifest(voters: int, weight: int) -> dict:
    return {
        "version": 1,
        "round_id": 1,
        "community": "Benchmark Gardens",
        "title": "Lift and playground",
        "explanation": "A round of a very large electorate, for the verifier benchmark.",
        "scope": "Every building",
        "opens_at": "2026-12-01T08:00:00Z",
        "closes_at": "2026-12-08T08:00:00Z",
        "secrecy": "secret",
        "electorate": {"kind": "owners", "voters": voters, "weight": weight},
        "questions": [
            {
                "id": "q1",
                "title": "Install lifts?",
                "method": "yes_no_abstain",
                "max_choices": 1,
                "options": [
                    {"id": "yes", "label": "Yes"},
                    {"id": "no", "label": "No"},
                    {"id": "abstain", "label": "Abstain"},
                ],
                "rule": {"kind": "art278_ordinary", "quorum": None},
                "proposal": 1,
            },
            {
                "id": "q2",
                "title": "Which playground equipment (up to two)?",
                "method": "approval",
                "max_choices": 2,
                "options": [{"id": o, "label": f"Option {o[1:]}"} for o in APPROVAL],
                "rule": {"kind": "simple_majority", "quorum": [1, 4]},
                "proposal": 2,
            },
        ],
    }


def build(ballots: int, rng: random.Random) -> tuple[dict, int]:
    """The board document and its number of credentials."""
    voters = max(1, ballots * 9 // 10)
    weights = [rng.randint(4000, 16000) for _ in range(voters)]  # 40 to 160 m²
    writer = RoundWriter(manifest(voters, sum(weights)), rng.randbytes(32))
    writer.open(OPENED)
    seeds = [writer.register(weight, seed=rng.randbytes(32)) for weight in weights]
    for i in range(ballots):
        seed = seeds[i] if i < voters else rng.choice(seeds)
        lift = rng.choices(["yes", "no", "abstain"], weights=[6, 3, 1])[0]
        playground = rng.sample(APPROVAL, rng.choice([0, 1, 2, 2]))
        writer.cast(seed, {"q1": [lift], "q2": playground}, nonce=rng.randbytes(16).hex())
    writer.close(CLOSED)
    return writer.board(), voters


def time_verifier(path: Path, workers: int | None) -> tuple[float, dict]:
    command = [sys.executable, "-m", "crypto.verify", str(path), "--json"]
    if workers is not None:
        command += ["--workers", str(workers)]
    started = time.perf_counter()
    # Our own interpreter running our own module, no shell: nothing untrusted in the command.
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"the verifier exited with {done.returncode}:\n{done.stdout[-2000:]}{done.stderr}"
        )
    return seconds, json.loads(done.stdout)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.verify", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--ballots", type=int, default=200_000, help="default 200,000")
    parser.add_argument(
        "--workers",
        type=int,
        action="append",
        help="verifier worker processes (default: the CPUs); repeat to time several",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--keep", metavar="PATH", help="also keep the board file at PATH")
    args = parser.parse_args(argv)
    if args.ballots < 1:
        parser.error("--ballots must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    document, credentials = build(args.ballots, random.Random(args.seed))
    build_seconds = round(time.perf_counter() - started, 1)
    entries = len(document["entries"])
    progress(f"built {args.ballots} ballots, {credentials} credentials in {build_seconds} s")
    runs = []
    with tempfile.TemporaryDirectory(prefix="yishi-bench-verify-") as scratch:
        path = Path(scratch) / "board.json"
        with path.open("w") as out:
            out.write(document_text(document))
            out.flush()
            # On disk before the timing starts: the kernel's writing of the benchmark's own
            # file back is no part of the verifier's work.
            os.fsync(out.fileno())
        del document
        size_mb = round(path.stat().st_size / 1e6, 1)
        print(
            f"board: {args.ballots} ballots, {credentials} credentials, {entries} entries, "
            f"{size_mb} MB; built in {build_seconds} s",
            flush=True,
        )
        if args.keep:
            Path(args.keep).write_bytes(path.read_bytes())
        for workers in args.workers or [None]:
            load_before = os.getloadavg()[0]
            seconds, report = time_verifier(path, workers)
            rate = round(args.ballots / seconds)
            shown = "CPUs" if workers is None else workers
            print(f"workers {shown}: {seconds:.2f} s, {rate} ballots/s", flush=True)
            runs.append(
                {
                    "workers": workers,
                    "seconds": round(seconds, 2),
                    "ballots_per_s": rate,
                    "load_average": round(load_before, 2),
                    "ok": report["ok"],
                    "counted": report["summary"]["counted"],
                }
            )
    last = runs[-1]
    speed = machine_speed()
    progress(f"machine: {speed} Ed25519 verifications/s on one core (libsodium)")
    result = {
        "ballots": args.ballots,
        "seconds": last["seconds"],
        "ballots_per_s": last["ballots_per_s"],
        "workers": last["workers"],
        "entries": entries,
        "credentials": credentials,
        "file_mb": size_mb,
        "build_seconds": build_seconds,
        "cpus": os.cpu_count(),
        "one_core_verify_per_s": speed,
        "runs": runs,
        "goal_met": last["ballots_per_s"] >= GOAL_BALLOTS_PER_S,
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
