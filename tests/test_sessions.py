"""Sessions and invitations: fixation, replay after logout, password change and
deactivation, remember-me, cookie flags, and one-time invitation codes
(RELIABILITY.md T22-T26)."""

from __future__ import annotations

import html
import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from werkzeug.http import parse_date

from community import services
from community.models import Membership, RollEntry, User, utcnow
from crypto.passwords import verify_password
from tests.conftest import PASSWORD, EnglishClient, csrf_token, login, post_form

SESSION = "yishi_session"
REMEMBER = "yishi_remember"
INVALID_CODE = "This invitation code is not valid, has expired or was already used."


@pytest.fixture(autouse=True)
def _browser_like_requests(app):
    app.test_client_class = EnglishClient


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def is_logged_in(client) -> bool:
    response = client.get("/profile")
    if response.status_code == 200:
        return True
    assert response.status_code == 302, response.status_code
    assert response.headers["Location"] == "/auth/login?next=/profile"
    return False


def browser_with_cookies(app, **cookies):
    """Another device, carrying only the given (copied) cookies."""
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client


def cookie_value(client, name: str) -> str:
    cookie = client.get_cookie(name)
    assert cookie is not None, f"no {name} cookie"
    return cookie.value


def set_cookie_header(response, name: str) -> str | None:
    for header in response.headers.getlist("Set-Cookie"):
        if header.split("=", 1)[0] == name:
            return header
    return None


def cookie_attributes(header: str) -> dict[str, str]:
    attributes = {}
    for part in header.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        attributes[key.lower()] = value
    return attributes


def logout(client):
    response = post_form(client, "/auth/logout", token_from="/profile")
    assert response.status_code == 302
    return response


def change_password(client, current: str, new: str):
    token = csrf_token(client, "/profile")
    return client.post(
        "/profile/password",
        data={"pw-csrf_token": token, "pw-current": current, "pw-new": new},
    )


def security_events(caplog, name: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "yishi.security" and f'"event": "{name}"' in r.getMessage()
    ]


# ---------------------------------------------------------------- fixation (T22)


def test_the_session_cookie_changes_at_login(app, client, make_user):
    user = make_user()
    client.get("/auth/login")
    before = cookie_value(client, SESSION)

    login(client, user)

    assert cookie_value(client, SESSION) != before
    # Someone holding the pre-login cookie (a fixed session) is not logged in.
    assert not is_logged_in(browser_with_cookies(app, **{SESSION: before}))
    assert is_logged_in(client)


def test_a_csrf_token_from_before_login_is_refused_after_login(client, db, make_user, caplog):
    caplog.set_level(logging.INFO, logger="yishi.security")
    user = make_user(name="Wang Fang")
    old_token = csrf_token(client)
    login(client, user)

    response = client.post(
        "/profile",
        data={"csrf_token": old_token, "display_name": "Mallory", "locale": "en", "submit": "1"},
    )

    assert response.status_code == 400
    assert "This form has expired or did not come from this site." in text_of(response)
    assert security_events(caplog, "csrf_failure")
    assert db.session.get(User, user.id).display_name == "Wang Fang"
    # The same form with the session's own token goes through.
    response = post_form(
        client,
        "/profile",
        {"display_name": "Wang Fang 2", "locale": "en", "submit": "1"},
        token_from="/profile",
    )
    assert response.status_code == 302
    assert db.session.get(User, user.id).display_name == "Wang Fang 2"


# ---------------------------------------------------------------- replay (T23, T25)


def test_a_copied_session_cookie_is_dead_after_logout(app, make_user, login_as):
    client = login_as(make_user())
    copied = cookie_value(client, SESSION)

    logout(client)

    assert not is_logged_in(client)
    assert not is_logged_in(browser_with_cookies(app, **{SESSION: copied}))


