"""Registration, login, the `next` redirect, brute-force limits and the security log
(RELIABILITY.md T21, T37, T41, T47)."""

from __future__ import annotations

import html
import json
import logging
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from community.models import User
from tests.conftest import PASSWORD, EnglishClient, csrf_token, login, post_form

ROOT = Path(__file__).resolve().parent.parent
WRONG_MESSAGE = "The phone number/email or the password is wrong."
TOO_MANY = "Too many attempts. Please wait a minute and try again."


@pytest.fixture(autouse=True)
def _browser_like_requests(app):
    app.test_client_class = EnglishClient


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def count_users(db) -> int:
    return db.session.scalar(select(func.count(User.id)))


def fresh_client(app, ip: str | None = None):
    client = app.test_client()
    if ip:
        client.environ_base["REMOTE_ADDR"] = ip
    return client


def random_ip() -> str:
    return "10.{}.{}.{}".format(*(secrets.randbelow(250) + 1 for _ in range(3)))


def random_phone() -> str:
    return f"137{secrets.randbelow(10**8):08d}"


def attempt_login(client, contact: str, password: str, **kwargs):
    token = csrf_token(client)
    return client.post(
        "/auth/login",
        data={"csrf_token": token, "contact": contact, "password": password},
        **kwargs,
    )


def register(client, name: str, contact: str, password: str = PASSWORD, **extra):
    data = {"display_name": name, "contact": contact, "password": password, **extra}
    return post_form(client, "/auth/register", data, token_from="/auth/register")


def error_notice(response) -> str:
    match = re.search(
        r'<div class="notice notice--error" role="alert">(.*?)</div>',
        response.get_data(as_text=True),
        re.S,
    )
    assert match, "no error notice on the page"
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).strip()


def is_logged_in(client) -> bool:
    response = client.get("/profile")
    if response.status_code == 200:
        return True
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")
    return False


# ---------------------------------------------------------------- registration


def test_registration_logs_you_in_and_sends_you_to_the_communities(client, db):
    response = register(client, "Wang Fang", "+86 138 0013 8000")

    assert response.status_code == 302
    assert response.headers["Location"] == "/communities"
    assert "Welcome, Wang Fang!" in text_of(client.get("/communities"))
    profile = client.get("/profile")
    assert profile.status_code == 200
    assert 'value="Wang Fang"' in profile.get_data(as_text=True)
    user = db.session.scalar(select(User))
    assert (user.display_name, user.phone, user.email) == ("Wang Fang", "13800138000", None)
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_registering_a_phone_number_again_shows_the_form_with_a_conflict(client, db, make_user):
    make_user(name="Wang Fang", contact="13800138000")

    response = register(client, "Li Wei", "+86 138-0013-8000")

    assert response.status_code == 409
    page = text_of(response)
    assert "An account with this phone number or email already exists." in page
    assert 'action="/auth/register"' in page
    assert 'value="Li Wei"' in page
    assert count_users(db) == 1
    assert not is_logged_in(client)


def test_registering_an_email_again_in_other_letter_case_is_a_conflict(client, db, make_user):
    make_user(name="Wang Fang", contact="wang.fang@example.com")

    response = register(client, "Li Wei", "Wang.Fang@Example.COM")

    assert response.status_code == 409
    assert "An account with this phone number or email already exists." in text_of(response)
    assert count_users(db) == 1


@pytest.mark.parametrize(
    "impostor",
    [
        "admin",
        "Admin",
        "ＡＤＭＩＮ",  # fullwidth
        "A.D.M.I.N",
        "ad min",
        "\u0430dmin",  # Cyrillic а
        "\u0251dmin",  # Latin alpha ɑ
        "adm\u0131n",  # dotless ı
    ],
)
def test_a_name_that_looks_like_an_existing_one_is_refused(client, db, make_user, impostor):
    make_user(name="admin")

    response = register(client, impostor, random_phone())

    assert response.status_code in (400, 409), response.status_code
    page = text_of(response)
    assert (
        "This name is already used by another member, or looks too much like it." in page
        or "Please do not mix Latin letters with Cyrillic or Greek ones." in page
    )
    assert count_users(db) == 1
    assert not is_logged_in(client)


def test_a_name_in_cyrillic_letters_that_spells_an_existing_latin_name_is_refused(
    client, db, make_user
):
    make_user(name="Tom")

    response = register(client, "\u0422\u043e\u043c", random_phone())  # Cyrillic "Том"

    assert response.status_code == 409
    assert count_users(db) == 1


@pytest.mark.parametrize(
    "name",
    [
        "Wang\u202eFang",  # right-to-left override
        "Wang\u200bFang",  # zero-width space
        "Wang\u2066Fang\u2069",  # isolate
        'Wang\n{"event": "forged"}',
    ],
)
def test_names_with_invisible_or_control_characters_are_refused(client, db, name):
    response = register(client, name, random_phone())

    assert response.status_code == 400
    assert "Please remove invisible or control characters" in text_of(response)
    assert count_users(db) == 0


