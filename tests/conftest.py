"""Shared fixtures: a fresh database per test (SQLite file, or PostgreSQL when
TEST_DATABASE_URL is set), built once per worker by running the migrations, plus small
factories that read like the residents' world."""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
import re
import shutil
import uuid
import warnings
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crypto import passwords

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")

# Property tests check behaviour, not speed: no per-example deadline on a loaded CI machine.
hypothesis_settings.register_profile(
    "yishi", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("yishi")
PASSWORD = "correct horse battery"


def _worker(request) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


def _migrate(uri: str, instance: Path) -> None:
    from flask_migrate import upgrade

    from app import create_app
    from web.extensions import db

    app = create_app(_config(uri, instance))
    with app.app_context():
        upgrade()
        db.engine.dispose()


def _config(uri: str, instance: Path) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "SQLALCHEMY_DATABASE_URI": uri,
        "PASSWORD_COST": passwords.MINIMAL,
        "RATELIMIT_STORAGE_URI": "memory://",
        "SERVER_NAME": None,
    }


def new_postgres_database(url, name: str) -> str:
    """An empty PostgreSQL database `name` on `url`'s server (dropped first if it was
    there); its URL."""
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url, name: str) -> None:
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextlib.contextmanager
def redis_keys(uri: str, label: str, what: str):
    """A key prefix of a test's own in the Redis at `uri` (which must answer), with its
    keys removed afterwards."""
    import redis

    connection = redis.Redis.from_url(uri, socket_timeout=2)
    try:
        connection.ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis must answer at {uri} for {what}: {error!r}")
    prefix = f"{label}:{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        keys = list(connection.scan_iter(match=f"{prefix}*"))
        if keys:
            connection.delete(*keys)
        connection.close()


@pytest.fixture(scope="session")
def database_template(request, tmp_path_factory):
    """Per worker: a migrated SQLite file to copy, or a migrated PostgreSQL database."""
    instance = tmp_path_factory.mktemp("instance")
    os.environ["YISHI_INSTANCE_PATH"] = str(instance)
    if TEST_DATABASE_URL:
        url = make_url(TEST_DATABASE_URL)
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        uri = new_postgres_database(url, f"{url.database}_{_worker(request)}")
        _migrate(uri, instance)
        yield {"kind": "postgresql", "uri": uri, "instance": instance}
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        _migrate(f"sqlite:///{path}", instance)
        yield {"kind": "sqlite", "path": path, "instance": instance}


def _empty_postgres(uri: str) -> None:
    """Empty this worker's database for the next test. A session still open on it belongs
    to a test that has finished (each worker has a database of its own and runs one test
    at a time): a pooled connection, or a server or scheduler that is still shutting down.
    It is ended first, so that TRUNCATE neither waits for it nor deadlocks with it; one
    that was still running a query is reported as a warning."""
    engine = create_engine(uri)
    with engine.begin() as conn:
        busy = (
            conn.execute(
                text(
                    "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state = 'active'"
                )
            )
            .scalars()
            .all()
        )
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        if busy:
            warnings.warn(
                f"{len(busy)} session(s) of an earlier test still running on {uri}: "
                + "; ".join(query[:80] for query in busy),
                stacklevel=2,
            )
    with engine.begin() as conn:
        tables = conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ).scalars()
        names = ", ".join(f'"{t}"' for t in tables)
        if names:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def database_uri(database_template, tmp_path) -> str:
    if database_template["kind"] == "postgresql":
        _empty_postgres(database_template["uri"])
        return database_template["uri"]
    target = tmp_path / "yishi.db"
    shutil.copyfile(database_template["path"], target)
    return f"sqlite:///{target}"


@pytest.fixture
def app_config(database_uri, database_template, tmp_path) -> dict:
    # Uploaded photos go to a folder of this test.
    return dict(
        _config(database_uri, database_template["instance"]),
        UPLOAD_DIR=str(tmp_path / "uploads"),
    )


class IsolatedClient(FlaskClient):
    """Each request runs in a context of its own, as it would in a server: the test's app
    context (its `g` and database session) is not shared with the request's."""

    def open(self, *args, **kwargs):
        from flask import has_app_context

        from web.extensions import db

        if has_app_context():
            # End the test's transaction: the request must see what the test wrote, and
            # the test's next read must see what the request wrote.
            db.session.commit()
        return contextvars.Context().run(super().open, *args, **kwargs)


class EnglishClient(IsolatedClient):
    """A browser that asks for English pages."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def app(app_config):
    from app import create_app
    from web.database import write_intent
    from web.extensions import db

    application = create_app(app_config)
    application.test_client_class = IsolatedClient
    # The test's own session only holds read snapshots between steps; with SQLite a write
    # lock held here would make every request of the test wait for it.
    token = write_intent.set(False)
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()
    write_intent.reset(token)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app):
    from web.extensions import db as database

    return database


# ---------------------------------------------------------------- factories

_counter = itertools.count(1)


@pytest.fixture
def make_user(db):
    from community import services

    def factory(
        name: str | None = None, contact: str | None = None, password: str = PASSWORD, **attrs
    ):
        n = next(_counter)
        user = services.register(
            name or f"Resident {n}",
            contact or f"139{n:08d}",
            password,
            cost=passwords.MINIMAL,
            locale=attrs.pop("locale", "en"),
        )
        for key, value in attrs.items():
            setattr(user, key, value)
        db.session.commit()
        return user

    return factory


@pytest.fixture
def make_community(db):
    from community.models import Community

    def factory(
        name: str | None = None, kind: str = "compound", parent=None, timezone="Asia/Shanghai"
    ):
        community = Community(
            name=name or f"Compound {next(_counter)}", kind=kind, parent=parent, timezone=timezone
        )
        db.session.add(community)
        db.session.flush()
        community.path = f"{parent.path if parent else '/'}{community.id}/"
        db.session.commit()
        return community

    return factory


@pytest.fixture
def make_member(db, make_user):
    from community.models import Membership

    def factory(
        community,
        role: str = "resident",
        status: str = "verified",
        unit: str | None = "auto",
        area=None,
        user=None,
        **user_attrs,
    ):
        user = user or make_user(**user_attrs)
        if unit == "auto":
            unit = None if role in ("moderator", "admin") else f"Building 1, Room {next(_counter)}"
        db.session.add(
            Membership(
                user=user,
                community=community,
                role=role,
                status=status,
                unit=unit,
                private_area=area,
            )
        )
        db.session.commit()
        return user

    return factory


# ---------------------------------------------------------------- clients

_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client, path: str = "/") -> str:
    response = client.get(path)
    match = _TOKEN.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({response.status_code})"
    return match.group(1)


def post_form(client, path: str, data: dict | None = None, token_from: str = "/", **kwargs):
    """POST like a browser does: with the CSRF token of the user's own session."""
    payload = dict(data or {})
    payload.setdefault("csrf_token", csrf_token(client, token_from))
    return client.post(path, data=payload, **kwargs)


def login(client, user_or_contact, password: str = PASSWORD, remember: bool = False):
    contact = getattr(user_or_contact, "phone", None) or getattr(user_or_contact, "email", None)
    contact = contact or user_or_contact
    data = {"contact": contact, "password": password}
    if remember:
        data["remember"] = "y"
    response = post_form(client, "/auth/login", data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return response


@pytest.fixture
def login_as(app):
    """A fresh browser-like client logged in as the given user."""

    def factory(user, password: str = PASSWORD):
        c = app.test_client()
        login(c, user, password)
        return c

    return factory
