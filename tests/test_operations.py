"""Operations (issue 5): `/healthz` reports the database and this process's scheduler,
`/metrics` speaks the Prometheus text format to allowed addresses only and counts what
every process counted, and every request leaves one JSON log line."""

from __future__ import annotations

import json
import logging
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from tests.ballots.conftest import cast, estate, make_round, yes_no  # noqa: F401  (fixtures)
from tests.conftest import login, redis_keys
from web import metrics, scheduler

REDIS_URI = "redis://127.0.0.1:6379"


# ---------------------------------------------------------------- a small exposition parser

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse_exposition(body: str) -> tuple[dict[str, str], list[tuple[str, dict, float]]]:
    """Families (name -> type) and samples (name, labels, value) of a 0.0.4 text body;
    fails on any line that is not HELP, TYPE or a well-formed sample of a declared family."""
    assert body.endswith("\n")
    types: dict[str, str] = {}
    helped: set[str] = set()
    samples = []
    for line in body.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split(" ")[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}, line
            assert name in helped and name not in types, line
            types[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample: {line!r}"
        name, raw_labels, value = match.groups()
        labels = {}
        if raw_labels:
            pairs = LABEL.findall(raw_labels)
            assert ",".join(f'{k}="{v}"' for k, v in pairs) == raw_labels, line
            labels = dict(pairs)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name.removesuffix(suffix)) == "histogram":
                family = name.removesuffix(suffix)
        assert family in types, f"sample of an undeclared family: {line!r}"
        samples.append((name, labels, math.inf if value == "+Inf" else float(value)))
    return types, samples


def value_of(samples, name: str, **labels) -> float:
    found = [
        v for n, ls, v in samples if n == name and all(ls.get(k) == w for k, w in labels.items())
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def scrape(client) -> tuple[dict[str, str], list]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"] == metrics.CONTENT_TYPE
    return parse_exposition(response.get_data(as_text=True))


def healthz_requests(samples) -> float:
    return value_of(
        samples, "yishi_http_requests_total", method="GET", route="/healthz", status="200"
    )


# ---------------------------------------------------------------- /healthz


def test_healthz_reports_the_database_and_no_scheduler_when_it_is_off(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "database": "ok",
        "scheduler": "off",
        "heartbeat_age_seconds": None,
    }


@pytest.fixture
def serving_app(app_config):
    """An app whose scheduler runs in this process, as in a serving process."""
    from app import create_app
    from web.extensions import db

    application = create_app(dict(app_config, SCHEDULER_ENABLED=True))
    yield application
    scheduler.stop_scheduler(application)
    with application.app_context():
        db.engine.dispose()


def test_healthz_reports_the_age_of_this_process_s_scheduler_heartbeat(serving_app):
    assert scheduler.is_running(serving_app)
    deadline = time.monotonic() + 10  # the sweeps run at once when the scheduler starts
    while scheduler.last_heartbeat(serving_app) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    report = serving_app.test_client().get("/healthz").get_json()
    assert report["status"] == "ok" and report["scheduler"] == "ok"
    assert 0 <= report["heartbeat_age_seconds"] < 10

    scheduler.stop_scheduler(serving_app)
    report = serving_app.test_client().get("/healthz").get_json()
    assert report["scheduler"] == "off" and report["heartbeat_age_seconds"] is None


@pytest.mark.parametrize(
    "age,scheduler_state,status",
    [(None, "starting", "ok"), (30, "ok", "ok"), (3600, "stale", "degraded")],
)
def test_a_stale_heartbeat_is_reported_but_still_healthy_for_the_balancer(
    app, monkeypatch, age, scheduler_state, status
):
    heartbeat = None if age is None else datetime.now(UTC) - timedelta(seconds=age)
    monkeypatch.setattr(scheduler, "is_running", lambda _app: True)
    monkeypatch.setattr(scheduler, "last_heartbeat", lambda _app: heartbeat)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    report = response.get_json()
    assert report["scheduler"] == scheduler_state and report["status"] == status
    if age is None:
        assert report["heartbeat_age_seconds"] is None
    else:
        assert report["heartbeat_age_seconds"] == pytest.approx(age, abs=5)


def test_healthz_is_503_when_the_database_does_not_answer(app_config, caplog):
    from app import create_app

    nowhere = "postgresql+psycopg://nobody@127.0.0.1:9/nothing?connect_timeout=2"
    broken = create_app(dict(app_config, SQLALCHEMY_DATABASE_URI=nowhere))
    with caplog.at_level(logging.INFO, logger="yishi.requests"):
        response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unavailable"
    assert response.get_json()["status"] == "unavailable"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "yishi.requests"]
    assert [line["status"] for line in lines] == [503]


