"""CSRF and response headers (RELIABILITY.md I7, T33, T34, T35): every state-changing route
refuses a missing, foreign, expired or forged token and writes nothing; the htmx header path
works and answers with fragments; no GET writes; cross-site POSTs and framing are refused;
every kind of response carries a strict CSP and the other security headers, and no page
needs inline script or style."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from html.parser import HTMLParser

import flask_wtf.csrf
import itsdangerous
import pytest

from tests.test_authorization import (
    ACTORS,
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
    "test_token_in_query_string_is_not_accepted",
    "test_htmx_header_token_decides_and_returns_a_fragment",
    "test_htmx_decision_error_is_a_fragment",
    "test_htmx_request_without_token_gets_an_error_fragment",
    "test_header_token_of_another_session_is_refused",
    "test_pages_refuse_to_be_framed",
}


CSRF_MESSAGES = (
    "This form has expired or did not come from this site",
    "表单已过期，或者不是从本站提交的",
)


def assert_csrf_refusal(response) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code == 400, (response.status_code, body[:1500])
    assert any(message in body for message in CSRF_MESSAGES), body[:1500]
    assert "Traceback" not in body


def expired_token(app, client, monkeypatch) -> str:
    """A token of this very session, signed just over WTF_CSRF_TIME_LIMIT ago. Only the
    CSRF serializer's clock is moved (moving every signer's clock would also make the
    session cookie look as if it came from the future)."""
    old = int(time.time()) - app.config["WTF_CSRF_TIME_LIMIT"] - 60

    class OldSigner(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return old

    class OldSerializer(itsdangerous.URLSafeTimedSerializer):
        default_signer = OldSigner

    with monkeypatch.context() as patch:
        patch.setattr(flask_wtf.csrf, "URLSafeTimedSerializer", OldSerializer)
        token = page_token(client)
    assert token.count(".") == 2
    return token


def hx_headers_token(html: str) -> str:
    match = re.search(r"<body[^>]*\bhx-headers='([^']*)'", html)
    assert match, "the page does not carry hx-headers on <body>"
    return json.loads(match.group(1))["X-CSRFToken"]


# ================================================================ T33: tokens


@pytest.mark.parametrize("endpoint", POST_ENDPOINTS)
def test_post_route_refuses_missing_foreign_expired_and_forged_tokens(
    app, db, world, clients, monkeypatch, caplog, endpoint
):
    actor = first_allowed(endpoint)  # someone who may do this with a good token
    client = clients(actor)
    other_user = clients("committee" if actor != "committee" else "resident")
    stranger = app.test_client()
    tokens = {
        "missing": (None, "missing"),
        "empty": ("", "missing"),
        "forged": ("not-a-token", "invalid"),
        "anonymous session's": (page_token(stranger), "do not match"),
        "another user's": (page_token(other_user), "do not match"),
        "expired": (expired_token(app, client, monkeypatch), "expired"),
    }
    before = snapshot(db)
    for label, (token, reason) in tokens.items():
        caplog.clear()
        with caplog.at_level(logging.INFO):
            response = send(client, post_request(endpoint, app, world, actor), token=token)
        assert_csrf_refusal(response)
        assert snapshot(db) == before, f"{endpoint} with a {label} token changed the database"
        assert reason in caplog.text.lower(), (label, caplog.text[-500:])

    # The same request with the session's own token goes through: the refusals were
    # about the token.
    req = post_request(endpoint, app, world, actor)
    response = send(client, req)
    assert 200 <= response.status_code < 400, response.get_data(as_text=True)[:2000]
    if req.writes:
        assert snapshot(db) != before


def test_token_in_query_string_is_not_accepted(app, db, world, clients):
    client = clients("moderator")
    token = page_token(client)
    before = snapshot(db)
    response = client.post(
        f"/c/{world.a.id}/requests/{world.pending_id}?csrf_token={token}",
        data={"decision": "approve"},
    )
    assert_csrf_refusal(response)
    assert snapshot(db) == before


def test_htmx_header_token_decides_and_returns_a_fragment(db, world, clients):
    from community.models import Membership

    client = clients("moderator")
    page = client.get(f"/c/{world.a.id}/requests").get_data(as_text=True)
    token = hx_headers_token(page)
    assert f'hx-post="/c/{world.a.id}/requests/{world.pending_id}"' in page
    response = client.post(
        f"/c/{world.a.id}/requests/{world.pending_id}",
        data={"decision": "approve"},  # no csrf_token field: the header carries it
        headers={"X-CSRFToken": token, "HX-Request": "true"},
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body[:1500]
    assert body.lstrip().startswith("<li"), body[:500]
    assert "<html" not in body and "<body" not in body
    assert f'id="request-{world.pending_id}"' in body
    db.session.rollback()
    assert db.session.get(Membership, world.pending_id).status == "verified"


def test_htmx_decision_error_is_a_fragment(db, world, clients):
    client = clients("moderator")
    token = hx_headers_token(client.get(f"/c/{world.a.id}/requests").get_data(as_text=True))
    before = snapshot(db)
    response = client.post(
        f"/c/{world.a.id}/requests/{world.pending_id}",
        data={"decision": "reject", "reason": ""},
        headers={"X-CSRFToken": token, "HX-Request": "true"},
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 400, body[:1500]
    assert body.lstrip().startswith("<li"), body[:500]
    assert "<html" not in body
    assert snapshot(db) == before


def test_htmx_request_without_token_gets_an_error_fragment(db, world, clients):
    client = clients("moderator")
    before = snapshot(db)
    response = client.post(
        f"/c/{world.a.id}/requests/{world.pending_id}",
        data={"decision": "approve"},
        headers={"HX-Request": "true"},
    )
    assert_csrf_refusal(response)
    body = response.get_data(as_text=True)
    assert "<html" not in body
    assert response.headers.get("HX-Retarget") == "#alerts"
    assert snapshot(db) == before


def test_header_token_of_another_session_is_refused(db, world, clients):
    token = hx_headers_token(clients("committee").get("/communities").get_data(as_text=True))
    client = clients("moderator")
    before = snapshot(db)
    response = client.post(
        f"/c/{world.a.id}/requests/{world.pending_id}",
        data={"decision": "approve"},
        headers={"X-CSRFToken": token, "HX-Request": "true"},
    )
    assert_csrf_refusal(response)
    assert snapshot(db) == before


@pytest.mark.parametrize("action", ["support", "comment", "helpful"])
def test_htmx_deliberation_posts_take_the_header_token_and_answer_fragments(
    db, world, clients, action
):
    client = clients("moderator")
    page = client.get(f"/p/{world.p_id}").get_data(as_text=True)
    token = hx_headers_token(page)
    path, data, marker = {
        "support": (f"/p/{world.p_id}/support", {}, 'id="support"'),
        "comment": (
            f"/p/{world.p_id}/comments",
            {"stance": "against", "body": "Sent by htmx."},
            "Sent by htmx.",
        ),
        "helpful": (f"/comments/{world.c_id}/helpful", {}, f'id="helpful-{world.c_id}"'),
    }[action]
    assert f'hx-post="{path}"' in page
    before = snapshot(db)
    refused = client.post(path, data=data, headers={"HX-Request": "true"})
    assert_csrf_refusal(refused)
    assert "<html" not in refused.get_data(as_text=True)
    assert refused.headers.get("HX-Retarget") == "#alerts"
    assert snapshot(db) == before
    response = client.post(path, data=data, headers={"X-CSRFToken": token, "HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body[:1500]
    assert "<html" not in body and "<body" not in body
    assert marker in body, body[:1500]
    assert snapshot(db) != before


def test_every_page_carries_the_same_session_token_for_htmx(world, clients):
    client = clients("resident")
    for path in ("/", "/communities", f"/c/{world.a.id}", "/profile", f"/p/{world.p_id}"):
        html = client.get(path).get_data(as_text=True)
        assert hx_headers_token(html), path


def test_no_get_route_changes_the_database(app, db, world, clients):
    for actor in ACTORS:
        clients(actor)
    before = snapshot(db)
    extra = [
        "/auth/login?next=/profile",
        f"/c/{world.a.id}?decision=approve&membership_id={world.pending_id}",
        f"/c/{world.a.id}/requests?decision=approve",
        "/settings/language?language=en",  # POST only: 405, not a write
        "/auth/logout",
        f"/c/{world.a.id}/requests/{world.pending_id}",
        "/c/987654",
        # Deliberation: actions asked for with GET (405), forms with their data in the URL.
        f"/p/{world.p_id}/support",
        f"/p/{world.p_id}/hide?reason=spam",
        f"/p/{world.p_id}/lock?reason=spam",
        f"/p/{world.q_id}/schedule",
        f"/p/{world.d_id}/publish",
        f"/comments/{world.c_id}/helpful",
        f"/comments/{world.rc_id}/delete",
        f"/reports/{world.report_id}/dismiss?reason=ok",
        f"/c/{world.a.id}/categories?cat-name=Parking",
        "/notifications/read",
        f"/p/{world.p_id}?action=support&stance=for&body=hello",
        f"/p/{world.p_id}/report?reason=spam",
        f"/comments/{world.rc_id}/edit?body=changed",
        f"/c/{world.a.id}/members/{world.target_id}/suspend?days=30&reason=spam",
        f"/c/{world.a.id}/settings?mode=number&threshold=1&window_days=1",
        f"/c/{world.a.id}/proposals/new?title=T&body=B&category=other&action=publish",
        "/notifications?read=1",
    ]
    for actor in ACTORS:
        client = clients(actor)
        for endpoint in GET_ENDPOINTS:
            path = path_for(app, endpoint, world)
            client.get(path)
            client.get(path, headers={"HX-Request": "true"})
            client.head(path)
        for path in extra:
            client.get(path)
        assert snapshot(db) == before, f"a GET as {actor} changed the database"


# ================================================================ T34: cross-site


EVIL = {"Origin": "https://evil.example", "Referer": "https://evil.example/form.html"}


def test_cross_site_post_without_token_is_refused_everywhere(app, db, world, clients):
    for endpoint in POST_ENDPOINTS:
        actor = first_allowed(endpoint)
        client = clients(actor)
        before = snapshot(db)
        req = post_request(endpoint, app, world, actor)
        response = send(client, req, token=None, headers=EVIL)
        assert_csrf_refusal(response)
        assert snapshot(db) == before, endpoint


def test_https_post_with_foreign_referer_is_refused_even_with_a_token(db, world, client):
    """WTF_CSRF_SSL_STRICT: over HTTPS the Referer must be this site."""
    base = "https://localhost"
    token = re.search(
        r'name="csrf_token"[^>]*value="([^"]+)"',
        client.get("/auth/register", base_url=base).get_data(as_text=True),
    ).group(1)
    data = {
        "display_name": "Secure Sam",
        "contact": "13822223333",
        "password": "correct horse battery",
        "csrf_token": token,
    }
    before = snapshot(db)
    for headers in (EVIL, {"Referer": "http://localhost/auth/register"}, {}):
        response = client.post("/auth/register", data=data, base_url=base, headers=headers)
        assert_csrf_refusal(response)
        assert snapshot(db) == before, headers
    response = client.post(
        "/auth/register",
        data=data,
        base_url=base,
        headers={"Referer": "https://localhost/auth/register"},
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:1500]


def test_pages_refuse_to_be_framed(world, clients):
    for path in ("/", "/auth/login", f"/c/{world.a.id}", "/no/such/page"):
        response = clients("visitor").get(path)
        assert response.headers.get("X-Frame-Options") == "DENY", path
        assert csp(response).get("frame-ancestors") == ["'none'"], path


# ================================================================ T35: headers and CSP


def csp(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def security_header_problems(response) -> list[str]:
    problems = []
    policy = csp(response)
    header = response.headers.get("Content-Security-Policy", "")
    if not policy:
        return ["no Content-Security-Policy"]
    for bad in ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*"):
        if any(bad in values for values in policy.values()):
            problems.append(f"CSP allows {bad}: {header}")
    if policy.get("script-src") != ["'self'"]:
        problems.append(f"script-src is {policy.get('script-src')}")
    if policy.get("frame-ancestors") != ["'none'"]:
        problems.append(f"frame-ancestors is {policy.get('frame-ancestors')}")
    if policy.get("object-src") != ["'none'"]:
        problems.append(f"object-src is {policy.get('object-src')}")
    if policy.get("base-uri") not in (["'none'"], ["'self'"]):
        problems.append(f"base-uri is {policy.get('base-uri')}")
    if "default-src" not in policy:
        problems.append("no default-src")
    if response.headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("X-Content-Type-Options is not nosniff")
    if response.headers.get("X-Frame-Options") != "DENY":
        problems.append("X-Frame-Options is not DENY")
    if response.headers.get("Referrer-Policy") not in (
        "same-origin",
        "no-referrer",
        "strict-origin",
        "strict-origin-when-cross-origin",
    ):
        problems.append(f"Referrer-Policy is {response.headers.get('Referrer-Policy')}")
    return problems


def test_security_headers_on_every_kind_of_response(app, db, world, clients):
    visitor, resident, moderator = clients("visitor"), clients("resident"), clients("moderator")
    too_many_parts = {f"f{i}": "x" for i in range(app.config["MAX_FORM_PARTS"] + 5)}
    too_many_parts["roll"] = (io.BytesIO(b"unit,owner_name\n"), "roll.csv")
    token = page_token(moderator)
    responses = {
        "full page": visitor.get("/"),
        "form page": visitor.get("/auth/register"),
        "member page": resident.get("/profile"),
        "redirect": visitor.get("/profile"),
        "404": visitor.get("/no/such/page"),
        "404 htmx": visitor.get("/c/987654", headers={"HX-Request": "true"}),
        "403": resident.get(f"/c/{world.a.id}/requests"),
        "403 htmx": resident.get(f"/c/{world.a.id}/members", headers={"HX-Request": "true"}),
        "401": visitor.post("/profile", data={"csrf_token": page_token(visitor)}),
        "400 csrf": visitor.post("/auth/login", data={"contact": "x", "password": "y"}),
        "400 bad input": visitor.get("/communities?q=%00"),
        "405": visitor.get("/auth/logout"),
        "405 delete": visitor.delete("/communities"),
        "413": moderator.post(f"/c/{world.a.id}/roll", data=too_many_parts),
        "htmx fragment": moderator.post(
            f"/c/{world.a.id}/requests/{world.pending_id}",
            data={"decision": "approve"},
            headers={"X-CSRFToken": token, "HX-Request": "true"},
        ),
        "deliberation page": resident.get(f"/p/{world.p_id}"),
        "deliberation fragment": resident.post(
            f"/p/{world.p_id}/support",
            headers={"X-CSRFToken": page_token(resident), "HX-Request": "true"},
        ),
        "deliberation 404": resident.get(f"/p/{world.pb_id}"),
        "deliberation 404 htmx": resident.get(f"/p/{world.pb_id}", headers={"HX-Request": "true"}),
        "deliberation 409": send(clients("committee"), Req(f"/p/{world.p_id}/schedule")),
        "unseen photo 404": resident.get(f"/photos/{world.b_photo_name}"),
        "photo for a visitor": visitor.get(f"/photos/{world.photo_name}"),
        "healthz": visitor.get("/healthz"),
        "static css": visitor.get("/static/css/site.css"),
        "static js": visitor.get("/static/vendor/htmx/htmx-2.0.11.min.js"),
        "static missing": visitor.get("/static/nope.js"),
    }
    expected_status = {
        "full page": 200,
        "redirect": 302,
        "404": 404,
        "404 htmx": 404,
        "403": 403,
        "403 htmx": 403,
        "401": 401,
        "400 csrf": 400,
        "400 bad input": 400,
        "405": 405,
        "405 delete": 405,
        "413": 413,
        "htmx fragment": 200,
        "deliberation page": 200,
        "deliberation fragment": 200,
        "deliberation 404": 404,
        "deliberation 404 htmx": 404,
        "deliberation 409": 409,
        "unseen photo 404": 404,
        "photo for a visitor": 302,
        "healthz": 200,
        "static css": 200,
        "static js": 200,
        "static missing": 404,
    }
    problems = []
    for label, response in responses.items():
        if label in expected_status and response.status_code != expected_status[label]:
            problems.append(f"{label}: status {response.status_code}")
        problems += [f"{label}: {p}" for p in security_header_problems(response)]
        response.close()
    assert not problems, "\n".join(problems)
    assert responses["healthz"].is_json
    assert "<html" not in responses["htmx fragment"].get_data(as_text=True)


def photo_header_problems(response) -> list[str]:
    """A photo is no document: its CSP may be `default-src 'none'` (which covers scripts,
    objects and styles) instead of the pages' policy, but it must still refuse framing
    (frame-ancestors does not fall back to default-src) and carry the other headers."""
    problems = []
    policy = csp(response)
    header = response.headers.get("Content-Security-Policy", "")
    if not policy:
        return ["no Content-Security-Policy"]
    for bad in ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*"):
        if any(bad in values for values in policy.values()):
            problems.append(f"CSP allows {bad}: {header}")
    if policy.get("default-src") != ["'none'"]:
        problems.append(f"default-src is {policy.get('default-src')}: {header}")
    if "sandbox" not in policy:
        problems.append(f"no sandbox: {header}")
    if policy.get("frame-ancestors") != ["'none'"]:
        problems.append(f"frame-ancestors is {policy.get('frame-ancestors')}: {header}")
    if response.headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("X-Content-Type-Options is not nosniff")
    if response.headers.get("X-Frame-Options") != "DENY":
        problems.append("X-Frame-Options is not DENY")
    if response.headers.get("Referrer-Policy") not in ("same-origin", "no-referrer"):
        problems.append(f"Referrer-Policy is {response.headers.get('Referrer-Policy')}")
    cache = response.headers.get("Cache-Control", "")
    if "private" not in cache or "public" in cache:
        problems.append(f"Cache-Control is {cache!r}: a member's photo in a shared cache")
    if "Cookie" not in response.headers.get("Vary", "") and "private" not in cache:
        problems.append("cacheable across sessions")
    if response.headers.get("Content-Disposition") != "inline":
        problems.append(f"Content-Disposition is {response.headers.get('Content-Disposition')}")
    if response.headers.get("X-Request-Id") is None:
        problems.append("no X-Request-Id")
    return problems


@pytest.mark.parametrize("variant", ["", "/thumb"])
def test_photo_responses_carry_the_security_headers(world, clients, variant):
    client = clients("resident")
    path = f"/photos/{world.photo_name}{variant}"
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "image/jpeg"
    assert response.get_data()[:3] == b"\xff\xd8\xff"
    problems = [f"200: {p}" for p in photo_header_problems(response)]
    etag = response.headers.get("ETag")
    response.close()
    if etag:  # conditional GET: the 304 carries them too
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304
        problems += [f"304: {p}" for p in photo_header_problems(again)]
        again.close()
    head = client.head(path)
    assert head.status_code == 200
    problems += [f"HEAD: {p}" for p in photo_header_problems(head)]
    # Refused: an error page with the pages' headers.
    for label, response in {
        "unseen": clients("non_member").get(path),
        "other community": clients("other_moderator").get(path),
        "nonexistent": client.get(f"/photos/{'0' * 32}.jpg{variant}"),
    }.items():
        assert response.status_code == 404, label
        assert response.mimetype == "text/html", label
        problems += [f"{label}: {p}" for p in security_header_problems(response)]
    assert not problems, "\n".join(problems)


class InlineCodeFinder(HTMLParser):
    """Collects everything a CSP without 'unsafe-inline' would block (or that needs eval)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...> event handler attribute")
            if name.startswith(("hx-on", "data-hx-on")):
                self.problems.append(f"<{tag} {name}=...> htmx inline handler")
            if name == "style":
                self.problems.append(f"<{tag} style=...> inline style")
            scheme = (value or "").strip().lower()
            if name in ("href", "src", "action", "formaction") and scheme.startswith(
                ("javascript:", "data:text/html", "vbscript:")
            ):
                self.problems.append(f"<{tag} {name}={value!r}> script URL")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            src = values.get("src") or ""
            self.scripts.append(src)
            if not src.startswith("/static/"):
                self.problems.append(f"<script> without a same-site src ({src!r})")
            self._in_script = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.problems.append(f"inline script body {data.strip()[:60]!r}")


