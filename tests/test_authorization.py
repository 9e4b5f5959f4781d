"""Authorization (RELIABILITY.md I5, T27, T28, T31): a route x role matrix generated from
`app.url_map`, walking ids across communities, role reach, and mass assignment.

The policy table below names the expected outcome of EVERY route for every kind of actor.
A route that exists in the application but not in the table fails
`test_policy_table_covers_every_route`, so adding a route forces a decision here.

The helpers at the top (`build_world`, `snapshot`, `POLICY`, `post_request`, ...) are also
used by test_csrf_headers.py and test_input.py."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import url_for
from sqlalchemy import inspect, select, text

from tests.conftest import PASSWORD, csrf_token

# ---------------------------------------------------------------- actors and outcomes

ACTORS = (
    "visitor",  # anonymous
    "non_member",  # logged in, no membership anywhere
    "pending",  # asked to join the community under test, not decided yet
    "resident",  # verified resident of the community under test
    "other_moderator",  # moderator of ANOTHER community (a sibling)
    "moderator",  # neighborhood committee (moderator) of the community under test
    "committee",  # owners' committee of the community under test
    "admin",  # community admin membership in the community under test
    "site_admin",  # User.is_admin
)

LOGIN = "302 to login"  # redirect to /auth/login?next=<the page asked for>
HOME = "302 to home"  # redirect to /
OK = "allowed"  # POST: not refused (the action may still fail for domain reasons)


def _row(default, **overrides) -> dict[str, object]:
    unknown = set(overrides) - set(ACTORS)
    assert not unknown, unknown
    return {actor: overrides.get(actor, default) for actor in ACTORS}


def _staff(default, allowed: tuple[str, ...], allowed_outcome, visitor) -> dict[str, object]:
    return _row(default, visitor=visitor, **dict.fromkeys(allowed, allowed_outcome))


VERIFIERS = ("moderator", "committee", "admin", "site_admin")  # verify_members, view_members
ROLL_KEEPERS = ("committee", "admin", "site_admin")  # manage_roll
ADMINS = ("admin", "site_admin")  # administer

# (endpoint, method) -> actor -> outcome. GET outcomes: a status code, LOGIN or HOME.
# POST outcomes: 401 / 403 / HOME (refused, nothing written) or OK.
POLICY: dict[tuple[str, str], dict[str, object]] = {
    # --- pages anyone may see
    ("community.home", "GET"): _row(200),
    ("community.browse", "GET"): _row(200),
    ("community.community_page", "GET"): _row(200),
    ("healthz", "GET"): _row(200),
    # --- account pages: for visitors only; members are sent home
    ("auth.register", "GET"): _row(HOME, visitor=200),
    ("auth.register", "POST"): _row(HOME, visitor=OK),
    ("auth.login", "GET"): _row(HOME, visitor=200),
    ("auth.login", "POST"): _row(OK),
    ("auth.logout", "POST"): _row(OK, visitor=401),
    # --- anything logged in
    ("community.join_page", "GET"): _row(200, visitor=LOGIN),
    ("community.join", "POST"): _row(OK, visitor=401),
    ("community.redeem_code", "GET"): _row(200, visitor=LOGIN),
    ("community.redeem_code", "POST"): _row(OK, visitor=401),
    ("community.profile", "GET"): _row(200, visitor=LOGIN),
    ("community.profile", "POST"): _row(OK, visitor=401),
    ("community.change_password", "POST"): _row(OK, visitor=401),
    # --- display settings: anyone
    ("community.set_language", "POST"): _row(OK),
    ("community.set_text_size", "POST"): _row(OK),
    # --- committee tools of the community under test
    ("community.join_requests", "GET"): _staff(403, VERIFIERS, 200, LOGIN),
    ("community.decide", "POST"): _staff(403, VERIFIERS, OK, 401),
    ("community.members", "GET"): _staff(403, VERIFIERS, 200, LOGIN),
    ("community.change_role", "POST"): _staff(403, ADMINS, OK, 401),
    ("community.appoint", "POST"): _staff(403, ADMINS, OK, 401),
    ("community.new_child", "GET"): _staff(403, ADMINS, 200, LOGIN),
    ("community.new_child", "POST"): _staff(403, ADMINS, OK, 401),
    ("community.new_root", "GET"): _staff(403, ("site_admin",), 200, LOGIN),
    ("community.new_root", "POST"): _staff(403, ("site_admin",), OK, 401),
    ("community.roll", "GET"): _staff(403, ROLL_KEEPERS, 200, LOGIN),
    ("community.roll", "POST"): _staff(403, ROLL_KEEPERS, OK, 401),
    ("community.issue_invites", "POST"): _staff(403, ROLL_KEEPERS, OK, 401),
}

GET_ENDPOINTS = sorted(e for e, m in POLICY if m == "GET")
POST_ENDPOINTS = sorted(e for e, m in POLICY if m == "POST")


def app_routes(app) -> set[tuple[str, str]]:
    """Every (endpoint, method) the application answers, except static files."""
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((rule.endpoint, method))
    return found


# ---------------------------------------------------------------- the world under test


def membership_id(db, user, community) -> int:
    from community.models import Membership

    return db.session.scalar(
        select(Membership.id).where(
            Membership.user_id == user.id, Membership.community_id == community.id
        )
    )


def build_world(db, make_community, make_member, make_user) -> SimpleNamespace:
    """Community A ("Sunny Garden", the one under test) and its sibling B ("Maple Court"),
    both compounds inside P ("Riverside"), with one user per actor, a pending applicant and
    a verified target in A, private data in B, and a voter roll in A with one invitation."""
    from community import services
    from community.models import RollEntry

    parent = make_community("Riverside Community", "community")
    a = make_community("Sunny Garden", "compound", parent=parent)
    b = make_community("Maple Court", "compound", parent=parent)
    users = {
        "non_member": make_user(),
        "pending": make_member(a, status="pending"),
        "resident": make_member(a),
        "other_moderator": make_member(b, role="moderator"),
        "moderator": make_member(a, role="moderator"),
        "committee": make_member(a, role="committee"),
        "admin": make_member(a, role="admin"),
        "site_admin": make_user(is_admin=True),
    }
    applicant = make_member(a, status="pending", unit="Building 2, Room 201")
    target = make_member(a, unit="Building 2, Room 202")
    candidate = make_user()
    b_applicant = make_member(b, status="pending", name="Bertha Hidden", unit="Maple Secret 7")
    b_resident = make_member(b, name="Boris Concealed", unit="Maple Secret 9")
    services.import_roll(
        None,
        a,
        "unit,owner_name,phone,private_area\n"
        "Building 3 Room 301,Owner Three,13700000301,90\n"
        "Building 3 Room 302,Owner Four,,75.5\n",
    )
    services.import_roll(
        None, b, "unit,owner_name,phone,private_area\nMaple Secret 11,Bianca Private,,60\n"
    )
    db.session.flush()
    first = db.session.scalar(
        select(RollEntry).where(RollEntry.community_id == a.id).order_by(RollEntry.unit)
    )
    [(_entry, code)] = services.issue_invites(None, a, [first.id])
    db.session.commit()
    return SimpleNamespace(
        parent=parent,
        a=a,
        b=b,
        users=users,
        applicant=applicant,
        pending_id=membership_id(db, applicant, a),
        target=target,
        target_id=membership_id(db, target, a),
        candidate=candidate,
        b_applicant=b_applicant,
        b_pending_id=membership_id(db, b_applicant, b),
        b_resident=b_resident,
        b_resident_id=membership_id(db, b_resident, b),
        invite_code=code,
        # Text that only B's committee may see.
        b_secrets=(
            "Bertha Hidden",
            "Boris Concealed",
            "Maple Secret 7",
            "Maple Secret 9",
            "Bianca Private",
            b_applicant.phone,
            b_resident.phone,
        ),
    )


@pytest.fixture
def world(db, make_community, make_member, make_user):
    return build_world(db, make_community, make_member, make_user)


def client_factory(app, world, login_as):
    """clients(actor) -> a test client for that actor, logged in once per test."""
    cache: dict[str, object] = {}

    def get(actor: str):
        if actor not in cache:
            cache[actor] = app.test_client() if actor == "visitor" else login_as(world.users[actor])
        return cache[actor]

    return get


@pytest.fixture
def clients(app, world, login_as):
    return client_factory(app, world, login_as)


def snapshot(db) -> dict[str, list[str]]:
    """Every committed row of every table, to compare before and after a request."""
    db.session.rollback()
    names = sorted(t for t in inspect(db.engine).get_table_names() if t != "alembic_version")
    out = {}
    with db.engine.connect() as conn:
        for name in names:
            rows = conn.execute(text(f'SELECT * FROM "{name}"')).all()
            out[name] = sorted(repr(tuple(r)) for r in rows)
    return out


def path_for(app, endpoint: str, world, **overrides) -> str:
    """The URL of an endpoint with realistic ids: community A, A's pending membership."""
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    values = {"community_id": world.a.id, "membership_id": world.pending_id, **overrides}
    with app.test_request_context():
        return url_for(endpoint, **{k: v for k, v in values.items() if k in rule.arguments})