# ---------------------------------------------------------------- /metrics


def test_metrics_parse_and_count_requests_by_route_and_status(client):
    for _ in range(3):
        client.get("/healthz")
    client.get("/no/such/page/4711")
    types, samples = scrape(client)
    assert types["yishi_http_requests_total"] == "counter"
    assert types["yishi_http_request_duration_seconds"] == "histogram"
    assert types["yishi_ballots_cast_total"] == "counter"
    assert types["yishi_jobs_run_total"] == types["yishi_jobs_failed_total"] == "counter"
    assert healthz_requests(samples) == 3
    # A path matching no route is one series, whatever the path.
    assert value_of(samples, "yishi_http_requests_total", route="<unmatched>", status="404") == 1
    assert not any("4711" in str(labels) for _, labels, _ in samples)

    for _ in range(2):
        client.get("/healthz")
    _, samples = scrape(client)
    assert healthz_requests(samples) == 5
    # The first scrape is counted by the second.
    assert value_of(samples, "yishi_http_requests_total", route="/metrics", status="200") == 1


def test_duration_histogram_buckets_are_cumulative_and_end_in_the_count(client):
    for path in ("/healthz", "/", "/healthz", "/nope"):
        client.get(path)
    _, samples = scrape(client)
    series: dict[tuple, list[tuple[float, float]]] = {}
    for name, labels, value in samples:
        if name == "yishi_http_request_duration_seconds_bucket":
            key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            series.setdefault(key, []).append((float(labels["le"]), value))
    assert series
    for key, buckets in series.items():
        bounds = [bound for bound, _ in buckets]
        counts = [count for _, count in buckets]
        assert bounds == sorted(bounds) and bounds[-1] == math.inf, key
        assert counts == sorted(counts), f"not cumulative: {key} {counts}"
        labels = dict(key)
        assert counts[-1] == value_of(
            samples, "yishi_http_request_duration_seconds_count", **labels
        )
        assert counts[-1] == value_of(samples, "yishi_http_requests_total", **labels)
        assert value_of(samples, "yishi_http_request_duration_seconds_sum", **labels) > 0


def test_label_values_are_escaped():
    line = metrics._sample("m", {"route": 'a"b\\c\nd'}, 1)
    assert line == 'm{route="a\\"b\\\\c\\nd"} 1'
    parse_exposition(f"# HELP m x\n# TYPE m counter\n{line}\n")


@pytest.mark.parametrize(
    "remote,forwarded,allowed,trusted,status",
    [
        ("127.0.0.1", None, "127.0.0.1,::1", 0, 200),
        ("::1", None, "127.0.0.1,::1", 0, 200),
        ("203.0.113.9", None, "127.0.0.1,::1", 0, 404),
        ("10.0.0.7", None, "127.0.0.1,::1", 0, 404),
        ("10.0.0.7", None, "127.0.0.1, 10.0.0.0/8", 0, 200),
        # A client-sent X-Forwarded-For is ignored unless TRUSTED_PROXIES says otherwise ...
        ("203.0.113.9", "127.0.0.1", "127.0.0.1,::1", 0, 404),
        # ... and behind a trusted proxy the client's address decides, not the proxy's.
        ("127.0.0.1", "203.0.113.9", "127.0.0.1,::1", 1, 404),
        ("192.0.2.1", "10.1.2.3", "10.0.0.0/8", 1, 200),
    ],
)
def test_metrics_are_served_to_allowed_addresses_only(
    app_config, remote, forwarded, allowed, trusted, status
):
    from app import create_app

    application = create_app(dict(app_config, METRICS_ALLOWED=allowed, TRUSTED_PROXIES=trusted))
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    response = application.test_client().get(
        "/metrics", headers=headers, environ_base={"REMOTE_ADDR": remote}
    )
    assert response.status_code == status
    assert ("yishi_http_requests_total" in response.get_data(as_text=True)) == (status == 200)


