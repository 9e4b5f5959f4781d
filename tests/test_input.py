"""Input hygiene and error pages (RELIABILITY.md I6, I8, T36-lite, T37, T39, T40, T41, T48):
reflected and stored markup is escaped, oversized and malformed bodies get a friendly 4xx
and write nothing, errors are localized with a reference id and never a traceback, and the
two languages render."""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import quote, urlsplit

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from tests.conftest import PASSWORD
from tests.test_authorization import (
    GET_ENDPOINTS,
    POST_ENDPOINTS,
    Req,
    build_world,
    client_factory,
    first_allowed,
    needs_ballots,
    needs_deliberation,
    page_token,
    path_for,
    post_request,
    send,
    snapshot,
)
from tests.test_csrf_headers import inline_code_problems, security_header_problems

FORM = "application/x-www-form-urlencoded"
EN = {"Accept-Language": "en"}
ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


@pytest.fixture
def world(request, db, make_community, make_member, make_user):
    return build_world(
        db,
        make_community,
        make_member,
        make_user,
        deliberation=needs_deliberation(request),
        ballots=needs_ballots(request),
    )


@pytest.fixture
def clients(app, world, login_as):
    return client_factory(app, world, login_as)


# Tests that need no proposals, comments or photos in the world (see needs_deliberation).
WITHOUT_DELIBERATION = {
    "test_next_only_follows_same_site_paths",
    "test_next_follows_a_same_site_path",
    "test_upload_over_max_content_length_is_413",
    "test_huge_value_in_a_known_field_is_a_4xx",
    "test_bad_bytes_in_join_unit_are_400",
    "test_bad_bytes_in_an_optional_field_are_400",
    "test_bad_bytes_in_query_strings_are_400",
    "test_nul_in_an_uploaded_roll_is_400",
    "test_every_error_page_carries_its_request_id",
    "test_403_is_in_the_member_s_language",
    "test_csrf_error_is_in_the_browser_s_language",
    "test_main_pages_render_in_both_languages",
    "test_language_choice_sets_a_cookie_and_is_used_next",
    "test_member_language_choice_is_saved_on_the_profile",
}


def count(db, model) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


def reference_id(body: str) -> str | None:
    match = re.search(r"(?:reference|编号) ([0-9a-f]{8,}|-)", body)
    return match.group(1) if match else None


def assert_no_5xx_and_no_trace(response) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code < 500, (response.status_code, body[:1500])
    assert "Traceback" not in body


# ================================================================ T37: reflected XSS

REFLECTED = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
    "{{7*7}}</title><script>alert(1)</script>",
]


@pytest.mark.parametrize("payload", REFLECTED)
def test_query_parameters_are_never_echoed_raw(world, clients, payload):
    paths = [
        ("visitor", "/auth/login", {"next": payload}),
        ("visitor", "/auth/register", {"next": payload}),
        ("visitor", "/communities", {"q": payload, "sort": payload}),
        ("visitor", f"/c/{world.a.id}", {"x": payload}),
        ("visitor", "/no/such/page", {"x": payload}),
        ("resident", f"/c/{world.a.id}", {"x": payload}),
        ("resident", "/profile", {"next": payload}),
        ("committee", f"/c/{world.a.id}/requests", {"x": payload}),
        ("resident", f"/c/{world.a.id}/requests", {"x": payload}),  # 403 page
        (
            "resident",
            f"/c/{world.a.id}/proposals",
            {"q": payload, "sort": payload, "category": payload, "page": payload},
        ),
        ("resident", f"/c/{world.a.id}/proposals", {"status": payload}),  # 400 page
        ("resident", f"/c/{world.parent.id}/proposals", {"q": payload}),
        ("resident", f"/p/{world.p_id}", {"x": payload}),
        ("resident", f"/p/{world.pb_id}", {"x": payload}),  # 404 page
        ("resident", f"/comments/{world.c_id}/report", {"reason": payload}),
        ("moderator", f"/c/{world.a.id}/moderation", {"x": payload}),
        ("resident", f"/c/{world.a.id}/moderation-log", {"x": payload}),
        ("resident", "/notifications", {"x": payload}),
    ]
    for actor, path, query in paths:
        response = clients(actor).get(path, query_string=query)
        body = response.get_data(as_text=True)
        assert_no_5xx_and_no_trace(response)
        assert "<script>alert" not in body, (actor, path)
        if "<" in payload:
            assert payload not in body, (actor, path)
        assert "49</title>" not in body
        assert not inline_code_problems(body), (actor, path, inline_code_problems(body))