# ---------------------------------------------------------------- POST requests


@dataclass
class Req:
    path: str
    data: dict = field(default_factory=dict)
    token_field: str = "csrf_token"
    writes: bool = True  # a successful request by the first allowed actor changes the DB


def _roll_csv() -> tuple[io.BytesIO, str]:
    body = "unit,owner_name,phone,private_area\nBuilding 9 Room 901,Owner Nine,13700000901,66\n"
    return io.BytesIO(body.encode()), "roll.csv"


def post_request(endpoint: str, app, world, actor: str) -> Req:
    """A realistic, valid request to `endpoint` as `actor` (CSRF token added by `send`)."""
    user = world.users.get(actor)  # None for the visitor

    def path(ep: str, **values) -> str:
        return path_for(app, ep, world, **values)

    if endpoint == "auth.register":
        return Req(
            path(endpoint),
            {"display_name": "Newcomer Lin", "contact": "13800001111", "password": PASSWORD},
        )
    if endpoint == "auth.login":
        who = user or world.users["non_member"]
        return Req(path(endpoint), {"contact": who.phone, "password": PASSWORD})
    if endpoint == "auth.logout":
        return Req(path(endpoint))
    if endpoint == "community.join":
        return Req(path(endpoint), {"unit": "Building 5, Room 501"})
    if endpoint == "community.redeem_code":
        return Req(path(endpoint), {"code": world.invite_code})
    if endpoint == "community.decide":
        return Req(path(endpoint, membership_id=world.pending_id), {"decision": "approve"})
    if endpoint == "community.change_role":
        return Req(path(endpoint, membership_id=world.target_id), {"role": "admin"})
    if endpoint == "community.appoint":
        return Req(path(endpoint), {"contact": world.candidate.phone, "role": "moderator"})
    if endpoint == "community.new_child":
        data = {"name": "Building 9", "kind": "building", "timezone": "Asia/Shanghai"}
        return Req(path(endpoint), data)
    if endpoint == "community.new_root":
        data = {"name": "Harbour District", "kind": "district", "timezone": "Asia/Shanghai"}
        return Req(path(endpoint), data)
    if endpoint == "community.roll":
        return Req(path(endpoint), {"roll": _roll_csv()})
    if endpoint == "community.issue_invites":
        return Req(path(endpoint))
    if endpoint == "community.profile":
        return Req(
            path(endpoint), {"display_name": f"Renamed {actor}", "locale": "en", "submit": "1"}
        )
    if endpoint == "community.change_password":
        data = {"pw-current": PASSWORD, "pw-new": "another horse battery", "pw-submit": "1"}
        return Req(path(endpoint), data, token_field="pw-csrf_token")
    if endpoint == "community.set_language":
        return Req(path(endpoint), {"language": "en", "next": "/"}, writes=user is not None)
    if endpoint == "community.set_text_size":
        return Req(path(endpoint), {"size": "large", "next": "/"}, writes=user is not None)
    raise AssertionError(f"no POST request written for {endpoint}: add one")


