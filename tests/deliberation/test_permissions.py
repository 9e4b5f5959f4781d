"""Who may do what in deliberation (RELIABILITY.md I5, T27, T29, T31, T32, T46): every
action against every kind of actor, with the outcome each one gets and the proof that a
refusal changed nothing; walking ids into another community; mass assignment; limits on
writing.

Visibility: verified members of the community, of a community above it or of one inside
it may read (`community.services.can_read`); a draft only its author. Writing needs a
verified membership of the community itself and no current suspension."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from io import BytesIO
from types import SimpleNamespace

import pytest
from PIL import Image
from sqlalchemy import select, text

from community.models import Membership, utcnow
from deliberation import photos, services
from deliberation.models import Comment, Proposal, Report, Support
from tests.conftest import csrf_token, post_form
from tests.deliberation.test_proposals import count, fresh, require_support
from web.extensions import db

ACTORS = (
    "visitor",  # not logged in
    "non_member",  # logged in, no membership
    "pending",  # asked to join Sunny Garden, not decided
    "resident",  # verified resident of Sunny Garden
    "suspended",  # verified resident of Sunny Garden, suspended from writing
    "other_moderator",  # moderator of Maple Court, the sibling compound
    "moderator",  # neighborhood committee (moderator) of Sunny Garden
    "committee",  # owners' committee of Sunny Garden
)
READERS = ("resident", "suspended", "moderator", "committee")
WRITERS = ("resident", "moderator", "committee")
LOGIN = "302 to login"
OK = "done"  # a POST that did its work (a redirect or a fragment)

TABLES = (
    "proposals",
    "proposal_revisions",
    "proposal_photos",
    "supports",
    "comments",
    "helpful_marks",
    "follows",
    "reports",
    "moderation_log",
    "notifications",
    "custom_categories",
    "memberships",
)


def expect(allowed, ok, *, readers=403, others=404, visitor=401) -> dict[str, object]:
    """The outcome per actor: `ok` for the allowed, `readers` for other members who may
    read, `others` for those who may not, `visitor` for the anonymous."""
    row = {}
    for actor in ACTORS:
        if actor == "visitor":
            row[actor] = visitor
        elif actor in allowed:
            row[actor] = ok
        else:
            row[actor] = readers if actor in READERS else others
    return row


# ---------------------------------------------------------------- the world


def tiny_jpeg() -> bytes:
    output = BytesIO()
    Image.new("RGB", (40, 30), "orange").save(output, "JPEG")
    return output.getvalue()


def membership_of(user, community) -> Membership:
    return db.session.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.community_id == community.id
        )
    )


def build_world(app, make_community, make_member, make_user) -> SimpleNamespace:
    """Sunny Garden (A) and its sibling Maple Court (B) in Riverside Community, one user per
    actor, and in A: P (collecting support, with a photo and a comment C, reported as R),
    Q (in deliberation), the resident's own proposal OWN with a comment OWN_C, and the
    resident's draft DRAFT. In B: PB with a photo, a comment CB and a report RB."""
    from pathlib import Path

    parent = make_community("Riverside Community", "community")
    a = make_community("Sunny Garden", "compound", parent=parent)
    b = make_community("Maple Court", "compound", parent=parent)
    users = {
        "non_member": make_user(),
        "pending": make_member(a, status="pending"),
        "resident": make_member(a, name="Resident Li"),
        "suspended": make_member(a),
        "other_moderator": make_member(b, role="moderator"),
        "moderator": make_member(a, role="moderator"),
        "committee": make_member(a, role="committee"),
    }
    membership_of(users["suspended"], a).suspended_until = utcnow() + timedelta(days=7)
    author = make_member(a, name="Author Wang")
    target = make_member(a, name="Target Zhao")
    b_author = make_member(b, name="Maple Author")
    require_support(a, 100)
    require_support(b, 100)
    upload_dir = Path(app.config["UPLOAD_DIR"])

    def proposal(who, where, title, publish=True, photo=False):
        attached = [(photos.prepare_photo(tiny_jpeg()), "lamp.jpg")] if photo else []
        return services.submit_proposal(
            who,
            where,
            services.ProposalDraft(title, f"{title}: the words.", "facilities"),
            publish=publish,
            photos=attached,
            upload_dir=upload_dir,
        )

    p = proposal(author, a, "Lamp at gate 2", photo=True)
    c = services.post_comment(author, p, "Author's comment", "for")
    r = services.report(author, p, "Please look")
    q = proposal(author, a, "Benches by the pond")
    services.change_status(q, "deliberation")
    own = proposal(users["resident"], a, "Resident's own idea")
    own_c = services.post_comment(users["resident"], own, "Resident's comment", "neutral")
    draft = proposal(users["resident"], a, "Resident's draft", publish=False)
    pb = proposal(b_author, b, "Maple secret plan", photo=True)
    cb = services.post_comment(b_author, pb, "Maple secret comment", "for")
    rb = services.report(b_author, pb, "Maple secret report")
    db.session.commit()
    return SimpleNamespace(
        parent=parent,
        a=a,
        b=b,
        users=users,
        author=author,
        p=p.id,
        photo=p.photos[0].stored_name,
        c=c.id,
        report=r.id,
        q=q.id,
        own=own.id,
        own_c=own_c.id,
        draft=draft.id,
        target=membership_of(target, a).id,
        pb=pb.id,
        b_photo=pb.photos[0].stored_name,
        cb=cb.id,
        rb=rb.id,
        b_member=membership_of(b_author, b).id,
        upload_dir=upload_dir,
    )


