"""Engine setup for SQLite (WAL, foreign keys, busy timeout, immediate write
transactions) and PostgreSQL (pre-ping), plus the transaction helpers services use."""

from __future__ import annotations

import contextvars
import os
import weakref
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached

from web.extensions import db

# Whether the next transaction on this thread/context will write. SQLite's deferred BEGIN
# fails at once with "database is locked" when a reader later tries to write while another
# connection writes, whatever busy_timeout says; BEGIN IMMEDIATE takes the write lock up
# front and so waits its turn. Requests that may write (POST) and jobs/CLI/tests set it.
write_intent: contextvars.ContextVar[bool] = contextvars.ContextVar("write_intent", default=True)

SQLITE_BUSY_TIMEOUT_MS = 5000


# Engines whose pooled connections a forked child must not use; one at-fork hook for all.
_engines: weakref.WeakSet = weakref.WeakSet()


def _forget_in_child() -> None:
    for engine in list(_engines):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def forget_connections_after_fork(engine: Engine) -> None:
    """A forked child (a gunicorn worker, the verifier's processes) must not use the
    connections its parent opened: they are dropped from the child's pool without closing
    them; the child opens its own on first use."""
    _engines.add(engine)


def engine_options(uri: str, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> dict:
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10}


def install_sqlite_pragmas(engine: Engine, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Take transaction control away from pysqlite so we can emit our own BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        immediate = write_intent.get()
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
        connection.info["immediate"] = immediate


def reads_first(view):
    """Mark a view whose request reads (the member, the object, the checks) before it
    writes: on SQLite it starts without the write lock, and the service takes it with
    `begin_writing()` just before writing, so the lock is held for the writing only."""
    view.reads_first = True
    return view


def begin_writing() -> None:
    """Make sure this transaction holds SQLite's write lock from here on. A deferred
    transaction that has only read is ended and a BEGIN IMMEDIATE begun in its place
    (upgrading it in place could fail at once with "database is locked"): what is read
    from here on is current; what must not change is re-read under the lock. A no-op on
    PostgreSQL and for transactions begun with the write lock."""
    connection = db.session.connection()
    if connection.dialect.name != "sqlite" or connection.info.get("immediate", True):
        return
    connection.exec_driver_sql("COMMIT")
    connection.exec_driver_sql("BEGIN IMMEDIATE")
    connection.info["immediate"] = True


@contextmanager
def read_only():
    """Run a block whose transaction only reads (a deferred BEGIN on SQLite)."""
    token = write_intent.set(False)
    try:
        yield
    finally:
        write_intent.reset(token)


@contextmanager
def unique_or(conflict: Exception):
    """Writes whose uniqueness the database guards: when a concurrent (or earlier) write
    already holds the value, roll back and raise `conflict` (a 409 for the user)."""
    try:
        yield
    except IntegrityError as error:
        db.session.rollback()
        raise conflict from error


def add_unique(row, conflict: Exception):
    """Add a row and flush it at once, under `unique_or(conflict)`."""
    db.session.add(row)
    with unique_or(conflict):
        db.session.flush()
    return row


def insert_unique(statement, values: dict, conflict: Exception) -> int:
    """Insert one row with a Core statement on the session's connection (no unit-of-work
    flush: the ballot path's rows), under `unique_or(conflict)`; its primary key."""
    with unique_or(conflict):
        result = db.session.connection().execute(statement, values)
    return result.inserted_primary_key[0]


def written_row(row):
    """A row already written with Core, as a detached object that carries every column
    (its primary key included), without a query. It is kept out of the session: a
    rollback then leaves nothing behind under an id the database may hand out again."""
    make_transient_to_detached(row)
    return row


# Made by hand in the migrations, not described by the models: SQLite's full-text index
# (a virtual table and its shadow tables) and PostgreSQL's text-search index.
HAND_MADE_INDEX = "ix_proposals_search"


def migration_include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's filter: what autogenerate and the schema check compare."""
    if type_ == "table" and name.startswith("proposal_fts"):
        return False
    return not (type_ == "index" and name == HAND_MADE_INDEX)