def test_ballots_cast_total_is_counted_in_the_database(client, estate, make_round, cast):  # noqa: F811
    _, samples = scrape(client)
    assert value_of(samples, "yishi_ballots_cast_total") == 0
    round_ = make_round([yes_no()])
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    cast(estate.voters[1], round_, {"q1": ["no"]})
    cast(estate.voters[0], round_, {"q1": ["no"]})  # a re-vote is a ballot cast too
    _, samples = scrape(client)
    assert value_of(samples, "yishi_ballots_cast_total") == 3


@pytest.fixture
def temporary_sweeps():
    names = []

    def register(name: str, func):
        names.append(name)
        scheduler.register_sweep(name)(func)
        return scheduler.find_sweep(name)

    yield register
    for name in names:
        scheduler.unregister_sweep(name)


def test_jobs_run_and_failed_are_counted_per_sweep(app, client, temporary_sweeps):
    def fails(now):
        raise RuntimeError("boom")

    good = temporary_sweeps("test_ops_good", lambda now: 0)
    bad = temporary_sweeps("test_ops_bad", fails)
    _, samples = scrape(client)
    assert value_of(samples, "yishi_jobs_run_total", job="test_ops_good") == 0
    for _ in range(2):
        scheduler.run_sweep(app, good)
    scheduler.run_sweep(app, bad)
    _, samples = scrape(client)
    assert value_of(samples, "yishi_jobs_run_total", job="test_ops_good") == 2
    assert value_of(samples, "yishi_jobs_failed_total", job="test_ops_good") == 0
    assert value_of(samples, "yishi_jobs_run_total", job="test_ops_bad") == 1
    assert value_of(samples, "yishi_jobs_failed_total", job="test_ops_bad") == 1


@pytest.fixture
def redis_prefix():
    with redis_keys(REDIS_URI, "yishi-test-metrics", "the shared-counter tests") as prefix:
        yield prefix


def test_apps_sharing_redis_see_each_other_s_counts(app_config, redis_prefix):
    from app import create_app

    config = dict(app_config, METRICS_STORAGE_URI=REDIS_URI, METRICS_KEY_PREFIX=redis_prefix)
    first, second = create_app(config), create_app(config)
    assert isinstance(metrics.counters(first), metrics.RedisCounters)
    first.test_client().get("/healthz")
    second.test_client().get("/healthz")
    first.test_client().get("/healthz")
    for application in (first, second):
        _, samples = scrape(application.test_client())
        assert healthz_requests(samples) == 3


def test_an_unreachable_redis_loses_counts_not_requests(app_config, caplog):
    from app import create_app

    config = dict(app_config, METRICS_STORAGE_URI="redis://127.0.0.1:9")
    application = create_app(config)
    with caplog.at_level(logging.WARNING, logger="yishi.metrics"):
        assert application.test_client().get("/healthz").status_code == 200
        assert application.test_client().get("/metrics").status_code == 503
    assert any("metrics_storage_unavailable" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- request logs


def request_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "yishi.requests"]


def test_every_request_is_one_json_line_without_query_or_form(
    app, client, make_member, make_community, caplog
):
    member = make_member(make_community("Sunny Garden"), role="owner")
    with caplog.at_level(logging.INFO, logger="yishi.requests"):
        login(client, member)
        response = client.get("/?token=hunter2-secret")
        client.get("/healthz")
    lines = request_lines(caplog)
    fields = {"ts", "event", "request_id", "user_id", "ip", "method", "route", "path"}
    fields |= {"status", "duration_ms", "pid"}
    for line in lines:
        assert fields <= set(line), line
        assert line["event"] == "request" and line["duration_ms"] >= 0
        assert re.fullmatch(r"[0-9a-f]{16}", line["request_id"])
    logged_in = next(line for line in lines if line["method"] == "POST")
    assert logged_in["route"] == "/auth/login" and logged_in["status"] == 302
    assert logged_in["user_id"] == member.id  # logged in by this very request
    home = next(line for line in lines if line["request_id"] == response.headers["X-Request-Id"])
    assert home["path"] == "/" and home["user_id"] == member.id and home["status"] == 200
    assert lines[-1]["route"] == "/healthz"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "hunter2" not in text and "correct horse" not in text