def inline_code_problems(html: str) -> list[str]:
    finder = InlineCodeFinder()
    finder.feed(html)
    finder.close()
    return finder.problems


def test_no_page_uses_inline_script_or_style(app, db, world, clients, monkeypatch):
    pages: dict[str, str] = {}
    for actor in ("visitor", "non_member", "pending", "resident", "committee", "site_admin"):
        client = clients(actor)
        for endpoint in GET_ENDPOINTS:
            response = client.get(path_for(app, endpoint, world))
            if response.mimetype == "text/html":
                pages[f"{endpoint} as {actor}"] = response.get_data(as_text=True)
    visitor, committee, admin = clients("visitor"), clients("committee"), clients("admin")
    # Pages that only appear after a POST: form errors, roll problems, printed invitations.
    rendered_posts = {
        "register with errors": send(visitor, Req("/auth/register", {"display_name": ""})),
        "join with errors": send(clients("non_member"), Req(f"/c/{world.a.id}/join", {})),
        "roll with problems": send(
            committee,
            Req(f"/c/{world.a.id}/roll", {"roll": (io.BytesIO(b"unit\n,\n"), "roll.csv")}),
        ),
        "invitation slips": send(committee, Req(f"/c/{world.a.id}/roll/invites")),
        "appoint with errors": send(admin, Req(f"/c/{world.a.id}/appoint", {"contact": "x"})),
        "proposal with errors": send(
            clients("resident"), Req(f"/c/{world.a.id}/proposals/new", {"title": ""})
        ),
        "comment with errors": send(
            clients("resident"), Req(f"/p/{world.p_id}/comments", {"body": ""})
        ),
        "report with errors": send(
            clients("resident"), Req(f"/comments/{world.c_id}/report", {"reason": ""})
        ),
        "settings with errors": send(
            committee, Req(f"/c/{world.a.id}/settings", {"mode": "number", "window_days": "0"})
        ),
        "suspend with errors": send(
            clients("moderator"),
            Req(f"/c/{world.a.id}/members/{world.target_id}/suspend", {"days": "999"}),
        ),
        "hidden proposal": (
            send(clients("moderator"), Req(f"/p/{world.p_id}/hide", {"reason": "Off topic."}))
            and clients("moderator").get(f"/p/{world.p_id}")
        ),
        "moderation log with entries": clients("resident").get(f"/c/{world.a.id}/moderation-log"),
        "csrf error": visitor.post("/auth/register", data={}),
        "404": visitor.get("/no/such/page"),
        "403": clients("resident").get(f"/c/{world.a.id}/roll"),
    }
    for label, response in rendered_posts.items():
        assert response.mimetype == "text/html", label
        pages[label] = response.get_data(as_text=True)
    problems = [
        f"{label}: {p}" for label, html in pages.items() for p in inline_code_problems(html)
    ]
    assert not problems, "\n".join(sorted(set(problems)))


def test_htmx_config_forbids_eval_and_indicator_styles(client):
    html = client.get("/").get_data(as_text=True)
    match = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", html)
    assert match, "no htmx-config meta"
    config = json.loads(match.group(1))
    assert config["allowEval"] is False
    assert config["includeIndicatorStyles"] is False
    assert config.get("allowScriptTags") is False
    finder = InlineCodeFinder()
    finder.feed(html)
    assert finder.scripts == ["/static/vendor/htmx/htmx-2.0.11.min.js"]
    assert client.get(finder.scripts[0]).status_code == 200
