"""The WSGI application `python -m bench.cast` serves with gunicorn:

    DATABASE_URL=sqlite:////tmp/x/bench.db YISHI_INSTANCE_PATH=/tmp/x/instance \\
        .venv/bin/gunicorn -w 2 -b 127.0.0.1:8000 bench.wsgi:app

Not for production: the password cost is the minimal one and there are no rate limits.
`YISHI_BENCH_CONFIG` (JSON) adds settings of a benchmark's own on top of these:
`python -m bench.soak` turns the rate limits back on, relaxed, with Redis storage, and the
scheduler on.
"""

from __future__ import annotations

import json
import os
import tempfile

from app import create_app
from crypto import passwords

BENCH_SECRET_KEY = "bench-secret-key-not-for-production"  # noqa: S105  (a benchmark's own)

if not os.environ.get("YISHI_INSTANCE_PATH"):
    # create_app reads its instance folder from the environment; never the repository's.
    os.environ["YISHI_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="yishi-bench-instance-")

DATABASE_URL = os.environ["DATABASE_URL"]
if DATABASE_URL.startswith("postgresql://"):
    DATABASE_URL = "postgresql+psycopg://" + DATABASE_URL[len("postgresql://") :]

app = create_app(
    {
        "SQLALCHEMY_DATABASE_URI": DATABASE_URL,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or BENCH_SECRET_KEY,
        # Logins are set-up, not what is measured: the seeded password hashes use the
        # minimal Argon2 cost, and a login that verified at INTERACTIVE cost would re-hash.
        "PASSWORD_COST": passwords.MINIMAL,
        # Every benchmark client comes from 127.0.0.1: one address would hit the per-address
        # limits at once. The limiter is not what is measured.
        "RATELIMIT_ENABLED": False,
        "RATELIMIT_STORAGE_URI": "memory://",
        # No background sweeps: the benchmark opens and closes its round itself.
        "SCHEDULER_ENABLED": False,
        **json.loads(os.environ.get("YISHI_BENCH_CONFIG") or "{}"),
    }
)
