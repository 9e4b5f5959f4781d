"""Operations endpoints: `/healthz` for load balancers and monitors, `/metrics` for Prometheus
(text exposition format 0.0.4), and the counters behind the latter.

Counters live where every serving process sees them: in Redis when METRICS_STORAGE_URI
(by default RATELIMIT_STORAGE_URI) is a redis:// address, which gunicorn with several
workers needs; otherwise in this process's memory, which is right for one process only
(`make run`, tests). Ballots cast are counted in the database at scrape time.
docs/operations.md lists every metric."""

from __future__ import annotations

import bisect
import contextlib
import ipaddress
import json
import logging
import math
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from flask import Flask, abort, current_app, g, request
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from web import scheduler
from web.database import read_only
from web.extensions import db
from web.logs import security_event

logger = logging.getLogger("yishi.metrics")

EXTENSION = "yishi_metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Upper bounds (seconds) of the request duration histogram's buckets; +Inf follows.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Any other method is counted as OTHER, and a path matching no route as UNMATCHED, so that
# a scanner cannot create unbounded numbers of series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"
# A heartbeat older than this many sweep intervals (the shortest) means a stuck scheduler.
STALE_AFTER_INTERVALS = 3
STALE_AFTER_MIN_SECONDS = 60

# The counter tables: field -> amount.
HTTP_BUCKETS = "http_buckets"  # [method, route, status, bucket index] -> requests
HTTP_SECONDS = "http_seconds"  # [method, route, status] -> seconds in all
JOBS_RUN = "jobs_run"  # sweep name -> runs
JOBS_FAILED = "jobs_failed"  # sweep name -> failed runs

Increment = tuple[str, str, float]


# ---------------------------------------------------------------- counter storage


class MemoryCounters:
    """This process's counters: correct only while one process serves."""

    shared = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(self, increments: Iterable[Increment]) -> None:
        with self._lock:
            for table, field, amount in increments:
                self._tables[table][field] += amount

    def read(self, table: str) -> dict[str, float]:
        with self._lock:
            return dict(self._tables.get(table, {}))