@pytest.fixture
def world(app, db, make_community, make_member, make_user):
    return build_world(app, make_community, make_member, make_user)


@pytest.fixture
def clients(app, world, login_as):
    made = {"visitor": app.test_client()}
    for actor, user in world.users.items():
        made[actor] = login_as(user)
    for client in made.values():  # one CSRF token per session, as a browser keeps it
        client.token = csrf_token(client)
    return made


def post(client, path: str, data: dict | None = None):
    return client.post(path, data={**(data or {}), "csrf_token": client.token})


def snapshot(world) -> tuple:
    """Everything deliberation keeps, and the stored files."""
    db.session.commit()
    rows = tuple(
        tuple(tuple(row) for row in db.session.execute(text(f"SELECT * FROM {t} ORDER BY id")))
        for t in TABLES
    )
    settings = tuple(
        tuple(row)
        for row in db.session.execute(
            text("SELECT * FROM deliberation_settings ORDER BY community_id")
        )
    )
    files = tuple(sorted(p.name for p in world.upload_dir.iterdir()))
    return rows, settings, files


def outcome(response) -> object:
    if response.status_code == 302 and "/auth/login" in response.headers.get("Location", ""):
        return LOGIN
    if response.request.method == "POST" and response.status_code < 400:
        return OK
    return response.status_code


# ---------------------------------------------------------------- the matrix


@dataclass
class Action:
    method: str
    path: Callable[[SimpleNamespace], str]
    expected: dict[str, object]
    data: dict = field(default_factory=dict)
    prepare: Callable[[SimpleNamespace], None] | None = None


def _support_everyone(world):
    proposal = db.session.get(Proposal, world.p)
    for actor in READERS:
        db.session.add(Support(proposal_id=world.p, user_id=world.users[actor].id))
    proposal.support_count = len(READERS)
    db.session.commit()


def _hide_p(world):
    services.hide_proposal(
        world.users["moderator"], db.session.get(Proposal, world.p), "Hidden first"
    )
    db.session.commit()


def _hide_c(world):
    services.hide_comment(world.users["moderator"], db.session.get(Comment, world.c), "Rude")
    db.session.commit()


def _lock_p(world):
    services.set_locked(world.users["moderator"], db.session.get(Proposal, world.p), True, "Calm")
    db.session.commit()


REASON = {"reason": "A reason everyone can read"}