def test_search_fragment_never_echoes_raw(world, clients):
    """The htmx search (hx-target proposal-results) answers a fragment: escaped too."""
    client = clients("resident")
    for payload in REFLECTED:
        response = client.get(
            f"/c/{world.a.id}/proposals",
            query_string={"q": payload, "sort": payload},
            headers={"HX-Request": "true", "HX-Target": "proposal-results"},
        )
        body = response.get_data(as_text=True)
        assert_no_5xx_and_no_trace(response)
        assert response.status_code == 200, payload
        assert "<html" not in body
        assert "<script>alert" not in body
        if "<" in payload:
            assert payload not in body
        assert not inline_code_problems(body), (payload, inline_code_problems(body))


def test_login_page_keeps_next_only_as_an_escaped_value(client):
    payload = '"><img src=x onerror=alert(1)>'
    body = client.get("/auth/login", query_string={"next": payload}).get_data(as_text=True)
    assert str(escape(payload)) in body  # kept as the form's hidden value, escaped
    assert "<img src=x" not in body


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:evil.example",
        " //evil.example",
        "/\n/evil.example",
        "/\t/evil.example",
        "https:/evil.example",
    ],
)
def test_next_only_follows_same_site_paths(world, client, make_user, target):
    user = make_user()
    token = page_token(client)
    response = client.post(
        "/auth/login",
        data={"contact": user.phone, "password": PASSWORD, "next": target, "csrf_token": token},
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert not location.netloc and not location.scheme, response.headers["Location"]
    assert location.path == "/"
    response = client.post(
        "/settings/language",
        data={"language": "en", "next": target, "csrf_token": page_token(client)},
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert not location.netloc and not location.scheme and location.path == "/"


def test_next_follows_a_same_site_path(world, client, make_user):
    user = make_user()
    response = client.post(
        "/auth/login",
        data={
            "contact": user.phone,
            "password": PASSWORD,
            "next": f"/c/{world.a.id}",
            "csrf_token": page_token(client),
        },
    )
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == f"/c/{world.a.id}"


# ================================================================ T36-lite: stored markup

EVIL_COMMUNITY = "<script>alert(1)</script>{{7*7}}"
EVIL_NAME = "<img src=x onerror=alert(1)>{{7*7}}"
EVIL_UNIT = '"><svg onload=alert(2)>{{7*7}}'
EVIL_OWNER = "<b onmouseover=alert(3)>{{7*7}}</b>"
EVIL_MODERATOR = "<iframe src=javascript:alert(4)>"


def assert_shown_escaped(body: str, *payloads: str, where: str) -> None:
    for payload in payloads:
        assert payload not in body, f"{where}: raw {payload!r}"
        assert str(escape(payload)) in body, f"{where}: escaped {payload!r} missing"
    assert "<script>alert" not in body, where
    problems = inline_code_problems(body)
    assert not problems, (where, problems)


def test_stored_markup_renders_escaped_everywhere(
    app, db, make_community, make_member, make_user, login_as
):
    from community import services
    from community.models import Membership

    community = make_community(EVIL_COMMUNITY, "compound")
    committee = make_member(community, role="committee", name="Careful Chair")
    make_member(community, role="moderator", name=EVIL_MODERATOR)
    evil = make_user(name=EVIL_NAME)
    roll = io.StringIO()
    csv.writer(roll).writerows([("unit", "owner_name", "phone", "private_area")])
    csv.writer(roll).writerows([(EVIL_UNIT, EVIL_OWNER, "", "80")])
    services.import_roll(None, community, roll.getvalue())
    db.session.commit()

    visitor = app.test_client()
    evil_client = login_as(evil)
    chair = login_as(committee)

    # The resident asks to join through the real form, with the markup as the unit.
    response = send(evil_client, Req(f"/c/{community.id}/join", {"unit": EVIL_UNIT}))
    assert response.status_code == 302, response.get_data(as_text=True)[:1500]
    db.session.rollback()
    membership = db.session.scalar(select(Membership).where(Membership.user_id == evil.id))
    assert membership.unit == EVIL_UNIT

    pages = {
        "community page (visitor)": (
            visitor.get(f"/c/{community.id}"),
            (EVIL_COMMUNITY, EVIL_MODERATOR),
        ),
        "browse": (visitor.get("/communities"), (EVIL_COMMUNITY,)),
        "home of the applicant": (evil_client.get("/"), (EVIL_NAME, EVIL_COMMUNITY, EVIL_UNIT)),
        "requests queue": (
            chair.get(f"/c/{community.id}/requests"),
            (EVIL_COMMUNITY, EVIL_NAME, EVIL_UNIT),
        ),
        "roll": (chair.get(f"/c/{community.id}/roll"), (EVIL_COMMUNITY, EVIL_UNIT, EVIL_OWNER)),
    }
    token = page_token(chair)
    fragment = chair.post(
        f"/c/{community.id}/requests/{membership.id}",
        data={"decision": "approve"},
        headers={"X-CSRFToken": token, "HX-Request": "true"},
    )
    assert fragment.status_code == 200
    pages["decided fragment"] = (fragment, (EVIL_NAME, EVIL_UNIT))
    pages["members list"] = (
        chair.get(f"/c/{community.id}/members"),
        (EVIL_COMMUNITY, EVIL_NAME, EVIL_UNIT, EVIL_MODERATOR),
    )
    pages["community page (member)"] = (
        evil_client.get(f"/c/{community.id}"),
        (EVIL_COMMUNITY, EVIL_UNIT),
    )
    pages["home of the member"] = (evil_client.get("/"), (EVIL_NAME, EVIL_COMMUNITY, EVIL_UNIT))
    pages["invitation slips"] = (
        send(chair, Req(f"/c/{community.id}/roll/invites")),
        (EVIL_COMMUNITY, EVIL_UNIT),
    )
    pages["profile"] = (evil_client.get("/profile"), (EVIL_NAME,))
    for where, (response, payloads) in pages.items():
        assert response.status_code == 200, (where, response.status_code)
        assert_shown_escaped(response.get_data(as_text=True), *payloads, where=where)


# ================================================================ T39: sizes


def _register_fields(**extra) -> dict:
    return {
        "display_name": "Size Tester",
        "contact": "13833334444",
        "password": PASSWORD,
        **extra,
    }


def assert_too_large(response) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code == 413, (response.status_code, body[:1500])
    assert "What you sent is too large" in body or "太大" in body or "数据太多" in body, body[:1500]
    assert "Traceback" not in body


def test_body_over_max_content_length_is_413(app, db, client):
    from community.models import User

    users = count(db, User)
    token = page_token(client)
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = f"csrf_token={token}&display_name=Big&contact=13800000000&password=x&pad=".encode()
    body += b"x" * (limit - len(body) + 1)
    response = client.post("/auth/register", data=body, content_type=FORM, headers=EN)
    assert_too_large(response)
    assert count(db, User) == users


def test_upload_over_max_content_length_is_413(app, db, world, clients):
    from community.models import RollImport

    imports = count(db, RollImport)
    client = clients("committee")
    big = b"unit,owner_name\n" + b"Room 1,Owner\n" * (app.config["MAX_CONTENT_LENGTH"] // 13 + 1)
    response = send(
        client,
        Req(f"/c/{world.a.id}/roll", {"roll": (io.BytesIO(big), "roll.csv")}),
        headers=EN,
    )
    assert_too_large(response)
    assert count(db, RollImport) == imports


def test_too_many_multipart_parts_is_413(app, db, client):
    from community.models import User

    users = count(db, User)
    extra = {f"f{i}": "1" for i in range(app.config["MAX_FORM_PARTS"] + 1)}
    data = {**_register_fields(**extra), "csrf_token": page_token(client)}
    data["attachment"] = (io.BytesIO(b"x"), "a.txt")  # makes it multipart/form-data
    response = client.post("/auth/register", data=data, headers=EN)
    assert_too_large(response)
    assert count(db, User) == users


def test_too_many_urlencoded_fields_is_refused(app, db, client):
    """Werkzeug applies MAX_FORM_PARTS to multipart only; a urlencoded form with more
    fields than that must still not be accepted."""
    from community.models import User

    users = count(db, User)
    extra = {f"f{i}": "1" for i in range(app.config["MAX_FORM_PARTS"] + 50)}
    data = {**_register_fields(**extra), "csrf_token": page_token(client)}
    response = client.post("/auth/register", data=data, headers=EN)
    assert_no_5xx_and_no_trace(response)
    assert response.status_code in (400, 413), response.status_code
    assert count(db, User) == users


def test_multipart_field_over_max_form_memory_size_is_413(app, db, client):
    from community.models import User

    users = count(db, User)
    huge = "x" * (app.config["MAX_FORM_MEMORY_SIZE"] + 1)
    data = {**_register_fields(note=huge), "csrf_token": page_token(client)}
    data["attachment"] = (io.BytesIO(b"x"), "a.txt")
    response = client.post("/auth/register", data=data, headers=EN)
    assert_too_large(response)
    assert count(db, User) == users


def test_urlencoded_field_over_max_form_memory_size_is_413(app, db, client):
    """Werkzeug applies MAX_FORM_MEMORY_SIZE to multipart only."""
    from community.models import User

    users = count(db, User)
    huge = "x" * (app.config["MAX_FORM_MEMORY_SIZE"] + 1)
    data = {**_register_fields(note=huge), "csrf_token": page_token(client)}
    response = client.post("/auth/register", data=data, headers=EN)
    assert_too_large(response)
    assert count(db, User) == users


def test_huge_comment_is_refused_and_writes_nothing(app, db, world, clients):
    client = clients("resident")
    before = snapshot(db)
    path = f"/p/{world.p_id}/comments"
    over_limit = "x" * (app.config["MAX_FORM_MEMORY_SIZE"] + 1)
    response = send(client, Req(path, {"stance": "for", "body": over_limit}), headers=EN)
    assert_too_large(response)
    too_long = "word " * 1001  # over the 5,000 characters of a comment
    response = send(client, Req(path, {"stance": "for", "body": too_long}), headers=EN)
    assert_no_5xx_and_no_trace(response)
    assert response.status_code == 400, response.status_code
    assert snapshot(db) == before


def test_huge_value_in_a_known_field_is_a_4xx(app, db, world, clients):
    from community.models import Membership

    memberships = count(db, Membership)
    huge = "x" * (app.config["MAX_FORM_MEMORY_SIZE"] // 2)
    response = send(clients("non_member"), Req(f"/c/{world.a.id}/join", {"unit": huge}))
    assert_no_5xx_and_no_trace(response)
    assert response.status_code in (400, 413)
    assert count(db, Membership) == memberships


# ================================================================ T40: malformed text

BAD_BYTES = {
    "invalid utf-8": "%FF%FE",
    "overlong utf-8": "%C0%AF",
    "lone surrogate": "%ED%A0%80",
    "nul": "%00",
}


def _raw_body(fields: dict, bad_field: str, bad: str, token: str) -> bytes:
    parts = [f"{k}={quote(v)}" for k, v in fields.items() if k != bad_field]
    parts.append(f"{bad_field}={quote(fields[bad_field])}{bad}")
    parts.append(f"csrf_token={token}")
    return "&".join(parts).encode("ascii")


@pytest.mark.parametrize("kind", BAD_BYTES)
def test_bad_bytes_in_register_are_400(db, client, kind):
    from community.models import User

    users = count(db, User)
    body = _raw_body(_register_fields(), "display_name", BAD_BYTES[kind], page_token(client))
    response = client.post("/auth/register", data=body, content_type=FORM, headers=EN)
    assert_no_5xx_and_no_trace(response)
    assert response.status_code == 400, (kind, response.status_code)
    assert count(db, User) == users


@pytest.mark.parametrize("kind", BAD_BYTES)
def test_bad_bytes_in_join_unit_are_400(db, world, clients, kind):
    client = clients("non_member")
    before = snapshot(db)
    body = _raw_body({"unit": "Building 7, Room 701"}, "unit", BAD_BYTES[kind], page_token(client))
    response = client.post(f"/c/{world.a.id}/join", data=body, content_type=FORM, headers=EN)
    assert_no_5xx_and_no_trace(response)
    assert response.status_code == 400, (kind, response.status_code)
    assert snapshot(db) == before


@pytest.mark.parametrize("kind", BAD_BYTES)
def test_bad_bytes_in_an_optional_field_are_400(db, world, clients, kind):
    """The rejection reason is optional when approving: bad bytes in it still refuse the
    whole request instead of being silently kept or dropped."""
    client = clients("moderator")
    before = snapshot(db)
    fields = {"decision": "approve", "reason": "welcome"}
    body = _raw_body(fields, "reason", BAD_BYTES[kind], page_token(client))
    response = client.post(
        f"/c/{world.a.id}/requests/{world.pending_id}", data=body, content_type=FORM
    )
    assert_no_5xx_and_no_trace(response)
    assert response.status_code == 400, (kind, response.status_code)
    assert snapshot(db) == before


@pytest.mark.parametrize("kind", BAD_BYTES)
def test_bad_bytes_in_query_strings_are_400(world, clients, kind):
    bad = BAD_BYTES[kind]
    for actor, path in [
        ("visitor", f"/communities?q=a{bad}"),
        ("visitor", f"/auth/login?next=/c/{world.a.id}{bad}"),
        ("visitor", f"/c/{world.a.id}?x{bad}=1"),
        ("committee", f"/c/{world.a.id}/requests?page=1{bad}"),
    ]:
        response = clients(actor).get(path)
        assert_no_5xx_and_no_trace(response)
        assert response.status_code == 400, (kind, path, response.status_code)


@pytest.mark.parametrize("target", ["comment", "report", "settings"])
def test_bad_bytes_in_deliberation_forms_are_400(db, world, clients, target):
    actor, path, fields, bad_field = {
        "comment": (
            "resident",
            f"/p/{world.p_id}/comments",
            {"stance": "for", "body": "Fine idea"},
            "body",
        ),
        "report": ("resident", f"/comments/{world.c_id}/report", {"reason": "Rude"}, "reason"),
        "settings": (
            "committee",
            f"/c/{world.a.id}/settings",
            {"mode": "number", "threshold": "5", "window_days": "30"},
            "mode",
        ),
    }[target]
    client = clients(actor)
    before = snapshot(db)
    for kind, bad in BAD_BYTES.items():
        body = _raw_body(fields, bad_field, bad, page_token(client))
        response = client.post(path, data=body, content_type=FORM, headers=EN)
        assert_no_5xx_and_no_trace(response)
        assert response.status_code == 400, (kind, response.status_code)
        assert snapshot(db) == before, kind


def test_raw_invalid_bytes_are_refused_with_a_clear_400(app, db, client):
    """Werkzeug would drop (or keep as literal text) what it cannot decode; the site
    refuses the whole request with a clear 400 before any view reads it (the token travels
    in the header, as htmx sends it)."""
    from community.models import User

    users = count(db, User)
    token = page_token(client)
    body = b"display_name=Ann\xff\xfe&contact=13844445555&password=correct+horse+battery"
    response = client.post(
        "/auth/register", data=body, content_type=FORM, headers={**EN, "X-CSRFToken": token}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400, response.status_code
    assert "The request was not valid" in html
    assert count(db, User) == users
    # The same bytes with the token in the body: the token is dropped too; still a 400.
    response = client.post(
        "/auth/register",
        data=body + b"&csrf_token=" + token.encode(),
        content_type=FORM,
        headers=EN,
    )
    assert response.status_code == 400
    assert count(db, User) == users


def test_invalid_utf8_in_a_multipart_field_is_400(db, client):
    from community.models import User

    users = count(db, User)
    token = page_token(client)
    boundary = "yishi-boundary"
    parts = {
        "csrf_token": token.encode(),
        "display_name": b"Ann\xff\xfe Lee",
        "contact": b"13855556666",
        "password": PASSWORD.encode(),
    }
    body = b"".join(
        b"--" + boundary.encode() + b"\r\n"
        b'Content-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n' + value + b"\r\n"
        for name, value in parts.items()
    )
    body += b"--" + boundary.encode() + b"--\r\n"
    response = client.post(
        "/auth/register",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=EN,
    )
    assert_no_5xx_and_no_trace(response)
    assert response.status_code == 400, response.status_code
    assert count(db, User) == users


def test_nul_in_any_post_is_400_and_writes_nothing(app, db, world, clients):
    problems = []
    for endpoint in POST_ENDPOINTS:
        actor = first_allowed(endpoint)
        client = clients(actor)
        before = snapshot(db)
        req = post_request(endpoint, app, world, actor)
        text_fields = [k for k, v in req.data.items() if isinstance(v, str)]
        if text_fields:
            req.data[text_fields[0]] += "\x00"
        else:
            req.data["note"] = "a\x00b"
        response = send(client, req)
        if response.status_code != 400:
            problems.append(f"{endpoint}: {response.status_code}")
        if snapshot(db) != before:
            problems.append(f"{endpoint}: wrote to the database")
    assert not problems, problems


def test_nul_in_an_uploaded_roll_is_400(db, world, clients):
    client = clients("committee")
    before = snapshot(db)
    csv = b"unit,owner_name\nRoom\x00 1,Owner One\n"
    response = send(client, Req(f"/c/{world.a.id}/roll", {"roll": (io.BytesIO(csv), "r.csv")}))
    assert response.status_code == 400
    assert snapshot(db) == before


def test_nul_in_the_query_string_of_every_get_route_is_400(app, world, clients):
    client = clients("site_admin")
    problems = []
    for endpoint in GET_ENDPOINTS:
        path = path_for(app, endpoint, world) + "?q=a%00b"
        response = client.get(path)
        if response.status_code != 400:
            problems.append(f"{path}: {response.status_code}")
    assert not problems, problems


# ================================================================ T41


def test_register_refuses_a_name_mixing_latin_and_cyrillic(db, client):
    from community.models import User

    users = count(db, User)
    data = {
        "display_name": "P\u0430vel Smith",  # Cyrillic a
        "contact": "13866667777",
        "password": PASSWORD,
        "csrf_token": page_token(client),
    }
    response = client.post("/auth/register", data=data, headers=EN)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Please do not mix Latin letters with Cyrillic or Greek ones." in body
    assert count(db, User) == users


# ================================================================ T48: error pages


def test_debug_is_off(app):
    assert app.debug is False


@pytest.mark.parametrize(
    "headers,lang,title,prefix",
    [
        (ZH, "zh-Hans", "找不到页面", "编号"),
        (EN, "en", "Page not found", "reference"),
    ],
)
def test_404_is_localized_with_a_reference_id(client, headers, lang, title, prefix):
    response = client.get("/no/such/page", headers=headers)
    body = response.get_data(as_text=True)
    assert response.status_code == 404
    assert f'<html lang="{lang}">' in body
    assert title in body
    request_id = response.headers.get("X-Request-Id")
    assert request_id and re.fullmatch(r"[0-9a-f]{8,}", request_id)
    assert f"{prefix} {request_id}" in body


def _error_responses(app, world, clients) -> dict:
    visitor, resident = clients("visitor"), clients("resident")
    many = {f"f{i}": "1" for i in range(app.config["MAX_FORM_PARTS"] + 1)}
    many["attachment"] = (io.BytesIO(b"x"), "a.txt")
    return {
        "400 bad input": lambda: visitor.get("/communities?q=%00", headers=EN),
        "400 csrf": lambda: visitor.post("/auth/login", data={"contact": "x"}, headers=EN),
        "401": lambda: visitor.post(
            "/profile", data={"csrf_token": page_token(visitor)}, headers=EN
        ),
        "403": lambda: resident.get(f"/c/{world.a.id}/roll", headers=EN),
        "404": lambda: visitor.get("/c/987654", headers=EN),
        "405": lambda: visitor.get("/auth/logout", headers=EN),
        "413": lambda: visitor.post("/auth/register", data=many, headers=EN),
    }


ERROR_KINDS = ["400 bad input", "400 csrf", "401", "403", "404", "405", "413"]


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_every_error_page_carries_its_request_id(app, world, clients, kind):
    response = _error_responses(app, world, clients)[kind]()
    body = response.get_data(as_text=True)
    assert str(response.status_code) == kind.split()[0], response.status_code
    assert "Traceback" not in body
    assert "Werkzeug" not in body and "werkzeug" not in body
    request_id = response.headers.get("X-Request-Id")
    assert request_id, f"{kind}: no X-Request-Id header"
    assert reference_id(body) == request_id, (reference_id(body), request_id)


@pytest.mark.parametrize(
    "locale,lang,title", [("zh", "zh-Hans", "不允许"), ("en", "en", "Not allowed")]
)
def test_403_is_in_the_member_s_language(world, make_member, login_as, locale, lang, title):
    member = make_member(world.a, locale=locale)
    response = login_as(member).get(f"/c/{world.a.id}/roll", headers=ZH if locale == "en" else EN)
    body = response.get_data(as_text=True)
    assert response.status_code == 403
    assert f'<html lang="{lang}">' in body
    assert title in body


@pytest.mark.parametrize(
    "headers,lang,message",
    [(ZH, "zh-Hans", "表单已过期"), (EN, "en", "This form has expired")],
)
def test_csrf_error_is_in_the_browser_s_language(world, client, headers, lang, message):
    response = client.post(f"/c/{world.a.id}/requests/{world.pending_id}", data={}, headers=headers)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert f'<html lang="{lang}">' in body
    assert message in body


@pytest.fixture
def crashing_app(app_config):
    """A separate application with a route that fails, registered before its first
    request (Flask forbids adding routes afterwards). TESTING is off, as in production."""
    from app import create_app
    from web.extensions import db

    application = create_app({**app_config, "TESTING": False})

    def boom():
        raise RuntimeError("secret internal detail 8c1f")

    application.add_url_rule("/test-only/boom", "test_only_boom", boom)
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("headers,title", [(EN, "Something went wrong"), (ZH, "出错了")])
def test_500_is_generic_localized_and_has_a_reference(crashing_app, headers, title):
    assert crashing_app.debug is False
    response = crashing_app.test_client().get("/test-only/boom", headers=headers)
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert title in body
    for leak in ("Traceback", "RuntimeError", "secret internal detail", 'File "'):
        assert leak not in body
    request_id = response.headers.get("X-Request-Id")
    assert request_id and reference_id(body) == request_id
    assert not security_header_problems(response)


def test_500_as_json_is_generic_and_has_a_reference(crashing_app):
    response = crashing_app.test_client().get(
        "/test-only/boom", headers={**EN, "Accept": "application/json"}
    )
    assert response.status_code == 500
    payload = response.get_json()
    assert payload["request_id"] == response.headers["X-Request-Id"]
    assert "secret" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.is_json
    assert response.get_json()["status"] == "ok"
    assert not security_header_problems(response)
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.is_json


# ================================================================ languages


@pytest.mark.parametrize("headers,lang,word", [(ZH, "zh-Hans", "登录"), (EN, "en", "Log in")])
def test_main_pages_render_in_both_languages(world, client, headers, lang, word):
    for path in ("/", "/communities", "/auth/login", "/auth/register", f"/c/{world.a.id}"):
        response = client.get(path, headers=headers)
        body = response.get_data(as_text=True)
        assert response.status_code == 200, path
        assert f'<html lang="{lang}">' in body, path
        assert word in body, path


def test_language_choice_sets_a_cookie_and_is_used_next(world, client):
    token = page_token(client)
    response = client.post(
        "/settings/language",
        data={"language": "en", "next": "/communities", "csrf_token": token},
        headers=ZH,
    )
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/communities"
    cookie = response.headers.get("Set-Cookie", "")
    assert "yishi_lang=en" in cookie and "HttpOnly" in cookie
    body = client.get("/communities", headers=ZH).get_data(as_text=True)
    assert '<html lang="en">' in body and "Communities" in body
    response = client.post(
        "/settings/language",
        data={"language": "zh", "next": "/", "csrf_token": page_token(client)},
        headers=EN,
    )
    assert response.status_code == 302
    body = client.get("/communities", headers=EN).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in body and "社区列表" in body


def test_member_language_choice_is_saved_on_the_profile(db, world, clients):
    from community.models import User

    client = clients("resident")
    response = send(client, Req("/settings/language", {"language": "zh", "next": "/"}))
    assert response.status_code == 302
    db.session.rollback()
    assert db.session.get(User, world.users["resident"].id).locale == "zh"
    body = client.get("/", headers=EN).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in body


def test_unknown_language_is_refused(db, client):
    response = send(client, Req("/settings/language", {"language": "xx", "next": "/"}))
    assert response.status_code == 400
    assert "yishi_lang" not in response.headers.get("Set-Cookie", "")