def test_changing_the_password_logs_out_other_devices(app, db, make_user, login_as):
    user = make_user()
    phone, laptop = login_as(user), login_as(user)
    copied = cookie_value(phone, SESSION)

    response = change_password(laptop, PASSWORD, "a brand new passphrase")

    assert response.status_code == 302
    assert "Password changed. Other devices have been logged out." in text_of(
        laptop.get("/profile")
    )
    assert is_logged_in(laptop)
    assert not is_logged_in(phone)
    assert not is_logged_in(browser_with_cookies(app, **{SESSION: copied}))
    old_password = {"contact": user.phone, "password": PASSWORD}
    assert post_form(app.test_client(), "/auth/login", old_password).status_code == 400
    login(phone, user, "a brand new passphrase")
    assert is_logged_in(phone)


def test_a_wrong_current_password_changes_nothing(db, make_user, login_as):
    user = make_user()
    laptop, phone = login_as(user), login_as(user)
    version = db.session.get(User, user.id).session_version

    response = change_password(laptop, "not my password", "a brand new passphrase")

    assert response.status_code == 400
    assert "The current password is wrong." in text_of(response)
    assert db.session.get(User, user.id).session_version == version
    assert is_logged_in(laptop)
    assert is_logged_in(phone)


def test_guessing_the_current_password_from_a_session_is_limited(db, make_user, login_as):
    """T21 for a logged-in session: the current-password check counts as a failed login,
    so a stolen cookie cannot be used to guess the password, however fast it asks."""
    user = make_user()
    laptop = login_as(user)
    for _ in range(5):
        assert change_password(laptop, "a guess", "a brand new passphrase").status_code == 400

    locked = change_password(laptop, PASSWORD, "a brand new passphrase")

    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "60"
    assert "Too many attempts. Please wait a minute and try again." in text_of(locked)
    db.session.expire_all()
    assert verify_password(db.session.get(User, user.id).password_hash, PASSWORD)  # unchanged
    assert is_logged_in(laptop)  # the limit logs nobody out
    # The same counter guards the login form: the guesses count there too.
    attempt = {"contact": user.phone, "password": PASSWORD}
    assert post_form(laptop.application.test_client(), "/auth/login", attempt).status_code == 429


def test_a_deactivated_members_cookie_is_dead(app, db, make_user, login_as):
    admin = make_user(is_admin=True)
    user = make_user()
    client = login_as(user)
    copied = cookie_value(client, SESSION)

    services.set_active(admin, user, False)
    db.session.commit()

    assert not is_logged_in(browser_with_cookies(app, **{SESSION: copied}))


def test_a_deactivated_members_very_next_request_is_anonymous(
    db, make_user, make_community, login_as
):
    compound = make_community("Sunny Garden")
    admin = make_user(is_admin=True)
    user = make_user(name="Wang Fang")
    client = login_as(user)
    assert "Wang Fang" in text_of(client.get("/profile"))
    token = csrf_token(client, "/profile")

    services.set_active(admin, user, False)
    db.session.commit()

    home = text_of(client.get("/"))
    assert "My profile" not in home
    assert "Log in" in home
    assert not is_logged_in(client)
    response = client.post(
        f"/c/{compound.id}/join", data={"csrf_token": token, "unit": "Building 1, Room 101"}
    )
    assert response.status_code == 401
    assert db.session.scalar(select(func.count(Membership.id))) == 0


def test_a_reactivated_member_logs_in_again_but_old_cookies_stay_dead(app, db, make_user, login_as):
    admin = make_user(is_admin=True)
    user = make_user()
    copied = cookie_value(login_as(user), SESSION)
    services.set_active(admin, user, False)
    db.session.commit()

    services.set_active(admin, user, True)
    db.session.commit()

    assert not is_logged_in(browser_with_cookies(app, **{SESSION: copied}))
    assert is_logged_in(login_as(user))


# ---------------------------------------------------------------- remember me