ACTIONS: dict[str, Action] = {
    # --- proposals
    "propose": Action(
        "POST",
        lambda w: f"/c/{w.a.id}/proposals/new",
        expect(WRITERS, OK, others=403),
        {"title": "Matrix idea", "body": "Words", "category": "other", "action": "publish"},
    ),
    "propose form": Action(
        "GET",
        lambda w: f"/c/{w.a.id}/proposals/new",
        expect(WRITERS, 200, others=403, visitor=LOGIN),
    ),
    "edit": Action(
        "POST",
        lambda w: f"/p/{w.own}/edit",
        expect(("resident",), OK),
        {"title": "Edited title", "body": "Edited words", "category": "other"},
    ),
    "edit form": Action(
        "GET", lambda w: f"/p/{w.own}/edit", expect(("resident",), 200, visitor=LOGIN)
    ),
    "publish": Action(
        "POST", lambda w: f"/p/{w.draft}/publish", expect(("resident",), OK, readers=404)
    ),
    "withdraw": Action(
        "POST", lambda w: f"/p/{w.own}/withdraw", expect(("resident",), OK), {"reason": "Done"}
    ),
    # --- support and following
    "support": Action(
        "POST", lambda w: f"/p/{w.p}/support", expect(WRITERS, OK), {"action": "support"}
    ),
    "unsupport": Action(
        "POST",
        lambda w: f"/p/{w.p}/support",
        expect(WRITERS, OK),
        {"action": "withdraw"},
        prepare=_support_everyone,
    ),
    "follow": Action(
        "POST", lambda w: f"/p/{w.p}/follow", expect(READERS, OK), {"action": "follow"}
    ),
    # --- the discussion
    "comment": Action(
        "POST",
        lambda w: f"/p/{w.p}/comments",
        expect(WRITERS, OK),
        {"stance": "for", "body": "Matrix comment"},
    ),
    "reply": Action(
        "POST",
        lambda w: f"/p/{w.p}/comments",
        expect(WRITERS, OK),
        {"stance": "question", "body": "Matrix reply", "parent_id": "{c}"},
    ),
    "helpful": Action("POST", lambda w: f"/comments/{w.c}/helpful", expect(WRITERS, OK)),
    "edit comment": Action(
        "POST",
        lambda w: f"/comments/{w.own_c}/edit",
        expect(("resident",), OK),
        {"body": "Edited comment"},
    ),
    "delete comment": Action(
        "POST", lambda w: f"/comments/{w.own_c}/delete", expect(("resident",), OK)
    ),
    # --- reports and moderation
    "report": Action("POST", lambda w: f"/p/{w.p}/report", expect(READERS, OK), REASON),
    "report comment": Action(
        "POST", lambda w: f"/comments/{w.c}/report", expect(READERS, OK), REASON
    ),
    "report form": Action("GET", lambda w: f"/p/{w.p}/report", expect(READERS, 200, visitor=LOGIN)),
    "hide": Action("POST", lambda w: f"/p/{w.p}/hide", expect(("moderator",), OK), REASON),
    "restore": Action(
        "POST",
        lambda w: f"/p/{w.p}/restore",
        expect(("moderator",), OK),
        REASON,
        prepare=_hide_p,
    ),
    "hide comment": Action(
        "POST", lambda w: f"/comments/{w.c}/hide", expect(("moderator",), OK), REASON
    ),
    "restore comment": Action(
        "POST",
        lambda w: f"/comments/{w.c}/restore",
        expect(("moderator",), OK),
        REASON,
        prepare=_hide_c,
    ),
    "lock": Action("POST", lambda w: f"/p/{w.p}/lock", expect(("moderator",), OK), REASON),
    "unlock": Action(
        "POST", lambda w: f"/p/{w.p}/unlock", expect(("moderator",), OK), REASON, prepare=_lock_p
    ),
    "suspend": Action(
        "POST",
        lambda w: f"/c/{w.a.id}/members/{w.target}/suspend",
        expect(("moderator",), OK, others=403),
        {"days": "3", "reason": "Repeated insults"},
    ),
    "suspend form": Action(
        "GET",
        lambda w: f"/c/{w.a.id}/members/{w.target}/suspend",
        expect(("moderator",), 200, others=403, visitor=LOGIN),
    ),
    "dismiss": Action(
        "POST",
        lambda w: f"/reports/{w.report}/dismiss",
        expect(("moderator",), OK, others=403),
        REASON,
    ),
    "moderation queue": Action(
        "GET",
        lambda w: f"/c/{w.a.id}/moderation",
        expect(("moderator",), 200, others=403, visitor=LOGIN),
    ),
    "moderation log": Action(
        "GET",
        lambda w: f"/c/{w.a.id}/moderation-log",
        expect(READERS, 200, others=403, visitor=LOGIN),
    ),
    # --- the committee
    "schedule": Action("POST", lambda w: f"/p/{w.q}/schedule", expect(("committee",), OK)),
    "close": Action("POST", lambda w: f"/p/{w.q}/close", expect(("committee",), OK), REASON),
    "settings": Action(
        "POST",
        lambda w: f"/c/{w.a.id}/settings",
        expect(("committee",), OK, others=403),
        {"mode": "number", "threshold": "50", "window_days": "20"},
    ),
    "settings page": Action(
        "GET",
        lambda w: f"/c/{w.a.id}/settings",
        expect(("committee",), 200, others=403, visitor=LOGIN),
    ),
    "add category": Action(
        "POST",
        lambda w: f"/c/{w.a.id}/categories",
        expect(("committee",), OK, others=403),
        {"cat-name": "Parking"},
    ),
    # --- reading
    "view list": Action(
        "GET",
        lambda w: f"/c/{w.a.id}/proposals",
        expect(READERS, 200, others=403, visitor=LOGIN),
    ),
    "view proposal": Action("GET", lambda w: f"/p/{w.p}", expect(READERS, 200, visitor=LOGIN)),
    "view draft": Action(
        "GET", lambda w: f"/p/{w.draft}", expect(("resident",), 200, readers=404, visitor=LOGIN)
    ),
    "view photo": Action(
        "GET", lambda w: f"/photos/{w.photo}", expect(READERS, 200, visitor=LOGIN)
    ),
    "view thumbnail": Action(
        "GET", lambda w: f"/photos/{w.photo}/thumb", expect(READERS, 200, visitor=LOGIN)
    ),
}


