"""Browser journeys: one live server per session (its own database, real CSRF) served by
Werkzeug in a thread, one Debian Chromium per session, a fresh context per test.

Every browser test is marked `browser` and put in the xdist group "browser", so that under
`pytest -n auto --dist loadgroup` they share one worker, one server and one Chromium.
Nothing here depends on that, though: every worker that gets browser tests has its own live
database (`..._<worker>_live`), server and Chromium. (pytest 9.2 with pytest-xdist 3.8 does
not apply xdist groups at all, pytest-dev/pytest-xdist#1386.)"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from crypto import passwords
from tests.conftest import PASSWORD, TEST_DATABASE_URL, _config, _migrate, _worker

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 5_000

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(item.path).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.xdist_group("browser"))


# ---------------------------------------------------------------- the live server


def _create_live_postgres(request, instance: Path) -> tuple[str, Callable[[], None]]:
    url = make_url(TEST_DATABASE_URL)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = f"{url.database}_{_worker(request)}_live"
    admin_url = url.set(database="postgres")

    def admin(statement: str) -> None:
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(statement))
        engine.dispose()

    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{name}"')
    uri = url.set(database=name).render_as_string(hide_password=False)
    _migrate(uri, instance)
    return uri, lambda: admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class LiveServer:
    url: str
    app: object
    seed: Seed


@pytest.fixture(scope="session")
def live_server(request, tmp_path_factory) -> Iterator[LiveServer]:
    from app import create_app
    from web.extensions import db

    drop = None
    if TEST_DATABASE_URL:
        instance = tmp_path_factory.mktemp("live-instance")
        os.environ.setdefault("YISHI_INSTANCE_PATH", str(instance))
        uri, drop = _create_live_postgres(request, instance)
    else:
        template = request.getfixturevalue("database_template")
        instance = template["instance"]
        path = tmp_path_factory.mktemp("live") / "live.db"
        shutil.copyfile(template["path"], path)
        uri = f"sqlite:///{path}"

    config = _config(uri, instance)
    config.update(
        {
            "TESTING": True,
            "WTF_CSRF_ENABLED": True,  # real CSRF: the browser must send the page's token
            # The Limiter is one object per process and its storage is whichever app was
            # created last: a lockout test of this worker could otherwise lock the browser
            # (also 127.0.0.1) out. Login limits have their own tests.
            "RATELIMIT_ENABLED": False,
        }
    )
    app = create_app(config)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app, seed=Seed(app))
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        if drop:
            drop()


# ---------------------------------------------------------------- seeding the live database

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test of this session uses (the live database is shared)."""
    return f"{prefix} {next(_counter)}"


def unique_phone() -> str:
    return f"138{next(_counter):08d}"


def unique_email(local: str) -> str:
    return f"{local}.{next(_counter)}@example.org"


@dataclass(frozen=True)
class SeededCommunity:
    id: int
    name: str


@dataclass(frozen=True)
class SeededUser:
    id: int
    display_name: str
    contact: str
    password: str = PASSWORD