def test_the_remember_cookie_alone_logs_you_in(app, client, make_user):
    user = make_user()
    login(client, user, remember=True)
    remembered = cookie_value(client, REMEMBER)

    client.delete_cookie(SESSION)

    assert is_logged_in(client)
    assert is_logged_in(browser_with_cookies(app, **{REMEMBER: remembered}))


def test_without_remember_me_no_remember_cookie_is_set(client, make_user):
    login(client, make_user())

    assert client.get_cookie(REMEMBER) is None


def test_an_old_remember_cookie_is_dead_after_logout(app, client, make_user):
    login(client, make_user(), remember=True)
    remembered = cookie_value(client, REMEMBER)

    logout(client)

    assert not is_logged_in(browser_with_cookies(app, **{REMEMBER: remembered}))
    assert not is_logged_in(client)


def test_logout_removes_the_remember_cookie_from_the_browser(client, make_user):
    login(client, make_user(), remember=True)

    logout(client)

    assert client.get_cookie(REMEMBER) is None, "the remember-me cookie outlived the logout"


def test_an_old_remember_cookie_is_dead_after_a_password_change(app, make_user, login_as):
    user = make_user()
    phone = app.test_client()
    login(phone, user, remember=True)
    remembered = cookie_value(phone, REMEMBER)

    assert change_password(login_as(user), PASSWORD, "a brand new passphrase").status_code == 302

    assert not is_logged_in(browser_with_cookies(app, **{REMEMBER: remembered}))


def test_an_old_remember_cookie_is_dead_after_deactivation(app, db, make_user):
    admin = make_user(is_admin=True)
    user = make_user()
    client = app.test_client()
    login(client, user, remember=True)
    remembered = cookie_value(client, REMEMBER)

    services.set_active(admin, user, False)
    db.session.commit()

    assert not is_logged_in(browser_with_cookies(app, **{REMEMBER: remembered}))


# ---------------------------------------------------------------- cookie flags (T24)


def seconds_until(expires: str) -> float:
    return (parse_date(expires) - datetime.now(UTC)).total_seconds()


def test_default_cookies_are_httponly_and_samesite_lax(client, make_user):
    user = make_user()
    response = post_form(
        client, "/auth/login", {"contact": user.phone, "password": PASSWORD, "remember": "y"}
    )
    assert response.status_code == 302

    session_header = set_cookie_header(response, SESSION)
    assert session_header, response.headers.getlist("Set-Cookie")
    session_flags = cookie_attributes(session_header)
    assert "httponly" in session_flags
    assert session_flags["samesite"].lower() == "lax"
    assert session_flags["path"] == "/"
    assert "domain" not in session_flags
    assert abs(seconds_until(session_flags["expires"]) - 12 * 3600) < 120

    remember_flags = cookie_attributes(set_cookie_header(response, REMEMBER))
    assert "httponly" in remember_flags
    assert remember_flags["samesite"].lower() == "lax"
    assert abs(seconds_until(remember_flags["expires"]) - 30 * 86400) < 120


def test_production_cookies_are_host_only_secure_and_httponly(app_config, monkeypatch, make_user):
    from app import create_app

    monkeypatch.setenv("YISHI_ENV", "production")
    production = create_app(dict(app_config))
    production.test_client_class = EnglishClient
    user = make_user()
    client = production.test_client()
    https = {"base_url": "https://localhost", "headers": {"Referer": "https://localhost/"}}
    page = client.get("/auth/login", **https).get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)

    response = client.post(
        "/auth/login",
        data={"csrf_token": token, "contact": user.phone, "password": PASSWORD, "remember": "y"},
        **https,
    )

    assert response.status_code == 302, text_of(response)[:500]
    assert production.config["SESSION_COOKIE_NAME"].startswith("__Host-")
    session_header = set_cookie_header(response, production.config["SESSION_COOKIE_NAME"])
    assert session_header, response.headers.getlist("Set-Cookie")
    session_flags = cookie_attributes(session_header)
    assert {"secure", "httponly"} <= session_flags.keys()
    assert session_flags["path"] == "/"
    assert "domain" not in session_flags
    assert session_flags["samesite"].lower() == "lax"

    remember_name = production.config["REMEMBER_COOKIE_NAME"]
    remember_header = set_cookie_header(response, remember_name)
    assert remember_header, response.headers.getlist("Set-Cookie")
    remember_flags = cookie_attributes(remember_header)
    assert {"secure", "httponly"} <= remember_flags.keys()
    assert remember_flags["path"] == "/"
    assert "domain" not in remember_flags
    assert abs(seconds_until(remember_flags["expires"]) - 30 * 86400) < 120
    assert "max-age=31536000" in response.headers["Strict-Transport-Security"]
    assert client.get("/profile", **https).status_code == 200