@pytest.mark.parametrize("name", list(ACTIONS))
def test_who_may_do_what(world, clients, name):
    action = ACTIONS[name]
    if action.prepare:
        action.prepare(world)
    path = action.path(world)
    data = {k: v.format(c=world.c) for k, v in action.data.items()}
    observed, changed = {}, {}
    # The refused first, so that each refusal meets the world as built.
    allowed = [a for a in ACTORS if action.expected[a] in (OK, 200)]
    before = snapshot(world)
    for actor in [a for a in ACTORS if a not in allowed] + allowed:
        client = clients[actor]
        response = client.get(path) if action.method == "GET" else post(client, path, data)
        observed[actor] = outcome(response)
        after = snapshot(world)
        changed[actor], before = after != before, after
    assert dict(sorted(observed.items())) == dict(sorted(action.expected.items()))
    writes = {actor: action.method == "POST" and result == OK for actor, result in observed.items()}
    assert changed == writes  # every refusal left everything as it was


# ---------------------------------------------------------------- walking into B (T27)


def test_members_of_a_cannot_reach_objects_of_the_sibling_compound(world, clients):
    b_paths_get = [
        f"/p/{world.pb}",
        f"/p/{world.pb}/edit",
        f"/p/{world.pb}/report",
        f"/comments/{world.cb}/edit",
        f"/comments/{world.cb}/report",
        f"/photos/{world.b_photo}",
        f"/photos/{world.b_photo}/thumb",
    ]
    b_posts = {
        f"/p/{world.pb}/support": {},
        f"/p/{world.pb}/follow": {},
        f"/p/{world.pb}/comments": {"stance": "for", "body": "Hi"},
        f"/p/{world.p}/comments": {"stance": "for", "body": "Hi", "parent_id": str(world.cb)},
        f"/comments/{world.cb}/helpful": {},
        f"/comments/{world.cb}/delete": {},
        f"/p/{world.pb}/hide": REASON,
        f"/comments/{world.cb}/hide": REASON,
        f"/p/{world.pb}/lock": REASON,
        f"/p/{world.pb}/schedule": {},
        f"/p/{world.pb}/close": REASON,
        f"/p/{world.pb}/withdraw": {},
        f"/p/{world.pb}/publish": {},
        f"/p/{world.pb}/report": REASON,
        f"/p/{world.pb}/edit": {"title": "Mine now", "body": "x", "category": "other"},
    }
    staff_pages = [
        f"/c/{world.b.id}/moderation",
        f"/c/{world.b.id}/settings",
        f"/c/{world.b.id}/proposals",
        f"/c/{world.b.id}/moderation-log",
        f"/c/{world.b.id}/members/{world.b_member}/suspend",
    ]
    before = snapshot(world)
    for actor in ("resident", "moderator", "committee"):
        client = clients[actor]
        seen = {path: client.get(path) for path in b_paths_get + staff_pages}
        assert {p: r.status_code for p, r in seen.items() if p in b_paths_get} == dict.fromkeys(
            b_paths_get, 404
        ), actor
        assert {p: r.status_code for p, r in seen.items() if p in staff_pages} == dict.fromkeys(
            staff_pages, 403
        ), actor
        posted = {path: post(client, path, data) for path, data in b_posts.items()}
        posted[f"/reports/{world.rb}/dismiss"] = post(
            client, f"/reports/{world.rb}/dismiss", REASON
        )
        posted["suspend B's member from A"] = post(
            client, f"/c/{world.a.id}/members/{world.b_member}/suspend", {"days": "3", **REASON}
        )
        statuses = {p: r.status_code for p, r in posted.items()}
        assert all(status in (403, 404) for status in statuses.values()), (actor, statuses)
        for response in [*seen.values(), *posted.values()]:
            body = response.get_data(as_text=True)
            assert "Maple secret" not in body, (actor, response.request.path)
    assert snapshot(world) == before


