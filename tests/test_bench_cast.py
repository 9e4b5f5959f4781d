"""The cast benchmark runs end to end on a tiny electorate: gunicorn serves, every voter
logs in, opens the ballot page and casts, the database holds one current ballot per
receipt, the close counts them and the standalone verifier accepts the board."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import TEST_DATABASE_URL

ROOT = Path(__file__).resolve().parent.parent
VOTERS = 24


def _database_url() -> list[str]:
    """SQLite by default (a file in the benchmark's own temporary folder); a database of
    its own, named for the benchmark, on the PostgreSQL server of TEST_DATABASE_URL."""
    if not TEST_DATABASE_URL:
        return []
    url = make_url(TEST_DATABASE_URL)
    if url.get_backend_name() != "postgresql":
        return []
    bench = url.set(database=f"{url.database}_bench_cast")
    return ["--database-url", bench.render_as_string(hide_password=False)]


@pytest.mark.xdist_group("servers")
@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_a_small_cast_run_ends_with_consistent_figures(worker_class):
    finished = subprocess.run(  # noqa: S603  (our own interpreter and module)
        [
            sys.executable,
            "-m",
            "bench.cast",
            "--voters",
            str(VOTERS),
            "--clients",
            "4",
            "--healthz-requests",
            "40",
            "--worker-class",
            worker_class,
            *_database_url(),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    figures = json.loads(finished.stdout.strip().splitlines()[-1])
    assert figures["voters"] == VOTERS
    assert figures["worker_class"] == worker_class
    assert figures["errors"] == 0, finished.stderr[-3000:]
    assert figures["statuses"] == {"303": VOTERS}
    assert figures["ballots"] == figures["current_ballots"] == figures["counted"] == VOTERS
    assert figures["verify"] == "ok"
    assert figures["consistent"] is True
    assert figures["ballots_per_s"] > 0 and figures["healthz_per_s"] > 0
    assert figures["one_core_verify_per_s"] > 0  # the machine's speed, read in the run
    assert figures["p50_ms"] <= figures["p99_ms"]
    # The goal is reported, never assumed: the flag follows the figures.
    assert figures["goal_met"] == (figures["ballots_per_s"] >= 500 and figures["p99_ms"] < 250)