def page_token(client) -> str:
    """The CSRF token of this client's session, as every page carries it."""
    return csrf_token(client, "/communities")


def send(client, req: Req, token: str | None = "own", headers: dict | None = None, **kwargs):
    data = dict(req.data)
    if token == "own":
        token = page_token(client)
    if token is not None:
        data[req.token_field] = token
    return client.post(req.path, data=data, headers=headers or {}, **kwargs)


def first_allowed(endpoint: str) -> str:
    row = POLICY[(endpoint, "POST")]
    return next(actor for actor in ACTORS if row[actor] == OK)


# ---------------------------------------------------------------- checking outcomes


def outcome_problem(response, expected, path: str) -> str | None:
    """None when the response is the expected outcome, else a description."""
    status = response.status_code
    location = response.headers.get("Location", "")
    if expected == LOGIN:
        parts = urlsplit(location)
        ok = status == 302 and parts.path == "/auth/login"
        ok = ok and parse_qs(parts.query).get("next") == [path]
    elif expected == HOME:
        ok = status == 302 and urlsplit(location).path == "/"
    elif expected == OK:
        refused = status in (401, 403) or urlsplit(location).path == "/auth/login"
        ok = not refused and status < 500
    else:
        ok = status == expected
    if ok:
        return None
    return f"{path}: expected {expected}, got {status} {location}".strip()