@dataclass
class Seed:
    """Writes straight into the live server's database, the way tests/conftest.py's
    factories do. Returns plain values, never ORM objects bound to a finished session."""

    app: object
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def community(self, name: str | None = None, kind: str = "compound") -> SeededCommunity:
        from community.models import Community
        from web.extensions import db

        with self._lock, self.app.app_context():
            community = Community(
                name=name or unique("Compound"), kind=kind, timezone="Asia/Shanghai"
            )
            db.session.add(community)
            db.session.flush()
            community.path = f"/{community.id}/"
            db.session.commit()
            seeded = SeededCommunity(community.id, community.name)
            db.session.remove()
            return seeded

    def user(self, name: str | None = None, contact: str | None = None) -> SeededUser:
        from community import services
        from web.extensions import db

        contact = contact or unique_phone()
        with self._lock, self.app.app_context():
            user = services.register(
                name or unique("Resident"), contact, PASSWORD, cost=passwords.MINIMAL, locale=None
            )
            db.session.commit()
            seeded = SeededUser(user.id, user.display_name, contact)
            db.session.remove()
            return seeded

    def member(
        self,
        community: SeededCommunity,
        role: str = "resident",
        status: str = "verified",
        unit: str | None = None,
        user: SeededUser | None = None,
    ) -> SeededUser:
        from community.models import Membership
        from web.extensions import db

        user = user or self.user(unique(role.capitalize()))
        with self._lock, self.app.app_context():
            db.session.add(
                Membership(
                    user_id=user.id,
                    community_id=community.id,
                    role=role,
                    status=status,
                    unit=unit,
                    how_joined="seed",
                )
            )
            db.session.commit()
            db.session.remove()
        return user

    def membership_status(self, user: SeededUser, community: SeededCommunity) -> str | None:
        from sqlalchemy import select

        from community.models import Membership
        from web.extensions import db

        with self._lock, self.app.app_context():
            status = db.session.scalar(
                select(Membership.status).where(
                    Membership.user_id == user.id, Membership.community_id == community.id
                )
            )
            db.session.remove()
            return status

    def user_by_contact(self, contact: str) -> SeededUser:
        from community import services
        from web.extensions import db

        with self._lock, self.app.app_context():
            user = services.find_user_by_contact(contact)
            assert user is not None, f"no user with contact {contact!r}"
            seeded = SeededUser(user.id, user.display_name, contact)
            db.session.remove()
            return seeded


@pytest.fixture
def seed(live_server) -> Seed:
    return live_server.seed


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
            "(apt-get install -y chromium). Do not use `playwright install`.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


# Not a page's doing: Chromium asks for /favicon.ico by itself, and the app serves none
# (see the report that came with these tests). Remove once the app ships an icon.
IGNORED: list[re.Pattern] = []


@dataclass
class ConsoleWatch:
    """Console errors (CSP violations are among them), uncaught page errors, failed
    requests, 404s and server errors seen in the contexts of one test.

    A test that provokes an error status on purpose (a form sent back with errors is a 400)
    says so with `allow(pattern)`."""

    problems: list[str] = field(default_factory=list)
    allowed: list[re.Pattern] = field(default_factory=lambda: list(IGNORED))
    checked: bool = False

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def attach(self, context) -> None:
        def on_console(message):
            if message.type == "error":
                where = message.location.get("url") or (message.page.url if message.page else "?")
                self.problems.append(f"console error at {where}: {message.text}")

        def on_weberror(error):
            self.problems.append(f"uncaught page error: {error.error}")

        def on_requestfailed(request):
            # A navigation cancels what the previous page still loaded: not a fault.
            if request.failure != "net::ERR_ABORTED":
                self.problems.append(f"{request.method} {request.url} failed: {request.failure}")

        def on_response(response):
            if response.status >= 500 or response.status == 404:
                self.problems.append(
                    f"{response.status} for {response.request.method} {response.url}"
                )

        context.on("console", on_console)
        context.on("weberror", on_weberror)
        context.on("requestfailed", on_requestfailed)
        context.on("response", on_response)
        # Chromium logs CSP violations as console errors; this names the directive too.
        context.add_init_script(
            "document.addEventListener('securitypolicyviolation', e => console.error("
            "'CSP violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI));"
        )

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(a.search(p) for a in self.allowed)]

    def assert_clean(self) -> None:
        self.checked = True
        problems = self.unexpected()
        assert not problems, "problems in the browser:\n" + "\n".join(problems)


@pytest.fixture
def console() -> ConsoleWatch:
    return ConsoleWatch()


@pytest.fixture
def new_context(browser, live_server, console):
    """Opens browser contexts (separate cookie jars: separate people) for this test."""
    contexts = []

    def factory(javascript: bool = True, locale: str = "en-US", **kwargs):
        context = browser.new_context(
            base_url=live_server.url,
            locale=locale,
            java_script_enabled=javascript,
            **kwargs,
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        console.attach(context)
        contexts.append(context)
        return context

    yield factory
    for context in contexts:
        context.close()
    if not console.checked:
        console.assert_clean()


@pytest.fixture
def context(new_context):
    return new_context()


@pytest.fixture
def page(context):
    return context.new_page()