@pytest.mark.parametrize("name", ["former resident", "Former  Resident", "已注销居民"])
def test_the_name_deleted_accounts_are_shown_with_is_refused(client, db, name):
    response = register(client, name, random_phone())

    assert response.status_code == 400
    assert "This name shows deleted accounts" in text_of(response)
    assert count_users(db) == 0


def test_a_short_password_is_refused_with_a_message(client, db):
    response = register(client, "Wang Fang", random_phone(), password="short")

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    match = re.search(r'id="password-error"[^>]*>([^<]+)<', page)
    assert match, "no message tied to the password field"
    assert "8" in match.group(1)
    assert count_users(db) == 0


@pytest.mark.parametrize("missing", ["display_name", "contact", "password"])
def test_a_missing_field_is_refused_with_a_message(client, db, missing):
    data = {"display_name": "Wang Fang", "contact": random_phone(), "password": PASSWORD}
    del data[missing]

    response = post_form(client, "/auth/register", data, token_from="/auth/register")

    assert response.status_code == 400
    assert re.search(
        rf'id="{missing}-error"[^>]*>Please fill this in\.<', response.get_data(as_text=True)
    )
    assert count_users(db) == 0


def test_an_invalid_contact_is_refused(client, db):
    response = register(client, "Wang Fang", "call me maybe")

    assert response.status_code == 400
    assert "Please enter a valid mobile number or email address." in text_of(response)
    assert count_users(db) == 0


# ---------------------------------------------------------------- login


def test_login_with_the_right_password_opens_a_session(client, make_user):
    user = make_user(name="Wang Fang")

    response = login(client, user)

    assert response.headers["Location"] == "/"
    assert is_logged_in(client)


def test_a_login_accepts_the_phone_number_as_people_type_it(client, make_user):
    make_user(contact="13800138000")

    response = attempt_login(client, "+86 138-0013-8000", PASSWORD)

    assert response.status_code == 302
    assert is_logged_in(client)


def test_wrong_password_and_unknown_account_look_the_same(app, make_user):
    user = make_user(contact="13800138000")
    answers = {}
    for case, contact in {
        "wrong password": user.phone,
        "unknown phone": "13999999999",
        "unknown email": "nobody@example.com",
        "not a contact": "hello",
    }.items():
        client = fresh_client(app)
        response = attempt_login(client, contact, "not the password")
        answers[case] = (response.status_code, error_notice(response))
        assert not is_logged_in(client)

    assert set(answers.values()) == {(400, WRONG_MESSAGE)}, answers


def test_a_deactivated_account_cannot_log_in(client, make_user):
    user = make_user(is_active=False)

    response = attempt_login(client, user.phone, PASSWORD)

    assert response.status_code == 400
    assert error_notice(response) == WRONG_MESSAGE
    assert not is_logged_in(client)