def assert_friendly_error(response, status: int) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code == status, body[:1500]
    assert "Traceback" not in body
    assert f"Error {status}" in body or f"错误 {status}" in body, body[:1500]


# ================================================================ T28: the matrix


def test_policy_table_covers_every_route(app):
    routes = app_routes(app)
    missing = sorted(routes - set(POLICY))
    assert not missing, f"routes without an authorization policy (add them to POLICY): {missing}"
    stale = sorted(set(POLICY) - routes)
    assert not stale, f"POLICY names routes that no longer exist: {stale}"
    for key, row in POLICY.items():
        assert set(row) == set(ACTORS), key


def test_every_post_route_has_a_realistic_request(app, world):
    for endpoint in POST_ENDPOINTS:
        for actor in ACTORS:
            req = post_request(endpoint, app, world, actor)
            assert req.path.startswith("/"), endpoint


@pytest.mark.parametrize("actor", ACTORS)
def test_get_matrix(app, world, clients, actor):
    client = clients(actor)
    problems = []
    for endpoint in GET_ENDPOINTS:
        path = path_for(app, endpoint, world)
        response = client.get(path)
        problem = outcome_problem(response, POLICY[(endpoint, "GET")][actor], path)
        if problem:
            problems.append(f"{endpoint} as {actor}: {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("endpoint", POST_ENDPOINTS)
def test_post_matrix(app, db, world, clients, endpoint):
    row = POLICY[(endpoint, "POST")]
    for actor in ACTORS:  # log everybody in before taking the snapshot
        clients(actor)
    before = snapshot(db)
    problems = []
    for actor in ACTORS:
        if row[actor] == OK:
            continue
        req = post_request(endpoint, app, world, actor)
        response = send(clients(actor), req)
        problem = outcome_problem(response, row[actor], req.path)
        if problem:
            problems.append(f"{actor}: {problem}")
        if snapshot(db) != before:
            problems.append(f"{actor}: a refused POST {req.path} changed the database")
            before = snapshot(db)
    assert not problems, "\n".join(problems)

    allowed = [actor for actor in ACTORS if row[actor] == OK]
    assert allowed, endpoint
    # The least privileged allowed actor succeeds, and the very same request writes: so the
    # refusals above were refusals, not a broken request.
    first, rest = allowed[0], allowed[1:]
    req = post_request(endpoint, app, world, first)
    response = send(clients(first), req)
    assert 200 <= response.status_code < 400, (first, response.get_data(as_text=True)[:2000])
    assert outcome_problem(response, OK, req.path) is None
    if req.writes:
        assert snapshot(db) != before, f"{endpoint} as {first} wrote nothing"
    for actor in rest:
        req = post_request(endpoint, app, world, actor)
        response = send(clients(actor), req)
        problem = outcome_problem(response, OK, req.path)
        assert problem is None, f"{actor}: {problem}"


# ================================================================ T27: walking ids


@pytest.mark.parametrize("actor", ["moderator", "committee"])
@pytest.mark.parametrize("page", ["requests", "members", "roll"])
def test_staff_of_a_cannot_open_pages_of_b(world, clients, actor, page):
    response = clients(actor).get(f"/c/{world.b.id}/{page}")
    assert_friendly_error(response, 403)
    body = response.get_data(as_text=True)
    for secret in world.b_secrets:
        assert secret not in body


@pytest.mark.parametrize("htmx", [False, True])
def test_moderator_of_a_cannot_decide_in_b(db, world, clients, htmx):
    client = clients("moderator")
    before = snapshot(db)
    headers = {"HX-Request": "true"} if htmx else {}
    req = Req(f"/c/{world.b.id}/requests/{world.b_pending_id}", {"decision": "approve"})
    response = send(client, req, headers=headers)
    assert response.status_code == 403
    body = response.get_data(as_text=True)
    for secret in world.b_secrets:
        assert secret not in body
    assert snapshot(db) == before


@pytest.mark.parametrize("htmx", [False, True])
def test_membership_of_b_through_a_url_is_not_found(db, world, clients, htmx):
    """The community in the URL is A (where the moderator has power), the id is B's."""
    client = clients("moderator")
    before = snapshot(db)
    headers = {"HX-Request": "true"} if htmx else {}
    req = Req(f"/c/{world.a.id}/requests/{world.b_pending_id}", {"decision": "approve"})
    response = send(client, req, headers=headers)
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    for secret in world.b_secrets:
        assert secret not in body
    assert snapshot(db) == before


def test_role_of_b_member_through_a_url_is_not_found(db, world, clients):
    client = clients("admin")
    before = snapshot(db)
    req = Req(f"/c/{world.a.id}/members/{world.b_resident_id}/role", {"role": "admin"})
    response = send(client, req)
    assert_friendly_error(response, 404)
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/c/987654"),
        ("GET", "/c/987654/requests"),
        ("GET", "/c/987654/members"),
        ("GET", "/c/987654/roll"),
        ("GET", "/c/987654/join"),
        ("GET", "/c/987654/new"),
        ("GET", "/no/such/page"),
        ("POST", "/c/987654/requests/1"),
        ("POST", "/c/{a}/requests/987654"),
        ("POST", "/c/{a}/members/987654/role"),
        ("POST", "/c/987654/roll/invites"),
    ],
)
def test_nonexistent_ids_are_a_friendly_404(db, world, clients, method, path):
    path = path.format(a=world.a.id)
    client = clients("site_admin")  # the most powerful actor: only existence can stop it
    before = snapshot(db)
    if method == "GET":
        response = client.get(path)
    else:
        response = send(client, Req(path, {"decision": "approve", "role": "admin"}))
    assert_friendly_error(response, 404)
    body = response.get_data(as_text=True)
    assert "Page not found" in body or "找不到页面" in body
    assert snapshot(db) == before