# ---------------------------------------------------------------- invitations (T26)

ROLL = """unit,owner_name,phone,private_area
"Building 1, Room 101",Wang Fang,13900000001,88.50
"Building 1, Room 102",Li Wei,,
"""


@pytest.fixture
def invited(db, make_user, make_community):
    """A compound with a roll of two households, each with a fresh invitation code."""

    def factory(name: str = "Sunny Garden", roll: str = ROLL):
        admin = make_user(is_admin=True)
        community = make_community(name)
        services.import_roll(admin, community, roll)
        issued = services.issue_invites(admin, community)
        db.session.commit()
        return community, {entry.unit: code for entry, code in issued}

    return factory


def redeem(client, code: str):
    return post_form(client, "/join/code", {"code": code}, token_from="/join/code")


def roll_entry(db, community, unit: str = "Building 1, Room 101") -> RollEntry:
    return db.session.scalar(
        select(RollEntry).where(RollEntry.community_id == community.id, RollEntry.unit == unit)
    )


def memberships_of(db, user) -> list[Membership]:
    return list(db.session.scalars(select(Membership).where(Membership.user_id == user.id)))


def test_an_invitation_makes_you_an_owner_of_that_community_only(db, make_user, login_as, invited):
    sunny, codes = invited("Sunny Garden")
    other, _ = invited("Riverside")
    user = make_user()

    response = redeem(login_as(user), codes["Building 1, Room 101"])

    assert response.status_code == 302
    assert response.headers["Location"] == f"/c/{sunny.id}"
    [membership] = memberships_of(db, user)
    assert membership.community_id == sunny.id != other.id
    assert (membership.status, membership.role, membership.how_joined) == (
        "verified",
        "owner",
        "invite",
    )
    assert membership.unit == "Building 1, Room 101"
    assert membership.private_area == Decimal("88.50")
    entry = roll_entry(db, sunny)
    assert entry.invite_used_by_id == user.id
    assert entry.invite_used_at is not None
    assert roll_entry(db, other).invite_used_at is None


def test_an_invitation_without_an_area_makes_you_a_resident(db, make_user, login_as, invited):
    _, codes = invited()
    user = make_user()

    assert redeem(login_as(user), codes["Building 1, Room 102"]).status_code == 302

    [membership] = memberships_of(db, user)
    assert (membership.role, membership.unit, membership.private_area) == (
        "resident",
        "Building 1, Room 102",
        None,
    )


def test_a_code_typed_in_lower_case_with_spaces_works(db, make_user, login_as, invited):
    community, codes = invited()
    user = make_user()
    typed = "  " + codes["Building 1, Room 101"].lower().replace("-", " ") + " "

    response = redeem(login_as(user), typed)

    assert response.status_code == 302
    [membership] = memberships_of(db, user)
    assert membership.community_id == community.id


def test_a_code_works_only_once(db, make_user, login_as, invited):
    community, codes = invited()
    first, second = make_user(), make_user()
    code = codes["Building 1, Room 101"]
    assert redeem(login_as(first), code).status_code == 302

    response = redeem(login_as(second), code)

    assert response.status_code == 400
    assert INVALID_CODE in text_of(response)
    assert memberships_of(db, second) == []
    entry = roll_entry(db, community)
    assert entry.invite_used_by_id == first.id