class RedisCounters:
    """Counters in Redis hashes `<prefix>:<table>`, shared by every process that uses the
    same server and prefix. One round trip per request; when Redis does not answer, the
    increments are dropped (and a warning logged once a minute) rather than the request."""

    shared = True

    def __init__(self, uri: str, prefix: str) -> None:
        import redis

        self._errors = redis.RedisError
        # Lazy: no connection (and no thread) until the first request, so a preloading
        # gunicorn master forks without one; redis-py reconnects in a forked child.
        self._client = redis.Redis.from_url(uri, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._prefix = prefix
        self._warned_at = -math.inf

    def add(self, increments: Iterable[Increment]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for table, field, amount in increments:
            key = f"{self._prefix}:{table}"
            if isinstance(amount, int):
                pipe.hincrby(key, field, amount)
            else:
                pipe.hincrbyfloat(key, field, amount)
        try:
            pipe.execute()
        except self._errors as error:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                logger.warning(
                    json.dumps({"event": "metrics_storage_unavailable", "error": repr(error)})
                )

    def read(self, table: str) -> dict[str, float]:
        raw = self._client.hgetall(f"{self._prefix}:{table}")
        return {key.decode(): float(value) for key, value in raw.items()}

    def errors(self) -> type[Exception]:
        return self._errors


def counters_for(uri: str, prefix: str) -> MemoryCounters | RedisCounters:
    if uri.startswith(("redis://", "rediss://", "unix://")):
        return RedisCounters(uri, prefix)
    if not uri.startswith("memory://"):
        logger.warning(
            json.dumps({"event": "metrics_storage_unsupported", "scheme": uri.split(":", 1)[0]})
        )
    return MemoryCounters()


def counters(app: Flask) -> MemoryCounters | RedisCounters:
    return app.extensions[EXTENSION]["counters"]


# ---------------------------------------------------------------- who may read /metrics


def allowed_networks(value) -> tuple:
    """METRICS_ALLOWED: addresses or CIDR networks, as a comma-separated string or a list."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def is_allowed(address: str | None, networks) -> bool:
    """Whether a client address (request.remote_addr, after ProxyFix) is in `networks`."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


# ---------------------------------------------------------------- health


def stale_after_seconds(app: Flask) -> float | None:
    intervals = [scheduler.interval_seconds(app, sweep) for sweep in list(scheduler.sweeps)]
    if not intervals:
        return None
    return max(STALE_AFTER_MIN_SECONDS, STALE_AFTER_INTERVALS * min(intervals))


def health(app: Flask) -> tuple[dict, int]:
    """The database (one trivial query) and this process's scheduler heartbeat.

    503 when the database does not answer; a stale scheduler is reported ("degraded")
    with 200, since taking the process out of a load balancer would not mend it."""
    report: dict = {"status": "ok", "database": "ok"}
    status = 200
    try:
        with read_only():
            db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except SQLAlchemyError as error:
        with contextlib.suppress(SQLAlchemyError):
            db.session.rollback()
        app.logger.warning("health check: database unavailable (%s)", type(error).__name__)
        report.update(status="unavailable", database="unavailable")
        status = 503
    if not scheduler.is_running(app):
        report.update(scheduler="off", heartbeat_age_seconds=None)
        return report, status
    heartbeat = scheduler.last_heartbeat(app)
    if heartbeat is None:
        report.update(scheduler="starting", heartbeat_age_seconds=None)
        return report, status
    age = max(0.0, (datetime.now(UTC) - heartbeat).total_seconds())
    limit = stale_after_seconds(app)
    stale = limit is not None and age > limit
    report.update(scheduler="stale" if stale else "ok", heartbeat_age_seconds=round(age, 3))
    if stale and status == 200:
        report["status"] = "degraded"
    return report, status


# ---------------------------------------------------------------- recording


def _count_request(response):
    started = g.get("request_started")
    seconds = time.perf_counter() - started if started is not None else 0.0
    rule = request.url_rule
    labels = [
        request.method if request.method in METHODS else "OTHER",
        rule.rule if rule is not None else UNMATCHED,
        str(response.status_code),
    ]
    index = bisect.bisect_left(DURATION_BUCKETS, seconds)
    counters(current_app).add(
        [
            (HTTP_BUCKETS, json.dumps([*labels, index]), 1),
            (HTTP_SECONDS, json.dumps(labels), seconds),
        ]
    )
    return response


def _count_sweep(app, job: str, failed: bool, **_ignored) -> None:
    state = getattr(app, "extensions", {}).get(EXTENSION)
    if state is None:
        return
    increments = [(JOBS_RUN, job, 1)]
    if failed:
        increments.append((JOBS_FAILED, job, 1))
    with contextlib.suppress(Exception):  # never break the scheduler's thread
        state["counters"].add(increments)


scheduler.sweep_ran.connect(_count_sweep)


# ---------------------------------------------------------------- the exposition


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _sample(name: str, labels: dict[str, str], value: float) -> str:
    if labels:
        inner = ",".join(f'{key}="{_escape_label(str(val))}"' for key, val in labels.items())
        return f"{name}{{{inner}}} {_number(value)}"
    return f"{name} {_number(value)}"


def _family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")


def _http_series(store) -> tuple[dict[tuple, list[int]], dict[str, float]]:
    series: dict[tuple, list[int]] = {}
    for field, count in store.read(HTTP_BUCKETS).items():
        try:
            method, route, status, index = json.loads(field)
        except (ValueError, TypeError):
            continue  # not ours
        if not isinstance(index, int) or not 0 <= index <= len(DURATION_BUCKETS):
            continue
        counts = series.setdefault((method, route, status), [0] * (len(DURATION_BUCKETS) + 1))
        counts[index] += int(count)
    return series, store.read(HTTP_SECONDS)


def _ballots_cast() -> int:
    from ballots.models import Ballot

    with read_only():
        total = db.session.scalar(select(func.count()).select_from(Ballot))
    db.session.rollback()
    return int(total or 0)


def exposition(app: Flask) -> str:
    store = counters(app)
    series, seconds = _http_series(store)
    runs, failures = store.read(JOBS_RUN), store.read(JOBS_FAILED)
    lines: list[str] = []

    _family(
        lines,
        "yishi_http_requests_total",
        "counter",
        "HTTP requests answered, by method, route (the URL rule) and status.",
    )
    for (method, route, status), counts in sorted(series.items()):
        labels = {"method": method, "route": route, "status": status}
        lines.append(_sample("yishi_http_requests_total", labels, sum(counts)))

    name = "yishi_http_request_duration_seconds"
    _family(lines, name, "histogram", "Time to answer a request, by method, route and status.")
    for (method, route, status), counts in sorted(series.items()):
        labels = {"method": method, "route": route, "status": status}
        running = 0
        for bound, count in zip((*DURATION_BUCKETS, math.inf), counts, strict=True):
            running += count
            le = "+Inf" if bound == math.inf else repr(bound)
            lines.append(_sample(f"{name}_bucket", {**labels, "le": le}, running))
        total = seconds.get(json.dumps([method, route, status]), 0.0)
        lines.append(_sample(f"{name}_sum", labels, total))
        lines.append(_sample(f"{name}_count", labels, running))

    _family(
        lines,
        "yishi_ballots_cast_total",
        "counter",
        "Ballots cast, current and replaced, online and on paper (from the database).",
    )
    lines.append(_sample("yishi_ballots_cast_total", {}, _ballots_cast()))

    jobs = sorted({sweep.name for sweep in scheduler.sweeps} | set(runs) | set(failures))
    _family(lines, "yishi_jobs_run_total", "counter", "Scheduled sweep runs, by job.")
    for job in jobs:
        lines.append(_sample("yishi_jobs_run_total", {"job": job}, runs.get(job, 0)))
    _family(lines, "yishi_jobs_failed_total", "counter", "Sweep runs that failed, by job.")
    for job in jobs:
        lines.append(_sample("yishi_jobs_failed_total", {"job": job}, failures.get(job, 0)))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- wiring


def metrics_view():
    app = current_app._get_current_object()
    state = app.extensions[EXTENSION]
    if not is_allowed(request.remote_addr, state["allowed"]):
        security_event("metrics_refused", path=request.path)
        abort(404)
    store = state["counters"]
    errors = store.errors() if isinstance(store, RedisCounters) else ()
    try:
        body = exposition(app)
    except errors as error:
        logger.warning(json.dumps({"event": "metrics_storage_unavailable", "error": repr(error)}))
        return "metrics storage unavailable\n", 503, {"Content-Type": CONTENT_TYPE}
    return body, 200, {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}


def register_metrics(app: Flask) -> None:
    """Count every request, serve `/metrics` to METRICS_ALLOWED addresses (404 to others)."""
    config = app.config
    uri = config.get("METRICS_STORAGE_URI") or config["RATELIMIT_STORAGE_URI"]
    store = counters_for(uri, config["METRICS_KEY_PREFIX"])
    app.extensions[EXTENSION] = {
        "counters": store,
        "allowed": allowed_networks(config["METRICS_ALLOWED"]),
    }
    if not store.shared and os.environ.get("YISHI_SCHEDULER") == scheduler.IN_WORKERS:
        # Under gunicorn (gunicorn.conf.py): each worker would count only its own requests.
        logger.warning(
            json.dumps(
                {
                    "event": "metrics_not_shared",
                    "hint": "set RATELIMIT_STORAGE_URI=redis://... when serving with gunicorn",
                }
            )
        )
    app.after_request(_count_request)
    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