# ================================================================ role reach


def _status_of(db, membership_pk: int) -> tuple[str, str]:
    from community.models import Membership

    db.session.rollback()
    m = db.session.get(Membership, membership_pk)
    return m.status, m.role


def test_resident_cannot_approve_a_join(db, world, clients):
    response = send(
        clients("resident"),
        Req(f"/c/{world.a.id}/requests/{world.pending_id}", {"decision": "approve"}),
    )
    assert_friendly_error(response, 403)
    assert _status_of(db, world.pending_id) == ("pending", "resident")


def test_moderator_of_b_has_no_power_in_a(db, world, clients):
    client = clients("other_moderator")
    assert client.get(f"/c/{world.b.id}/requests").status_code == 200  # own community: yes
    for page in ("requests", "members", "roll"):
        assert client.get(f"/c/{world.a.id}/{page}").status_code == 403, page
    response = send(
        client, Req(f"/c/{world.a.id}/requests/{world.pending_id}", {"decision": "approve"})
    )
    assert response.status_code == 403
    assert _status_of(db, world.pending_id) == ("pending", "resident")
    page = client.get(f"/c/{world.a.id}").get_data(as_text=True)
    assert f"/c/{world.a.id}/requests" not in page  # no committee tools offered either


def test_admin_of_the_parent_reaches_the_child(db, world, make_member, login_as):
    parent_admin = make_member(world.parent, role="admin", name="Parent Admin")
    client = login_as(parent_admin)
    for page in ("requests", "members", "roll", "new"):
        assert client.get(f"/c/{world.a.id}/{page}").status_code == 200, page
    response = send(
        client, Req(f"/c/{world.a.id}/requests/{world.pending_id}", {"decision": "approve"})
    )
    assert response.status_code == 302
    assert _status_of(db, world.pending_id) == ("verified", "resident")
    response = send(
        client, Req(f"/c/{world.a.id}/members/{world.target_id}/role", {"role": "committee"})
    )
    assert response.status_code == 302
    assert _status_of(db, world.target_id) == ("verified", "committee")


def test_moderator_of_the_parent_does_not_reach_the_child(db, world, make_member, login_as):
    parent_moderator = make_member(world.parent, role="moderator", name="Parent Moderator")
    client = login_as(parent_moderator)
    assert client.get(f"/c/{world.parent.id}/requests").status_code == 200
    for page in ("requests", "members", "roll", "new"):
        assert client.get(f"/c/{world.a.id}/{page}").status_code == 403, page
    before = snapshot(db)
    response = send(
        client, Req(f"/c/{world.a.id}/requests/{world.pending_id}", {"decision": "approve"})
    )
    assert response.status_code == 403
    assert snapshot(db) == before