def test_a_login_without_a_csrf_token_is_refused(client, make_user):
    user = make_user()

    response = client.post("/auth/login", data={"contact": user.phone, "password": PASSWORD})

    assert response.status_code == 400
    assert "This form has expired or did not come from this site." in text_of(response)
    assert not is_logged_in(client)


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example",
        "http:evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        " //evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
    ],
)
def test_login_never_redirects_off_site(client, make_user, target):
    user = make_user()

    response = post_form(
        client, "/auth/login", {"contact": user.phone, "password": PASSWORD, "next": target}
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example", "/\\evil"])
def test_a_logged_in_visit_to_the_login_page_never_redirects_off_site(make_user, login_as, target):
    client = login_as(make_user())

    response = client.get("/auth/login", query_string={"next": target})

    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_login_follows_a_same_site_next_path(client, make_user):
    user = make_user()
    page = client.get("/auth/login?next=/profile").get_data(as_text=True)
    assert 'value="/profile"' in page

    response = post_form(
        client, "/auth/login", {"contact": user.phone, "password": PASSWORD, "next": "/profile"}
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/profile"


def test_visiting_a_members_page_logged_out_comes_back_after_login(client, make_user):
    user = make_user()

    response = client.get("/profile")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login?next=/profile"
    login_page = client.get(response.headers["Location"])
    assert 'value="/profile"' in login_page.get_data(as_text=True)
    response = post_form(
        client, "/auth/login", {"contact": user.phone, "password": PASSWORD, "next": "/profile"}
    )
    assert response.headers["Location"] == "/profile"


# ---------------------------------------------------------------- brute force (T21)


def test_an_account_locks_after_five_failed_logins_even_for_the_right_password(app, make_user):
    user = make_user()
    client = fresh_client(app)
    for _ in range(5):
        assert attempt_login(client, user.phone, "guess guess").status_code == 400

    locked = attempt_login(client, user.phone, PASSWORD)

    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert TOO_MANY in text_of(locked)
    assert not is_logged_in(client)


def test_the_account_limit_holds_across_addresses(app, make_user):
    user = make_user()
    for _ in range(5):
        response = attempt_login(fresh_client(app, random_ip()), user.phone, "guess guess")
        assert response.status_code == 400

    locked = attempt_login(fresh_client(app, random_ip()), user.phone, PASSWORD)

    assert locked.status_code == 429
    assert "Retry-After" in locked.headers


def test_the_account_limit_counts_every_way_of_writing_the_same_phone(app, make_user):
    user = make_user(contact="13912345678")
    variants = [
        "13912345678",
        "139 1234 5678",
        "139-1234-5678",
        "+86 139 1234 5678",
        "0086 13912345678",
    ]
    for variant in variants:
        response = attempt_login(fresh_client(app, random_ip()), variant, "guess guess")
        assert response.status_code == 400

    locked = attempt_login(fresh_client(app, random_ip()), "+8613912345678", PASSWORD)

    assert locked.status_code == 429, (
        f"{locked.status_code}: the sixth attempt on {user.phone} written another way "
        "was not counted against the same account"
    )


def test_many_accounts_tried_from_one_address_hit_the_address_limit(app, make_user):
    user = make_user()
    client = fresh_client(app, random_ip())
    for n in range(20):
        assert attempt_login(client, f"1380000{n:04d}", "guess guess").status_code == 400

    locked = attempt_login(client, user.phone, PASSWORD)

    assert locked.status_code == 429
    assert "Retry-After" in locked.headers
    # The limit is per address: the same member elsewhere still gets in.
    elsewhere = fresh_client(app, random_ip())
    assert attempt_login(elsewhere, user.phone, PASSWORD).status_code == 302


def test_a_spoofed_forwarded_for_header_does_not_reset_the_address_limit(app, make_user):
    user = make_user()
    client = fresh_client(app, random_ip())
    for n in range(20):
        response = attempt_login(
            client,
            f"1380000{n:04d}",
            "guess guess",
            headers={"X-Forwarded-For": random_ip(), "X-Real-IP": random_ip()},
        )
        assert response.status_code == 400

    locked = attempt_login(client, user.phone, PASSWORD, headers={"X-Forwarded-For": random_ip()})

    assert locked.status_code == 429


def test_successful_logins_do_not_count_towards_the_limit(app, make_user):
    user = make_user()
    for _ in range(7):
        client = fresh_client(app)
        assert attempt_login(client, user.phone, PASSWORD).status_code == 302


# ------------------------------------------------- brute force across processes (Redis)

REDIS_URI = "redis://127.0.0.1:6379"

# Another worker process: its own interpreter and its own Flask-Limiter, same Redis.
OTHER_PROCESS = r"""
import json, re, sys
from app import create_app
from crypto import passwords

config, ip, contact, attempts = json.loads(sys.argv[1])
config["PASSWORD_COST"] = passwords.MINIMAL
app = create_app(config)
client = app.test_client()
client.environ_base["REMOTE_ADDR"] = ip
answers = []
for password in attempts:
    page = client.get("/auth/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = client.post(
        "/auth/login", data={"csrf_token": token, "contact": contact, "password": password}
    )
    answers.append(response.status_code)
print(json.dumps(answers))
"""


def logins_in_another_process(config: dict, ip: str, contact: str, attempts: list[str]):
    shared = {key: value for key, value in config.items() if key != "PASSWORD_COST"}
    result = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, json.dumps([shared, ip, contact, attempts])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def redis_client():
    import redis

    connection = redis.Redis.from_url(REDIS_URI, socket_timeout=2)
    try:
        connection.ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis must answer at {REDIS_URI} for the shared-limit test: {error!r}")
    yield connection
    connection.close()


def test_the_failed_login_count_is_shared_by_processes_through_redis(
    app_config, db, make_user, redis_client
):
    from app import create_app

    phone = random_phone()
    ips = [random_ip() for _ in range(3)]
    make_user(contact=phone)
    config = dict(app_config, RATELIMIT_STORAGE_URI=REDIS_URI)
    db.session.commit()  # SQLite: the other process must be able to write
    try:
        first = logins_in_another_process(config, ips[0], phone, ["guess 1", "guess 2", "guess 3"])
        assert first == [400, 400, 400]

        here = create_app(config)
        here.test_client_class = EnglishClient
        client = fresh_client(here, ips[1])
        assert attempt_login(client, phone, "guess 4").status_code == 400
        assert attempt_login(client, phone, "guess 5").status_code == 400
        locked_here = attempt_login(client, phone, PASSWORD)
        assert locked_here.status_code == 429
        assert "Retry-After" in locked_here.headers

        assert logins_in_another_process(config, ips[2], phone, [PASSWORD]) == [429]
    finally:
        for marker in [phone, *ips]:
            keys = list(redis_client.scan_iter(match=f"*{marker}*"))
            if keys:
                redis_client.delete(*keys)


# ---------------------------------------------------------------- security log (T47)


def security_records(caplog):
    return [r for r in caplog.records if r.name == "yishi.security"]


def security_events(caplog) -> list[dict]:
    events = []
    for record in security_records(caplog):
        line = record.getMessage()
        assert "\n" not in line and "\r" not in line, line
        events.append(json.loads(line))
    return events


def named(events, name):
    return [e for e in events if e["event"] == name]


@pytest.fixture
def security_log(caplog):
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="yishi.security")
    return caplog


def test_a_login_is_one_json_line_with_the_request_id(app, make_user, security_log):
    user = make_user()
    client = fresh_client(app)
    security_log.clear()

    login(client, user)

    logins = named(security_events(security_log), "login")
    assert len(logins) == 1
    assert logins[0]["user_id"] == user.id
    assert re.fullmatch(r"[0-9a-f]{16}", logins[0]["request_id"])
    assert logins[0]["ip"] == "127.0.0.1"


def test_a_failed_login_is_one_line_even_when_the_contact_has_a_newline(
    app, make_user, security_log
):
    make_user()
    client = fresh_client(app)
    security_log.clear()

    response = attempt_login(client, '13800000000\n{"event": "forged"}', "guess guess")

    assert response.status_code == 400
    events = security_events(security_log)
    assert [e["event"] for e in events] == ["login_failed"]
    assert "forged" not in json.dumps(events)


def test_a_lockout_is_logged(app, make_user, security_log):
    user = make_user()
    client = fresh_client(app)
    for _ in range(5):
        attempt_login(client, user.phone, "guess guess")
    security_log.clear()

    assert attempt_login(client, user.phone, PASSWORD).status_code == 429

    events = security_events(security_log)
    assert [e["event"] for e in events] == ["login_locked_out"]
    assert events[0]["request_id"]


def test_a_logout_is_logged(app, make_user, login_as, security_log):
    user = make_user()
    client = login_as(user)
    security_log.clear()

    response = post_form(client, "/auth/logout", token_from="/profile")

    assert response.status_code == 302
    logouts = named(security_events(security_log), "logout")
    assert len(logouts) == 1
    assert logouts[0]["user_id"] == user.id


def test_a_csrf_failure_is_logged(app, make_user, security_log):
    user = make_user()
    client = fresh_client(app)
    security_log.clear()

    response = client.post(
        "/auth/login",
        data={"contact": user.phone, "password": PASSWORD, "csrf_token": "forged"},
    )

    assert response.status_code == 400
    failures = named(security_events(security_log), "csrf_failure")
    assert len(failures) == 1
    assert failures[0]["path"] == "/auth/login"


def test_a_name_with_a_newline_cannot_forge_a_log_line(app, client, security_log):
    forged = 'Mallory\n{"event": "forged"}'

    response = register(client, forged, random_phone())

    assert response.status_code == 400
    events = security_events(security_log)
    assert not named(events, "forged")
    assert not named(events, "registered")


def test_security_events_encode_newlines_in_any_value(app, security_log):
    from web.logs import security_event

    with app.test_request_context("/"):
        security_event("test_event", name='Mallory\n{"event": "forged"}\r\u2028')

    records = security_records(security_log)
    assert len(records) == 1
    assert named(security_events(security_log), "forged") == []
    event = json.loads(records[0].getMessage())
    assert event["name"] == 'Mallory\n{"event": "forged"}\r\u2028'


def test_no_password_ever_reaches_the_logs(app, client, db, security_log):
    first, wrong, second = "first secret words", "wrong secret words", "second secret words"
    phone = random_phone()
    assert register(client, "Wang Fang", phone, password=first).status_code == 302
    post_form(client, "/auth/logout", token_from="/profile")
    assert attempt_login(client, phone, wrong).status_code == 400
    assert attempt_login(client, phone, first).status_code == 302
    token = csrf_token(client, "/profile")
    changed = client.post(
        "/profile/password",
        data={"pw-csrf_token": token, "pw-current": first, "pw-new": second},
    )
    assert changed.status_code == 302
    post_form(client, "/auth/logout", token_from="/profile")
    assert attempt_login(client, phone, second).status_code == 302

    assert security_records(security_log), "no security events were logged"
    for record in security_log.records:
        logged = record.getMessage() + repr(record.args)
        for password in (first, wrong, second):
            assert password not in logged, f"password in log record {record.name}: {logged}"
    assert {"registered", "logout", "login_failed", "login", "password_changed"} <= {
        e["event"] for e in security_events(security_log)
    }
