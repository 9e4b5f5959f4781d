"""The page benchmark runs end to end on tiny sizes and ends with its JSON line."""

from __future__ import annotations

import json

from bench import pages

KEYS = {
    "engine",
    "communities",
    "members",
    "proposals",
    "comments",
    "list_p95_ms",
    "search_p95_ms",
    "search_en_p95_ms",
    "detail_p95_ms",
    "board_p95_ms",
    "decisions",
    "max_queries_per_page",
    "detail_queries_10",
    "detail_queries_1000",
}


def test_quick_benchmark_ends_with_one_json_line(tmp_path, capsys):
    pages.main(["--quick", "--database-url", f"sqlite:///{tmp_path / 'bench.db'}"])

    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    figures = json.loads(last_line)
    assert not KEYS - figures.keys(), KEYS - figures.keys()
    assert figures["engine"] == "sqlite"
    assert figures["proposals"] == pages.QUICK_SIZES["proposals"]
    assert figures["comments"] == pages.QUICK_SIZES["comments"]
    assert figures["search_hits"] >= 1
    assert figures["decisions"] == pages.QUICK_SIZES["decisions"]
    # The query count of a proposal page does not depend on the size of its thread.
    assert figures["detail_queries_1000"] == figures["detail_queries_10"]