def test_an_expired_code_is_refused(db, make_user, login_as, invited):
    community, codes = invited()
    entry = roll_entry(db, community)
    entry.invite_expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    user = make_user()

    response = redeem(login_as(user), codes["Building 1, Room 101"])

    assert response.status_code == 400
    assert INVALID_CODE in text_of(response)
    assert memberships_of(db, user) == []
    db.session.refresh(entry)
    assert entry.invite_used_at is None


def test_issuing_codes_again_voids_the_earlier_unused_code(db, make_user, login_as, invited):
    community, codes = invited()
    services.issue_invites(make_user(is_admin=True), community)
    db.session.commit()
    user = make_user()

    response = redeem(login_as(user), codes["Building 1, Room 101"])

    assert response.status_code == 400
    assert memberships_of(db, user) == []


@pytest.mark.parametrize("code", ["", "ABCDE-FGHJK", "x" * 41])
def test_a_made_up_or_malformed_code_is_refused(db, make_user, login_as, invited, code):
    invited()
    user = make_user()

    response = redeem(login_as(user), code)

    assert response.status_code == 400
    assert memberships_of(db, user) == []


def test_redeeming_needs_a_login(client, db, invited):
    _, codes = invited()

    response = client.post(
        "/join/code",
        data={"csrf_token": csrf_token(client), "code": codes["Building 1, Room 101"]},
    )

    assert response.status_code == 401
    assert db.session.scalar(select(func.count(Membership.id))) == 0


def test_invitation_codes_never_reach_the_logs(db, make_user, login_as, invited, caplog):
    caplog.set_level(logging.INFO)
    _, codes = invited()

    redeem(login_as(make_user()), codes["Building 1, Room 101"])

    assert security_events(caplog, "invites_issued")
    assert security_events(caplog, "invite_redeemed")
    for record in caplog.records:
        logged = record.getMessage() + repr(record.args)
        for code in codes.values():
            assert code not in logged
            assert code.replace("-", "") not in logged


def test_a_refused_code_outside_a_web_request_raises_the_invitation_error(db, make_user, invited):
    """Services are called by jobs and the command line too, where there is no request."""
    invited()
    user = make_user()

    with pytest.raises(services.InviteInvalid):
        services.redeem_invite(user, "ABCDE-FGHJK")


def test_two_people_typing_one_code_at_once_make_one_membership(app, db, make_user, invited):
    from web.extensions import db as database

    community, codes = invited()
    code = codes["Building 1, Room 101"]
    user_ids = [make_user().id, make_user().id]
    db.session.commit()
    barrier = threading.Barrier(len(user_ids), timeout=30)
    outcomes: dict[int, str] = {}

    def redeem_in_own_session(user_id: int) -> None:
        # Like a web request: its own application context and database session.
        with app.test_request_context("/join/code", method="POST"):
            try:
                user = database.session.get(User, user_id)
                database.session.commit()
                barrier.wait()
                services.redeem_invite(user, code)
                database.session.commit()
                outcomes[user_id] = "joined"
            except services.InviteInvalid:
                database.session.rollback()
                outcomes[user_id] = "refused"
            except Exception as error:  # every thread's answer is asserted below
                database.session.rollback()
                outcomes[user_id] = f"error: {error!r}"
            finally:
                database.session.remove()

    threads = [threading.Thread(target=redeem_in_own_session, args=(i,)) for i in user_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    members = list(
        db.session.scalars(select(Membership).where(Membership.community_id == community.id))
    )
    assert len(members) == 1, [(m.user_id, m.unit) for m in members]
    assert sorted(outcomes.values()) == ["joined", "refused"], outcomes
    winner = next(i for i, outcome in outcomes.items() if outcome == "joined")
    assert members[0].user_id == winner
    entry = roll_entry(db, community)
    assert entry.invite_used_by_id == winner