def test_admin_of_a_child_has_no_power_over_the_parent(db, world, clients):
    client = clients("admin")
    for page in ("requests", "members", "roll", "new"):
        assert client.get(f"/c/{world.parent.id}/{page}").status_code == 403, page
    assert client.get(f"/c/{world.b.id}/members").status_code == 403  # nor over a sibling


def test_pending_and_rejected_staff_have_no_power(db, world, make_member, login_as):
    for status in ("pending", "rejected"):
        db.session.rollback()  # no stale read snapshot under the factory's write
        would_be = make_member(world.a, role="admin", status=status, name=f"Would Be {status}")
        client = login_as(would_be)
        for page in ("requests", "members", "roll", "new"):
            assert client.get(f"/c/{world.a.id}/{page}").status_code == 403, (status, page)


# ================================================================ T31: mass assignment

EXTRA = {
    "status": "verified",
    "role": "admin",
    "is_admin": "1",
    "is_active": "1",
    "session_version": "99",
    "private_area": "999.99",
    "how_joined": "invite",
    "decided_by_id": "1",
    "name_key": "admin",
}


def test_register_ignores_extra_fields(db, client, world):
    from community.models import Membership, User

    before = db.session.scalar(select(Membership.id).order_by(Membership.id.desc()))
    data = {
        "display_name": "Mass Assigner",
        "contact": "13811112222",
        "password": PASSWORD,
        **EXTRA,
        "user_id": str(world.users["site_admin"].id),
        "community_id": str(world.a.id),
        "id": "1",
    }
    response = send(client, Req("/auth/register", data))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    db.session.rollback()
    user = db.session.scalar(select(User).where(User.phone == "13811112222"))
    assert user is not None and user.id != 1
    assert user.is_admin is False
    assert user.session_version == 1
    assert user.name_key != "admin"
    assert db.session.scalar(select(Membership.id).order_by(Membership.id.desc())) == before


def test_join_ignores_extra_fields(db, world, clients):
    from community.models import Membership

    joiner = world.users["non_member"]
    data = {
        "unit": "Building 6, Room 601",
        **EXTRA,
        "user_id": str(world.users["resident"].id),
        "community_id": str(world.b.id),
    }
    response = send(clients("non_member"), Req(f"/c/{world.a.id}/join", data))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    db.session.rollback()
    rows = db.session.scalars(select(Membership).where(Membership.user_id == joiner.id)).all()
    assert len(rows) == 1
    m = rows[0]
    assert (m.community_id, m.status, m.role) == (world.a.id, "pending", "resident")
    assert m.private_area is None and m.how_joined == "request" and m.decided_by_id is None
    assert m.unit == "Building 6, Room 601"


def test_decision_ignores_extra_fields(db, world, clients):
    from community.models import Membership

    data = {
        "decision": "approve",
        **EXTRA,
        "user_id": str(world.users["resident"].id),
        "community_id": str(world.b.id),
        "unit": "Penthouse",
    }
    response = send(clients("moderator"), Req(f"/c/{world.a.id}/requests/{world.pending_id}", data))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    db.session.rollback()
    m = db.session.get(Membership, world.pending_id)
    assert (m.status, m.role, m.community_id) == ("verified", "resident", world.a.id)
    assert m.user_id == world.applicant.id
    assert m.private_area is None and m.unit == "Building 2, Room 201"
    assert m.decided_by_id == world.users["moderator"].id


def test_profile_ignores_extra_fields(db, world, clients):
    from community.models import User

    resident = world.users["resident"]
    phone, version = resident.phone, resident.session_version
    data = {
        "display_name": "Quiet Neighbour",
        "locale": "en",
        "submit": "1",
        **EXTRA,
        "phone": "13999999999",
        "email": "evil@example.com",
        "password_hash": "x",
        "id": "1",
    }
    response = send(clients("resident"), Req("/profile", data))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    db.session.rollback()
    user = db.session.get(User, resident.id)
    assert user.display_name == "Quiet Neighbour"
    assert user.is_admin is False and user.is_active is True
    assert (user.phone, user.email, user.session_version) == (phone, None, version)
    assert user.password_hash.startswith("$") or len(user.password_hash) > 10
    assert user.name_key != "admin"