def test_request_lines_name_the_route_rule_and_the_path(app, client, caplog):
    with caplog.at_level(logging.INFO, logger="yishi.requests"):
        client.get("/p/987654")
        client.get("/no/such/page")
    by_path = {line["path"]: line for line in request_lines(caplog)}
    assert by_path["/p/987654"]["route"] == "/p/<int:proposal_id>"
    assert by_path["/no/such/page"]["route"] is None
    assert by_path["/no/such/page"]["status"] == 404


def test_other_loggers_are_written_as_json_lines_too():
    from web.logs import JsonLinesFormatter

    formatter = JsonLinesFormatter()
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        import sys

        record = logging.LogRecord("app", logging.ERROR, __file__, 1, "failed %s", ("x",), None)
        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed x" and entry["level"] == "error"
    assert "ValueError" in entry["exception"]
    ours = logging.LogRecord("yishi.requests", logging.INFO, __file__, 1, '{"a": 1}', (), None)
    assert formatter.format(ours) == '{"a": 1}'


# ---------------------------------------------------------------- two gunicorn workers


@pytest.fixture
def gunicorn(app, database_uri, tmp_path):
    from tests.ballots.test_concurrency import Gunicorn

    servers = Gunicorn(database_uri, tmp_path / "gunicorn")
    yield servers
    servers.stop_all()


def pid_of_request(log: str, request_id: str) -> int:
    for line in log.splitlines():
        if line.startswith("{") and request_id in line:
            entry = json.loads(line)
            if entry.get("event") == "request" and entry["request_id"] == request_id:
                return entry["pid"]
    raise AssertionError(f"no log line for request {request_id}")


@pytest.mark.xdist_group("servers")
def test_two_gunicorn_workers_report_the_same_request_counts(gunicorn, redis_prefix):
    from tests.ballots.test_concurrency import Browser

    server = gunicorn.start(
        workers=2, METRICS_STORAGE_URI=REDIS_URI, METRICS_KEY_PREFIX=redis_prefix
    )
    # Bursts of home page requests until both workers (the second may still be loading the
    # app) have served some.
    home_lines: list[dict] = []
    for _ in range(20):
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: Browser(server.port).get("/").status, range(16)))
        assert statuses == [200] * 16
        home_lines = [
            json.loads(line)
            for line in server.log_text().splitlines()
            if line.startswith("{") and '"event": "request"' in line and '"path": "/"' in line
        ]
        if len({line["pid"] for line in home_lines}) == 2:
            break
    assert len({line["pid"] for line in home_lines}) == 2, "both workers must have served"

    def scrape_once(_) -> tuple[str, float]:
        reply = Browser(server.port).get("/metrics")
        assert reply.status == 200, reply.text[:500]
        _, samples = parse_exposition(reply.text)
        home = value_of(samples, "yishi_http_requests_total", method="GET", route="/", status="200")
        return reply.headers["X-Request-Id"], home

    # Scrapes at once keep both workers busy, so that each answers some.
    seen: dict[int, set[float]] = {}
    for _ in range(10):
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(scrape_once, range(8)))
        log = server.log_text()
        for request_id, count in answers:
            seen.setdefault(pid_of_request(log, request_id), set()).add(count)
        if len(seen) == 2:
            break
    assert len(seen) == 2, f"one worker answered every scrape: {seen}"
    # Each worker reports both workers' requests.
    assert all(counts == {len(home_lines)} for counts in seen.values()), (seen, len(home_lines))
