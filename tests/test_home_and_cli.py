"""The home page's overview, the command line, and what a busy database does to a request."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from community import services
from community.models import Community, RollEntry, User
from tests.conftest import TEST_DATABASE_URL, login, post_form


def test_home_tells_a_moderator_how_many_requests_wait(
    make_community, make_member, make_user, login_as, db
):
    compound = make_community("Sunny Garden")
    moderator = make_member(compound, role="moderator")
    for _ in range(2):
        services.request_join(make_user(), compound, "Room 1")
    db.session.commit()
    page = login_as(moderator).get("/").get_data(as_text=True)
    assert "2 requests to join are waiting for you" in page
    assert f"/c/{compound.id}/requests" in page


def test_home_does_not_show_request_counts_to_residents(
    make_community, make_member, make_user, login_as, db
):
    compound = make_community("Sunny Garden")
    resident = make_member(compound)
    services.request_join(make_user(), compound, "Room 1")
    db.session.commit()
    page = login_as(resident).get("/").get_data(as_text=True)
    assert "Sunny Garden" in page and "1 verified member" in page
    assert "waiting for you" not in page


def test_seed_demo_prints_logins_and_is_idempotent(app, db):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo", "--if-empty"])
    assert first.exit_code == 0, first.output
    for login_name in ("13800000001", "13800000003", "13800000005"):
        assert login_name in first.output
    users = db.session.scalar(select(func.count(User.id)))
    again = runner.invoke(args=["seed-demo", "--if-empty"])
    assert again.exit_code == 0 and "13800000005" in again.output
    assert db.session.scalar(select(func.count(User.id))) == users
    assert runner.invoke(args=["seed-demo"]).exit_code != 0


def test_demo_logins_work(app, db, client):
    app.test_cli_runner().invoke(args=["seed-demo"])
    for phone, password in (("13800000001", "demo-resident"), ("13800000004", "demo-committee")):
        c = app.test_client()
        login(c, phone, password)
        assert "阳光花园小区" in c.get("/").get_data(as_text=True)


def test_create_admin_makes_a_site_administrator(app, db):
    result = app.test_cli_runner().invoke(
        args=["create-admin", "--name", "Admin Two", "--contact", "admin@example.org"],
        input="a-long-password\na-long-password\n",
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "admin@example.org"))
    assert user.is_admin


def test_create_admin_refuses_a_taken_contact(app, db, make_user):
    make_user(contact="taken@example.org")
    result = app.test_cli_runner().invoke(
        args=["create-admin", "--name", "Other", "--contact", "taken@example.org"],
        input="a-long-password\na-long-password\n",
    )
    assert result.exit_code != 0
    assert "Error:" in result.output
    assert db.session.scalar(select(func.count(User.id)).where(User.is_admin)) == 0


def test_import_roll_from_the_command_line(app, db, make_community, tmp_path):
    compound = make_community("Sunny Garden")
    roll = tmp_path / "roll.csv"
    roll.write_text("unit,owner_name,phone,private_area\nRoom 1,Chen Wei,13700000001,88.8\n")
    result = app.test_cli_runner().invoke(
        args=["import-roll", str(compound.id), str(roll), "--invites"]
    )
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output
    assert "Room 1\t" in result.output  # the household's printed code
    assert db.session.scalar(select(RollEntry.private_area)) == Decimal("88.80")


def test_import_roll_from_the_command_line_reports_bad_lines(app, db, make_community, tmp_path):
    compound = make_community("Sunny Garden")
    roll = tmp_path / "roll.csv"
    roll.write_text("unit,owner_name,phone,private_area\nRoom 1,Chen Wei,,abc\n")
    result = app.test_cli_runner().invoke(args=["import-roll", str(compound.id), str(roll)])
    assert result.exit_code != 0
    assert "line 2" in result.output and "Nothing was imported" in result.output
    assert db.session.scalar(select(func.count(RollEntry.id))) == 0


def test_admin_creates_a_child_community_through_the_form(
    db, make_community, make_member, login_as
):
    street = make_community("Happiness Street", kind="street")
    admin = make_member(street, role="admin")
    client = login_as(admin)
    response = post_form(
        client,
        f"/c/{street.id}/new",
        {"name": "Happiness Community", "kind": "community", "timezone": "Asia/Shanghai"},
    )
    assert response.status_code == 302
    child = db.session.scalar(select(Community).where(Community.name == "Happiness Community"))
    assert child.parent_id == street.id and child.path == f"{street.path}{child.id}/"
    bad = post_form(
        client,
        f"/c/{street.id}/new",
        {"name": "Building 1", "kind": "building", "timezone": "Asia/Shanghai"},
    )
    assert bad.status_code == 400
    unknown_zone = post_form(
        client, f"/c/{street.id}/new", {"name": "X", "kind": "community", "timezone": "Mars/Base"}
    )
    assert unknown_zone.status_code == 400 and "Unknown time zone" in unknown_zone.get_data(
        as_text=True
    )


@pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="SQLite's write lock; PostgreSQL has row locks")
def test_a_write_blocked_by_a_held_sqlite_lock_gets_503_not_500(app_config, make_user):
    """T19: another writer holds the lock longer than the busy timeout: a clear 503 with
    Retry-After, never a 500, and the request can be retried once the lock is gone."""
    from app import create_app

    app = create_app(dict(app_config, SQLITE_BUSY_TIMEOUT_MS=200))
    user = make_user()
    client = app.test_client()
    with app.app_context():
        login(client, user)
    path = app_config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        response = post_form(
            client,
            "/settings/text-size",
            {"size": "large", "next": "/"},
            headers={"Accept-Language": "en"},
        )
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert "busy" in response.get_data(as_text=True)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    retry = post_form(client, "/settings/text-size", {"size": "large", "next": "/"})
    assert retry.status_code == 302


def test_home_tells_what_proposals_are_under_way(make_community, make_member, login_as, db):
    from deliberation import services as deliberation

    compound = make_community("Sunny Garden")
    author = make_member(compound)
    deliberation.submit_proposal(
        author,
        compound,
        deliberation.ProposalDraft("Lift for Building 3", "Many elderly residents.", "facilities"),
        publish=True,
    )
    db.session.commit()
    page = login_as(author).get("/").get_data(as_text=True)
    assert "1 proposal is collecting support" in page
    assert "1 new proposal this week" in page
    assert f"/c/{compound.id}/proposals" in page