def test_members_above_and_inside_may_read_but_not_write(
    world, make_member, make_community, login_as
):
    from_parent = login_as(make_member(world.parent))
    building = make_community("Building 3", kind="building", parent=world.a)
    from_building = login_as(make_member(building))
    for client in (from_parent, from_building):
        assert client.get(f"/p/{world.p}").status_code == 200
        assert client.get(f"/photos/{world.photo}").status_code == 200
        assert client.get(f"/c/{world.a.id}/moderation-log").status_code == 200
        assert client.get(f"/p/{world.draft}").status_code == 404
        refused = post_form(client, f"/p/{world.p}/support", {})
        assert refused.status_code == 403
    assert from_building.get(f"/p/{world.pb}").status_code == 404
    assert from_parent.get(f"/p/{world.pb}").status_code == 200
    assert fresh(db.session.get(Proposal, world.p)).support_count == 0


# ---------------------------------------------------------------- mass assignment (T31)


def test_extra_form_fields_cannot_set_status_author_or_counts(world, clients):
    client = clients["resident"]
    path = f"/c/{world.a.id}/proposals/new"
    response = post(
        client,
        path,
        {
            "title": "Honest idea",
            "body": "Words",
            "category": "other",
            "action": "publish",
            "status": "accepted",
            "author_id": str(world.author.id),
            "community_id": str(world.b.id),
            "support_count": "999",
            "locked": "y",
        },
    )
    assert response.status_code == 302
    made = db.session.scalar(select(Proposal).where(Proposal.title == "Honest idea"))
    assert (made.status, made.author_id, made.community_id) == (
        "collecting",
        world.users["resident"].id,
        world.a.id,
    )
    assert (made.support_count, made.locked) == (0, False)

    report = post(
        client,
        f"/p/{world.p}/report",
        {"reason": "Look", "resolution": "dismissed", "reporter_id": str(world.author.id)},
    )
    assert report.status_code == 302
    newest = db.session.scalar(select(Report).order_by(Report.id.desc()))
    assert (newest.reporter_id, newest.resolution) == (world.users["resident"].id, None)


# ---------------------------------------------------------------- limits on writing (T46)


def test_a_burst_of_comments_from_one_member_is_slowed_down(world, clients):
    """T46: one member posting 30 comments within a minute is a flood, not a discussion.
    Expected: the later ones get 429 with a message saying when to try again, and
    nothing beyond the limit is stored. (The application has no such limit yet.)"""
    client = clients["resident"]
    path = f"/p/{world.p}/comments"
    statuses = [
        post(client, path, {"stance": "for", "body": f"Flood {n}"}).status_code for n in range(30)
    ]
    assert 429 in statuses, "no per-member limit on writing comments (RELIABILITY.md T46)"
    limited = statuses.index(429)
    assert set(statuses[limited:]) == {429}
    assert count(Comment, Comment.body.like("Flood %")) == limited
