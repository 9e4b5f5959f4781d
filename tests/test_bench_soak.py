"""The soak benchmark runs end to end for a few seconds against PostgreSQL, gunicorn and
Redis, and ends with its JSON line."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import TEST_DATABASE_URL

KEYS = {
    "requests",
    "errors",
    "error_sample",
    "browse",
    "comment",
    "vote",
    "data",
    "rss_peak_mb_per_window",
    "rss_max_growth_percent",
    "rss_flat",
    "verify",
    "consistent",
}


@pytest.mark.xdist_group("servers")
@pytest.mark.skipif(
    not TEST_DATABASE_URL or make_url(TEST_DATABASE_URL).get_backend_name() != "postgresql",
    reason="the soak runs the PostgreSQL setup: set TEST_DATABASE_URL to a PostgreSQL database",
)
def test_a_few_seconds_of_soak_end_with_one_json_line(request, capsys):
    from bench import soak

    worker = getattr(request.config, "workerinput", {}).get("workerid", "main")
    url = make_url(TEST_DATABASE_URL)
    url = url.set(drivername="postgresql+psycopg", database=f"{url.database}_soak_{worker}")
    soak.main(
        [
            "--seconds",
            "4",
            "--database-url",
            url.render_as_string(hide_password=False),
            "--voters",
            "12",
            "--clients",
            "2",
            "--proposals",
            "3",
            "--comments",
            "6",
            "--sample-seconds",
            "1",
        ]
    )

    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert not KEYS - figures.keys(), KEYS - figures.keys()
    assert figures["engine"] == "postgresql"
    assert figures["errors"] == 0, figures["error_sample"]
    assert figures["consistent"], figures
    assert figures["verify"] == "ok"
    for kind in ("browse", "comment", "vote"):
        assert figures[kind]["requests"] > 0, (kind, figures)
    assert figures["requests"] == sum(figures[k]["requests"] for k in ("browse", "comment", "vote"))
    assert figures["data"]["comments_at_end"] == (
        figures["data"]["comments_at_start"] + figures["comments_posted"]
    )
    # Both workers were watched, in both halves of the run.
    assert figures["rss_workers_throughout"] == 2
    assert all(len(peaks) == 2 for peaks in figures["rss_peak_mb_per_window"].values())
