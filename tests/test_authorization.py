"""Authorization (RELIABILITY.md I5, T27, T28, T29, T30, T31): a route x role matrix
generated from `app.url_map`, walking ids across communities, results hidden before a
round closes, role reach, and mass assignment.

The policy table below names the expected outcome of EVERY route for every kind of actor.
A route that exists in the application but not in the table fails
`test_policy_table_covers_every_route`, so adding a route forces a decision here. An
endpoint answering at several URL rules (a proposal's and a comment's report form, a photo
and its thumbnail) has one entry per rule, named `endpoint:variant` (see RULE_VARIANTS).

The helpers at the top (`build_world`, `snapshot`, `POLICY`, `post_request`, ...) are also
used by test_csrf_headers.py and test_input.py."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import current_app
from PIL import Image
from sqlalchemy import inspect, select, text

from tests.conftest import PASSWORD, csrf_token

# ---------------------------------------------------------------- actors and outcomes

ACTORS = (
    "visitor",  # anonymous
    "non_member",  # logged in, no membership anywhere
    "pending",  # asked to join the community under test, not decided yet
    "resident",  # verified resident of the community under test
    "suspended",  # verified resident of the community under test, suspended from writing
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
# can_read: verified members of the community (or of one above or below it), site admins
READERS = ("resident", "suspended", "moderator", "committee", "admin", "site_admin")
# participate: every verified role, unless suspended
PARTICIPANTS = ("resident", "moderator", "committee", "admin", "site_admin")
MODERATORS = ("moderator", "admin", "site_admin")  # moderate (never their own content)
RUNNERS = ("committee", "admin", "site_admin")  # run_rounds and configure
AUTHOR = ("resident",)  # the resident wrote the draft, proposal R and comment RC
# Voters of A's open round (ballots/services.py voter_of): verified, with a unit in A, not
# suspended. Moderator and admin have no unit (make_member), the site admin no membership.
RATERS = ("resident", "moderator", "committee", "admin")  # verified members of A itself
VOTERS = ("resident", "committee")
VOTER = ("resident",)  # cast the ballot whose receipt the matrix asks for


def _reach(allowed, allowed_outcome, *, visitor, refused=403, unseen=404) -> dict:
    """Deliberation: `unseen` for those who may not read the community (non-members,
    applicants, moderators of a sibling), `refused` for readers without the power."""
    row = _row(unseen, visitor=visitor, **dict.fromkeys(READERS, refused))
    row.update(dict.fromkeys(allowed, allowed_outcome))
    return row


# (endpoint, method) -> actor -> outcome. GET outcomes: a status code, LOGIN or HOME.
# POST outcomes: 401 / 403 / HOME (refused, nothing written) or OK.
POLICY: dict[tuple[str, str], dict[str, object]] = {
    # --- pages anyone may see
    ("community.home", "GET"): _row(200),
    ("community.browse", "GET"): _row(200),
    ("community.community_page", "GET"): _row(200),
    ("healthz", "GET"): _row(200),
    # from METRICS_ALLOWED addresses (the test client's 127.0.0.1), whoever is logged in;
    # 404 from any other address (tests/test_operations.py)
    ("metrics", "GET"): _row(200),
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
    # --- a member's own data: "My data" and its download, deleting the account
    ("privacy.my_data", "GET"): _row(200, visitor=LOGIN),
    ("privacy.download_data", "POST"): _row(OK, visitor=401),
    ("privacy.delete_account", "GET"): _row(200, visitor=LOGIN),
    ("privacy.delete_account", "POST"): _row(OK, visitor=401),
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
    # --- deliberation: community pages (403 for those who may not read the community)
    ("deliberation.proposals", "GET"): _reach(READERS, 200, visitor=LOGIN, unseen=403),
    ("deliberation.new_proposal", "GET"): _reach(PARTICIPANTS, 200, visitor=LOGIN, unseen=403),
    ("deliberation.new_proposal", "POST"): _reach(PARTICIPANTS, OK, visitor=401, unseen=403),
    ("deliberation.moderation_log", "GET"): _reach(READERS, 200, visitor=LOGIN, unseen=403),
    # the whole audit log for RUNNERS, its moderation part for the other readers
    ("audit.community_log", "GET"): _reach(READERS, 200, visitor=LOGIN, unseen=403),
    ("deliberation.moderation_queue", "GET"): _reach(MODERATORS, 200, visitor=LOGIN, unseen=403),
    ("deliberation.suspend", "GET"): _reach(MODERATORS, 200, visitor=LOGIN, unseen=403),
    ("deliberation.suspend", "POST"): _reach(MODERATORS, OK, visitor=401, unseen=403),
    ("deliberation.dismiss", "POST"): _reach(MODERATORS, OK, visitor=401, unseen=403),
    ("deliberation.settings", "GET"): _reach(RUNNERS, 200, visitor=LOGIN, unseen=403),
    ("deliberation.settings", "POST"): _reach(RUNNERS, OK, visitor=401, unseen=403),
    # categories are part of the settings ("configure" in community/permissions.py)
    ("deliberation.add_category", "POST"): _reach(RUNNERS, OK, visitor=401, unseen=403),
    # --- deliberation: proposals, comments, photos (404 for those who may not see them)
    ("deliberation.proposal_page", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("deliberation.photo:full", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("deliberation.photo:thumb", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("deliberation.report:proposal", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("deliberation.report:proposal", "POST"): _reach(READERS, OK, visitor=401),
    ("deliberation.report:comment", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("deliberation.report:comment", "POST"): _reach(READERS, OK, visitor=401),
    ("deliberation.follow", "POST"): _reach(READERS, OK, visitor=401),
    ("deliberation.support", "POST"): _reach(PARTICIPANTS, OK, visitor=401),
    ("deliberation.post_comment", "POST"): _reach(PARTICIPANTS, OK, visitor=401),
    ("deliberation.helpful", "POST"): _reach(PARTICIPANTS, OK, visitor=401),
    ("deliberation.schedule", "POST"): _reach(RUNNERS, OK, visitor=401),
    ("deliberation.close", "POST"): _reach(RUNNERS, OK, visitor=401),
    ("deliberation.moderate:proposal", "POST"): _reach(MODERATORS, OK, visitor=401),
    ("deliberation.moderate:comment", "POST"): _reach(MODERATORS, OK, visitor=401),
    ("deliberation.lock", "POST"): _reach(MODERATORS, OK, visitor=401),
    # --- deliberation: the author's own (a draft is seen by nobody else: 404)
    ("deliberation.publish", "POST"): _reach(AUTHOR, OK, visitor=401, refused=404),
    ("deliberation.edit_proposal", "GET"): _reach(AUTHOR, 200, visitor=LOGIN),
    ("deliberation.edit_proposal", "POST"): _reach(AUTHOR, OK, visitor=401),
    ("deliberation.withdraw", "POST"): _reach(AUTHOR, OK, visitor=401),
    ("deliberation.edit_comment", "GET"): _reach(AUTHOR, 200, visitor=LOGIN),
    ("deliberation.edit_comment", "POST"): _reach(AUTHOR, OK, visitor=401),
    ("deliberation.delete_comment", "POST"): _reach(AUTHOR, OK, visitor=401),
    # --- deliberation: one's own notifications
    # --- the feedback loop (implementation of W, completed work WC; see add_implementation)
    ("deliberation.accountability_board", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("deliberation.accountability_csv", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("deliberation.accountability_json", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("deliberation.decision_notice", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("deliberation.plan", "GET"): _reach(RUNNERS, 200, visitor=LOGIN),
    ("deliberation.plan", "POST"): _reach(RUNNERS, OK, visitor=401),
    ("deliberation.post_update", "GET"): _reach(RUNNERS, 200, visitor=LOGIN),
    ("deliberation.post_update", "POST"): _reach(RUNNERS, OK, visitor=401),
    ("deliberation.comment_on_update", "POST"): _reach(PARTICIPANTS, OK, visitor=401),
    # Only verified members of the community itself rate (not the site admin), never the
    # suspended one.
    ("deliberation.rate", "POST"): _reach(RATERS, OK, visitor=401),
    ("deliberation.rate_milestone", "POST"): _reach(RATERS, OK, visitor=401),
    ("deliberation.notifications", "GET"): _row(200, visitor=LOGIN),
    ("deliberation.read_notifications", "POST"): _row(OK, visitor=401),
    # --- ballots: the community's pages (403 for those who may not read the community).
    # The rounds each route acts on are in ROUTE_OBJECTS (see add_ballots).
    ("ballots.rounds", "GET"): _reach(READERS, 200, visitor=LOGIN, unseen=403),
    ("ballots.new_round", "GET"): _reach(RUNNERS, 200, visitor=LOGIN, unseen=403),
    ("ballots.new_round", "POST"): _reach(RUNNERS, OK, visitor=401, unseen=403),
    # --- ballots: a round's pages (404 for those who may not read its community, since
    # services.get_round hides the round); the open round unless ROUTE_OBJECTS says else
    ("ballots.round_page", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("ballots.notice", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("ballots.verify_receipt", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("ballots.verify_receipt", "POST"): _reach(READERS, OK, visitor=401),  # reads only
    # the one-question-per-screen ballot and the cast: the round's voters (NotEligible 403)
    ("ballots.vote", "GET"): _reach(VOTERS, 200, visitor=LOGIN),
    ("ballots.vote", "POST"): _reach(VOTERS, OK, visitor=401),  # the next step: reads only
    ("ballots.cast", "POST"): _reach(VOTERS, OK, visitor=401),
    # a receipt is its voter's alone: anybody else, committee or site admin, gets 404
    ("ballots.receipt", "GET"): _reach(VOTER, 200, visitor=LOGIN, refused=404),
    # run_rounds: the scheduled round (edit), the open one (paper), the closed one (annul)
    ("ballots.edit_round", "GET"): _reach(RUNNERS, 200, visitor=LOGIN),
    ("ballots.edit_round", "POST"): _reach(RUNNERS, OK, visitor=401),
    ("ballots.paper_ballot", "GET"): _reach(RUNNERS, 200, visitor=LOGIN),
    ("ballots.paper_ballot", "POST"): _reach(RUNNERS, OK, visitor=401),
    ("ballots.annul", "POST"): _reach(RUNNERS, OK, visitor=401),
    ("ballots.answer_objection", "POST"): _reach(RUNNERS, OK, visitor=401),
    # objections to the closed round's preliminary result: "participate" (not suspended),
    # voters or not, during the objection period
    ("ballots.raise_objection", "POST"): _reach(PARTICIPANTS, OK, visitor=401),
    # results and the board of the CLOSED round: its readers. Of the open round: nobody,
    # see HIDDEN_BEFORE_CLOSE.
    ("ballots.results_csv", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("ballots.results_json", "GET"): _reach(READERS, 200, visitor=LOGIN),
    ("ballots.board_json", "GET"): _reach(READERS, 200, visitor=LOGIN),
}

# T30: before the close, results and the board are nobody's: 403 (ResultsNotPublished) for
# every reader of the round, the committee, the admins and the site admin included; 404 for
# those who may not read the round at all.
HIDDEN_BEFORE_CLOSE = _reach((), None, visitor=LOGIN)
RESULT_DOWNLOADS = ("ballots.results_csv", "ballots.results_json", "ballots.board_json")
# The reading pages, checked for every round of A (open, closed, scheduled).
ROUND_READING_PAGES = ("ballots.round_page", "ballots.notice", "ballots.verify_receipt")

# Endpoints with several URL rules: one POLICY entry per rule, `endpoint:variant`.
RULE_VARIANTS = {
    "/p/<int:proposal_id>/<any(hide, restore):action>": "proposal",
    "/comments/<int:comment_id>/<any(hide, restore):action>": "comment",
    "/p/<int:proposal_id>/report": "proposal",
    "/comments/<int:comment_id>/report": "comment",
    "/photos/<name>": "full",
    "/photos/<name>/thumb": "thumb",
}

GET_ENDPOINTS = sorted(e for e, m in POLICY if m == "GET")
POST_ENDPOINTS = sorted(e for e, m in POLICY if m == "POST")


def route_name(app, rule) -> str:
    """The endpoint, or `endpoint:variant` when the endpoint has several rules (an
    unnamed rule shows up as `endpoint:<rule>` so the coverage test names it)."""
    rules = [r for r in app.url_map.iter_rules() if r.endpoint == rule.endpoint]
    if len(rules) == 1:
        return rule.endpoint
    return f"{rule.endpoint}:{RULE_VARIANTS.get(rule.rule, rule.rule)}"


def app_routes(app) -> set[tuple[str, str]]:
    """Every (route, method) the application answers, except static files."""
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((route_name(app, rule), method))
    return found


def rule_of(app, route: str):
    return next(r for r in app.url_map.iter_rules() if route_name(app, r) == route)


# ---------------------------------------------------------------- the world under test


def membership_id(db, user, community) -> int:
    from community.models import Membership

    return db.session.scalar(
        select(Membership.id).where(
            Membership.user_id == user.id, Membership.community_id == community.id
        )
    )


def tiny_jpeg(color: str = "orange") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (12, 8), color).save(out, "JPEG")
    return out.getvalue()


def upload_dir() -> Path:
    configured = current_app.config.get("UPLOAD_DIR")
    assert configured, "the test app needs UPLOAD_DIR (see the app_config fixture)"
    return Path(configured)


def _endpoint_param(request):
    callspec = getattr(request.node, "callspec", None)
    return callspec.params.get("endpoint") if callspec else None


def needs_deliberation(request) -> bool:
    """Deliberation objects cost a few hundred queries: tests of a community route (a
    matrix row of a non-deliberation endpoint) and those a module lists in its
    WITHOUT_DELIBERATION do without them."""
    endpoint = _endpoint_param(request)
    if isinstance(endpoint, str):
        return endpoint.startswith("deliberation.")
    return request.node.originalname not in getattr(request.module, "WITHOUT_DELIBERATION", ())


def needs_ballots(request) -> bool:
    """Voting rounds (see `add_ballots`): for a matrix row of a ballots endpoint, for the
    tests that have deliberation (those that go through every route), and for those a
    module lists in its WITH_BALLOTS."""
    endpoint = _endpoint_param(request)
    if isinstance(endpoint, str):
        return endpoint.startswith("ballots.")
    listed = request.node.originalname in getattr(request.module, "WITH_BALLOTS", ())
    return listed or needs_deliberation(request)


def build_world(
    db,
    make_community,
    make_member,
    make_user,
    deliberation: bool = True,
    ballots: bool | None = None,
) -> SimpleNamespace:
    """Community A ("Sunny Garden", the one under test) and its sibling B ("Maple Court"),
    both compounds inside P ("Riverside"), with one user per actor, a pending applicant and
    a verified target in A, private data in B, and a voter roll in A with one invitation.
    Deliberation in A and B: see `add_deliberation`; voting rounds in A and B (by default
    with deliberation): see `add_ballots`."""
    from community import services
    from community.models import RollEntry

    parent = make_community("Riverside Community", "community")
    a = make_community("Sunny Garden", "compound", parent=parent)
    b = make_community("Maple Court", "compound", parent=parent)
    users = {
        "non_member": make_user(),
        "pending": make_member(a, status="pending"),
        "resident": make_member(a),
        "suspended": make_member(a),
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
    world = SimpleNamespace(
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
        b_secrets=[
            "Bertha Hidden",
            "Boris Concealed",
            "Maple Secret 7",
            "Maple Secret 9",
            "Bianca Private",
            b_applicant.phone,
            b_resident.phone,
        ],
    )
    if deliberation:
        add_deliberation(db, world, make_member)
    if deliberation if ballots is None else ballots:
        add_ballots(db, world, make_member)
    return world


B_PROPOSAL_TITLE = "Maple Secret rooftop garden"
B_PROPOSAL_BODY = "Maple Secret plan: the roof of block M3 becomes a garden."
B_COMMENT = "Maple Secret comment: the roof cannot carry the soil."
B_REPORT = "Maple Secret report reason"
B_MODERATION = "Maple Secret moderation reason"
B_PHOTO_NAME = "maple-secret-roof.jpg"


def add_deliberation(db, world, make_member) -> None:
    """In A: proposal P (collecting support, with a photo) and Q (in deliberation) by
    another resident ("author"), with the author's comment C and the resident's comment RC
    on P and the resident's report of C; the resident's draft D and published proposal R;
    the suspended actor's suspension. A needs 50 supporters, so support never moves P on.
    In B: proposal PB with a photo, comments CB and a hidden one, and a report RB, all
    carrying text that must never reach A's members. Everybody has unread notifications."""
    from community.models import Membership, utcnow
    from deliberation import photos, services
    from deliberation.models import DeliberationSettings, Photo

    def draft(title: str, body: str, category: str = "facilities", cost=None):
        return services.ProposalDraft(title, body, category, cost)

    def photo(color: str, name: str):
        return [(photos.prepare_photo(tiny_jpeg(color)), name)]

    users, a, b = world.users, world.a, world.b
    resident = users["resident"]
    author = make_member(world.a, name="Auntie Author")
    db.session.add(
        DeliberationSettings(
            community_id=a.id, support_threshold=50, support_percent=None, support_window_days=30
        )
    )
    db.session.flush()
    p = services.submit_proposal(
        author,
        a,
        draft(
            "Repair the lamp by gate 2",
            "The lamp by **gate 2** has been dark for a month.",
            cost="300",
        ),
        publish=True,
        photos=photo("orange", "lamp.jpg"),
        upload_dir=upload_dir(),
    )
    q = services.submit_proposal(
        author, a, draft("Paint the fence", "The fence is rusty."), publish=True
    )
    services.change_status(q, "deliberation")
    c = services.post_comment(author, p, "It gets dark at six in winter.", "for")
    rc = services.post_comment(resident, p, "Who pays for the repair?", "question")
    report = services.report(resident, p, "The comment shouts at people.", c)
    d = services.submit_proposal(
        resident, a, draft("Bike shed (draft)", "A shed for twenty bikes."), publish=False
    )
    r = services.submit_proposal(
        resident,
        a,
        draft("Quiet hours sign", "A sign about quiet hours after 22:00."),
        publish=True,
    )
    suspended = db.session.scalar(
        select(Membership).where(
            Membership.user_id == users["suspended"].id, Membership.community_id == a.id
        )
    )
    said = services.post_comment(users["suspended"], p, "Before the suspension.", "against")
    services.suspend_member(users["moderator"], suspended, 7, "Shouted at the neighbours.")

    other_moderator = users["other_moderator"]
    pb = services.submit_proposal(
        world.b_resident,
        b,
        draft(B_PROPOSAL_TITLE, B_PROPOSAL_BODY),
        publish=True,
        photos=photo("green", B_PHOTO_NAME),
        upload_dir=upload_dir(),
    )
    cb = services.post_comment(world.b_resident, pb, B_COMMENT, "against")
    hidden_b = services.post_comment(world.b_resident, pb, "A rude remark", "against")
    services.hide_comment(other_moderator, hidden_b, B_MODERATION)
    rb = services.report(other_moderator, pb, B_REPORT, cb)
    services.notify([u.id for u in users.values()], "status_changed")
    db.session.commit()

    def stored_name(proposal) -> str:
        return db.session.scalar(select(Photo.stored_name).where(Photo.proposal_id == proposal.id))

    world.author = author
    world.p_id, world.q_id, world.d_id, world.r_id = p.id, q.id, d.id, r.id
    world.c_id, world.rc_id, world.report_id = c.id, rc.id, report.id
    world.photo_name = stored_name(p)
    world.suspended_id, world.suspended_comment_id = suspended.id, said.id
    world.pb_id, world.cb_id, world.rb_id = pb.id, cb.id, rb.id
    world.hidden_b_id = hidden_b.id
    world.b_photo_name = stored_name(pb)
    world.b_secrets += [B_PROPOSAL_TITLE, B_PROPOSAL_BODY, B_COMMENT, B_REPORT, B_MODERATION]
    # (Not the photo's stored name: it is in the URL, and pages repeat their own URL.)
    world.b_secrets += ["Maple Secret", B_PHOTO_NAME]
    add_implementation(db, world)
    assert (upload_dir() / world.photo_name).is_file()
    assert (upload_dir() / f"thumb-{world.photo_name}").is_file()
    assert utcnow() < suspended.suspended_until < utcnow() + timedelta(days=8)


def add_implementation(db, world) -> None:
    """In A: proposal W, accepted and in implementation, with a plan whose milestone M
    is reached by the committee's update U; proposal WC, accepted and completed."""
    from sqlalchemy import update

    from community.models import utcnow
    from deliberation import implementation, services
    from deliberation.lifecycle import Status
    from deliberation.models import Proposal

    committee = world.users["committee"]

    def decided(title: str):
        proposal = services.submit_proposal(
            world.author,
            world.a,
            services.ProposalDraft(title, "Decided by a vote.", "facilities", None),
            publish=True,
        )
        db.session.execute(
            update(Proposal).where(Proposal.id == proposal.id).values(status=Status.VOTING.value)
        )
        db.session.refresh(proposal)
        implementation.decide(proposal, True, decided_at=utcnow(), summary="Passed.")
        return proposal, implementation.implementation_of(proposal)

    w, work = decided("Replace the gate lock")
    implementation.plan(
        committee,
        work,
        implementation.PlanDraft("Property office", milestones=[("Order", "2099-01-01")]),
    )
    entry = implementation.post_update(
        committee,
        work,
        implementation.UpdateDraft(
            "Ordered.", 20, "in_progress", milestone_id=work.milestones[0].id
        ),
    )
    wc, done = decided("Fix the bench")
    implementation.post_update(
        committee, done, implementation.UpdateDraft("Fixed.", 100, "completed")
    )
    db.session.commit()
    world.w_id, world.wc_id = w.id, wc.id
    world.update_id, world.milestone_id = entry.id, work.milestones[0].id


A_OPEN_QUESTION = "Buy new bins for gate 1?"
A_CLOSED_QUESTION = "Paint the fence green?"
A_OBJECTION = "The count left out building 4."
B_ROUND_TITLE = "Maple Secret roof vote"
B_QUESTION = "Maple Secret: solar panels on the roof?"
B_OBJECTION = "Maple Secret objection: the count is wrong."
B_CHAIR = "Bruno Maple Chair"
BALLOT_TABLES = (
    "rounds",
    "round_questions",
    "round_voters",
    "round_credentials",
    "ballots",
    "board_entries",
    "round_objections",
)


def add_ballots(db, world, make_member) -> None:
    """Voting rounds (electorate: residents), on the real clock:
    in A, an OPEN round in which the resident (receipt R) and the committee member have
    voted and the target holds a place, still without a ballot (for paper ballots); a
    CLOSED round (both voted, tallied, objection period running) with the resident's
    objection, not answered; a SCHEDULED round (editable).
    In B, a closed round created by B's chair, with a ballot and an objection of B's
    resident, carrying text that must never reach A's members.
    The suspended actor is suspended (as with deliberation) for voting and objecting."""
    from ballots import services
    from ballots.models import Voter
    from community import services as community_services
    from community.models import Membership, utcnow

    users, a, b = world.users, world.a, world.b
    now = utcnow()

    def create(community, actor, title, question, opens_at, closes_at, created=None):
        draft = services.RoundDraft(
            title=title,
            opens_at=opens_at,
            closes_at=closes_at,
            objection_days=7,
            questions=[services.QuestionDraft(title=question)],
        )
        return services.create_round(actor, community, draft, now=created or opens_at)

    def cast(user, round_, answer, when):
        return services.cast_ballot(user, round_, {"q1": [answer]}, services.new_nonce(), now=when)

    def open_(round_, when):  # committed, as the scheduled job does
        assert services.open_round(round_.id, when)
        db.session.commit()
        db.session.refresh(round_)

    def close(round_, when):
        assert services.close_round(round_.id, when)
        db.session.commit()
        db.session.refresh(round_)

    suspended = db.session.scalar(
        select(Membership).where(
            Membership.user_id == users["suspended"].id, Membership.community_id == a.id
        )
    )
    if not suspended.is_suspended():
        community_services.suspend(
            users["moderator"], suspended, now + timedelta(days=7), "Shouted at the neighbours."
        )

    committee = users["committee"]
    opens = now - timedelta(days=1)
    open_round = create(
        a, committee, "Open: new bins", A_OPEN_QUESTION, opens, now + timedelta(days=6)
    )
    open_(open_round, opens)
    receipt = cast(users["resident"], open_round, "yes", now - timedelta(minutes=5))
    cast(committee, open_round, "no", now - timedelta(minutes=4))

    opens = now - timedelta(days=10)
    closed_round = create(
        a, committee, "Closed: the fence", A_CLOSED_QUESTION, opens, now - timedelta(days=3)
    )
    open_(closed_round, opens)
    cast(users["resident"], closed_round, "yes", opens + timedelta(hours=1))
    cast(committee, closed_round, "yes", opens + timedelta(hours=2))
    close(closed_round, closed_round.closes_at)
    objection = services.raise_objection(users["resident"], closed_round, A_OBJECTION, now)

    opens = now + timedelta(days=10)
    scheduled = create(
        a,
        committee,
        "Scheduled: a bike shed",
        "Build a bike shed?",
        opens,
        opens + timedelta(days=7),
        created=now,
    )

    b_chair = make_member(b, role="committee", name=B_CHAIR)
    opens = now - timedelta(days=10)
    b_round = create(b, b_chair, B_ROUND_TITLE, B_QUESTION, opens, now - timedelta(days=3))
    open_(b_round, opens)
    b_ballot = cast(world.b_resident, b_round, "yes", opens + timedelta(hours=1))
    close(b_round, b_round.closes_at)
    b_objection = services.raise_objection(world.b_resident, b_round, B_OBJECTION, now)
    db.session.commit()

    def voter_id(round_, user) -> int:
        return db.session.scalar(
            select(Voter.id).where(Voter.round_id == round_.id, Voter.user_id == user.id)
        )

    world.open_id, world.closed_id, world.scheduled_id = (
        open_round.id,
        closed_round.id,
        scheduled.id,
    )
    world.receipt_id, world.receipt_text = receipt.id, receipt.receipt
    world.objection_id = objection.id
    world.paper_voter_id = voter_id(open_round, world.target)
    world.b_round_id, world.b_ballot_id = b_round.id, b_ballot.id
    world.b_receipt_text, world.b_objection_id = b_ballot.receipt, b_objection.id
    world.b_voter_id = voter_id(b_round, world.b_resident)
    world.b_secrets += [B_ROUND_TITLE, B_QUESTION, B_OBJECTION, B_CHAIR]
    assert (open_round.status, closed_round.status, scheduled.status, b_round.status) == (
        "open",
        "closed",
        "scheduled",
        "closed",
    )
    assert services.objections_open(closed_round) and world.paper_voter_id
    assert suspended.is_suspended()


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


# Tests that need no proposals, comments or photos in the world (see needs_deliberation).
WITHOUT_DELIBERATION = {
    "test_staff_of_a_cannot_open_pages_of_b",
    "test_moderator_of_a_cannot_decide_in_b",
    "test_membership_of_b_through_a_url_is_not_found",
    "test_role_of_b_member_through_a_url_is_not_found",
    "test_nonexistent_ids_are_a_friendly_404",
    "test_resident_cannot_approve_a_join",
    "test_moderator_of_b_has_no_power_in_a",
    "test_admin_of_the_parent_reaches_the_child",
    "test_moderator_of_the_parent_does_not_reach_the_child",
    "test_admin_of_a_child_has_no_power_over_the_parent",
    "test_pending_and_rejected_staff_have_no_power",
    "test_join_ignores_extra_fields",
    "test_decision_ignores_extra_fields",
    "test_profile_ignores_extra_fields",
    "test_register_ignores_extra_fields",
    "test_snapshot_covers_the_ballots_tables",
    "test_results_are_hidden_before_close_for_every_role",
    "test_round_of_b_is_not_found_through_any_route",
}
# Tests without deliberation that need the voting rounds (see needs_ballots).
WITH_BALLOTS = {
    "test_snapshot_covers_the_ballots_tables",
    "test_results_are_hidden_before_close_for_every_role",
    "test_round_of_b_is_not_found_through_any_route",
}


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


# The object each route acts on: P unless named here (see add_deliberation).
ROUTE_OBJECTS = {
    "deliberation.schedule": {"proposal_id": "q_id"},
    "deliberation.close": {"proposal_id": "q_id"},
    "deliberation.publish": {"proposal_id": "d_id"},
    "deliberation.edit_proposal": {"proposal_id": "r_id"},
    "deliberation.withdraw": {"proposal_id": "r_id"},
    "deliberation.edit_comment": {"comment_id": "rc_id"},
    "deliberation.delete_comment": {"comment_id": "rc_id"},
    "deliberation.suspend": {"membership_id": "target_id"},
    "deliberation.plan": {"proposal_id": "w_id"},
    "deliberation.post_update": {"proposal_id": "w_id"},
    "deliberation.decision_notice": {"proposal_id": "w_id"},
    "deliberation.rate_milestone": {"proposal_id": "w_id"},
    "deliberation.rate": {"proposal_id": "wc_id"},
    "ballots.edit_round": {"round_id": "scheduled_id"},
    "ballots.results_csv": {"round_id": "closed_id"},
    "ballots.results_json": {"round_id": "closed_id"},
    "ballots.board_json": {"round_id": "closed_id"},
    "ballots.raise_objection": {"round_id": "closed_id"},
    "ballots.annul": {"round_id": "closed_id"},
}
ACTION_OF = {"deliberation.moderate": "hide", "deliberation.lock": "lock"}


def path_for(app, route: str, world, **overrides) -> str:
    """The URL of a route with realistic ids: community A, A's pending membership, P and
    its comment C, the report of C, P's photo, A's open round with the resident's ballot
    and the objection to A's closed round, unless ROUTE_OBJECTS names another."""
    rule = rule_of(app, route)
    values = {
        "community_id": world.a.id,
        "membership_id": world.pending_id,
        "proposal_id": getattr(world, "p_id", None),
        "comment_id": getattr(world, "c_id", None),
        "report_id": getattr(world, "report_id", None),
        "name": getattr(world, "photo_name", None),
        "action": ACTION_OF.get(rule.endpoint),
        "round_id": getattr(world, "open_id", None),
        "ballot_id": getattr(world, "receipt_id", None),
        "objection_id": getattr(world, "objection_id", None),
        "update_id": getattr(world, "update_id", None),
        "milestone_id": getattr(world, "milestone_id", None),
    }
    for key, attribute in ROUTE_OBJECTS.get(rule.endpoint, {}).items():
        values[key] = getattr(world, attribute)
    values.update(overrides)
    built = rule.build({k: v for k, v in values.items() if k in rule.arguments}, False)
    assert built is not None, (route, values)
    return built[1]


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
    if endpoint == "privacy.download_data":  # writes the export's audit entry
        return Req(path(endpoint))
    if endpoint == "privacy.delete_account":
        return Req(path(endpoint), {"password": PASSWORD})
    if endpoint == "community.set_language":
        return Req(path(endpoint), {"language": "en", "next": "/"}, writes=user is not None)
    if endpoint == "community.set_text_size":
        return Req(path(endpoint), {"size": "large", "next": "/"}, writes=user is not None)
    deliberation = deliberation_request(endpoint, actor)
    if deliberation is not None:
        data, extra = deliberation
        return Req(path(endpoint), data, **extra)
    work = implementation_request(endpoint, actor)
    if work is not None:
        return Req(path(endpoint), work)
    ballot = ballots_request(endpoint, world, actor)
    if ballot is not None:
        data, extra = ballot
        return Req(path(endpoint), data, **extra)
    raise AssertionError(f"no POST request written for {endpoint}: add one")


def round_form(world, title: str, opens_in_days: int) -> dict:
    """The round form (ballots/forms.py RoundForm) as a browser sends it, times in A's
    time zone."""
    from zoneinfo import ZoneInfo

    from community.models import utcnow

    def local(days: int) -> str:
        moment = utcnow() + timedelta(days=days)
        return moment.astimezone(ZoneInfo(world.a.timezone)).strftime("%Y-%m-%dT%H:%M")

    return {
        "title": title,
        "explanation": "New bins by the gate.",
        "scope": "",
        "opens_at": local(opens_in_days),
        "closes_at": local(opens_in_days + 7),
        "electorate": "residents",
        "secrecy": "secret",
        "objection_days": "7",
        "questions-0-title": "Buy the bins?",
        "questions-0-method": "yes_no_abstain",
        "questions-0-option_labels": "",
        "questions-0-max_choices": "1",
        "questions-0-rule": "simple_majority",
        "questions-0-quorum": "",
        "questions-0-proposal": "",
        "questions-1-title": "",
        "questions-2-title": "",
    }


def implementation_request(route: str, actor: str) -> dict | None:
    """Form data of a valid POST of the feedback loop."""
    if route == "deliberation.plan":
        return {
            "responsible": f"Property office ({actor})",
            "responsible_user": "",
            "budget": "500",
            "budget_source": "public income",
            "milestone_title": ["Order"],
            "milestone_due": ["2099-01-01"],
        }
    if route == "deliberation.post_update":
        return {"body": f"Progress by {actor}.", "status": "in_progress", "percent": "40"}
    if route == "deliberation.comment_on_update":
        return {"body": f"Thanks, says {actor}."}
    if route == "deliberation.rate":
        return {"satisfaction": "4", "as_decided": "yes", "comment": f"Rated by {actor}"}
    if route == "deliberation.rate_milestone":
        return {"satisfaction": "3", "comment": f"So far so good, says {actor}"}
    return None


def ballots_request(route: str, world, actor: str) -> tuple[dict, dict] | None:
    """Form data (and Req options) of a valid ballots POST. A fresh nonce each time, as
    each page shows one."""
    from ballots.services import new_nonce

    if route == "ballots.new_round":
        return round_form(world, f"New bins ({actor})", 20), {}
    if route == "ballots.edit_round":
        return round_form(world, f"A bike shed, changed by {actor}", 12), {}
    if route == "ballots.vote":  # the first question answered: the review page, no write
        return {"nonce": new_nonce(), "step": "0", "a_q1": "yes"}, {"writes": False}
    if route == "ballots.cast":
        return {"nonce": new_nonce(), "a_q1": "abstain"}, {}
    if route == "ballots.paper_ballot":
        data = {
            "voter": str(world.paper_voter_id),
            "channel": "paper",
            "witness": "Neighbour Zhao",
            "proxy_note": "",
            "nonce": new_nonce(),
            "a_q1": "no",
        }
        return data, {}
    if route == "ballots.verify_receipt":  # a check: it writes nothing
        return {"receipt": world.receipt_text}, {"writes": False}
    if route == "ballots.raise_objection":
        return {"body": f"Objection of {actor}: building 5 was not on the list."}, {}
    if route == "ballots.answer_objection":
        return {"answer": f"{actor} answers: building 4 was counted."}, {}
    if route == "ballots.annul":
        return {"reason": f"Annulled by {actor}: the notice was not posted."}, {}
    return None


def deliberation_request(route: str, actor: str) -> tuple[dict, dict] | None:
    """Form data (and Req options) of a valid deliberation POST."""
    reason = {"reason": f"Reason given by {actor}: off topic."}
    proposal = {
        "title": f"Benches by the pond ({actor})",
        "body": "Two benches by the pond, *in the shade*.",
        "category": "facilities",
        "estimated_cost": "1,200",
    }
    requests = {
        "deliberation.new_proposal": {
            **proposal,
            "action": "publish",
            "photos": (io.BytesIO(tiny_jpeg("navy")), "pond.jpg"),
        },
        "deliberation.edit_proposal": {**proposal, "action": ""},
        "deliberation.publish": {},
        "deliberation.withdraw": reason,
        "deliberation.support": {},
        "deliberation.follow": {"action": "unfollow"},  # the resident follows P already
        "deliberation.schedule": {},
        "deliberation.close": reason,
        "deliberation.post_comment": {"stance": "for", "body": f"Good idea, says {actor}."},
        "deliberation.edit_comment": {"body": "Who pays for the repair, and when?"},
        "deliberation.delete_comment": {},
        "deliberation.helpful": {},
        "deliberation.report:proposal": reason,
        "deliberation.report:comment": reason,
        "deliberation.moderate:proposal": reason,
        "deliberation.moderate:comment": reason,
        "deliberation.lock": reason,
        "deliberation.dismiss": reason,
        "deliberation.suspend": {"days": "7", **reason},
        "deliberation.read_notifications": {},
        "deliberation.settings": {"mode": "number", "threshold": "40", "window_days": "21"},
    }
    if route == "deliberation.add_category":
        return {"cat-name": f"Parking {actor}"}, {"token_field": "cat-csrf_token"}
    if route in requests:
        return requests[route], {}
    return None


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
    # Every GET route on its object, and the reading pages of each of A's rounds.
    paths = [(endpoint, path_for(app, endpoint, world)) for endpoint in GET_ENDPOINTS]
    paths += [
        (endpoint, path_for(app, endpoint, world, round_id=getattr(world, round_id)))
        for endpoint in ROUND_READING_PAGES
        for round_id in ("closed_id", "scheduled_id")
    ]
    for endpoint, path in paths:
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
    assert set(BALLOT_TABLES) <= set(before)  # refused ballots POSTs wrote no ballots row
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


def test_snapshot_covers_the_ballots_tables(db, world):
    """The snapshot that proves a refused POST wrote nothing reads every ballots table, and
    in this world each of them has rows (the ballots, board entries, credentials, voters
    and objections of A's and B's rounds), so a change or a deletion shows."""
    before = snapshot(db)
    empty = [table for table in BALLOT_TABLES if not before.get(table)]
    assert not empty, f"ballots tables without rows in the world: {empty}"


# ================================================================ T30: results before close

# What only a tallied round's pages show: the result section, its table, chart and verdict.
RESULT_MARKERS = (
    "Preliminary result",
    "Final result",
    "初步结果",
    'class="card result"',
    'class="chart"',
    "verdict",
    "Took part",
    '/results.csv"',  # the links to the downloads (the verify page names board.json)
    '/results.json"',
    '/board.json"',
)


def test_results_are_hidden_before_close_for_every_role(app, db, world, clients):
    """T30: while a round is open nobody, not even the committee, an admin or the site
    admin, sees a count: no page of the open round shows a result, and its results (CSV,
    JSON) and board are refused to every reader (403) and hidden from everybody else
    (404). The same markers do show on the closed round, so they are the right ones."""
    from ballots.models import Round

    db.session.rollback()
    open_round = db.session.get(Round, world.open_id)
    assert open_round.status == "open" and open_round.head_n >= 4  # ballots on the board
    round_pages = [
        path_for(app, endpoint, world)
        for endpoint in (
            "ballots.round_page",
            "ballots.notice",
            "ballots.verify_receipt",
            "ballots.vote",
            "ballots.paper_ballot",
            "ballots.receipt",
        )
    ]
    elsewhere = [f"/c/{world.a.id}/rounds", f"/c/{world.a.id}", "/"]
    problems = []
    for actor in ACTORS:
        client = clients(actor)
        for endpoint in RESULT_DOWNLOADS:
            path = path_for(app, endpoint, world, round_id=world.open_id)
            response = client.get(path)
            problem = outcome_problem(response, HIDDEN_BEFORE_CLOSE[actor], path)
            if problem:
                problems.append(f"{actor}: {problem}")
            body = response.get_data(as_text=True)
            for shown in (A_OPEN_QUESTION, '"answers"', '"counts"', "abstain", "Votes"):
                if shown in body:
                    problems.append(f"{actor}: {path} shows {shown!r}")
        verify = Req(f"/r/{world.open_id}/verify", {"receipt": world.receipt_text})
        responses = [(path, client.get(path)) for path in round_pages + elsewhere]
        if actor != "visitor":
            responses.append((verify.path + " (POST)", send(client, verify)))
        for path, response in responses:
            body = response.get_data(as_text=True)
            assert response.status_code < 500, (actor, path, body[:1500])
            shown = [marker for marker in RESULT_MARKERS if marker in body]
            if shown:
                problems.append(f"{actor}: {path} shows {shown}")
    assert not problems, "\n".join(problems)

    # After the close the very same markers and downloads are there for a reader.
    client = clients("resident")
    page = client.get(f"/r/{world.closed_id}").get_data(as_text=True)
    assert "Preliminary result" in page and 'class="card result"' in page
    assert A_CLOSED_QUESTION in client.get(f"/r/{world.closed_id}/results.csv").get_data(
        as_text=True
    )


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


# ---------------------------------------------------------------- T27: deliberation of B

B_REASON = {"reason": "Walking ids from Sunny Garden."}


def b_walks(world) -> list[tuple[str, str, dict, str]]:
    """(method, path, form data, CSRF field) of every deliberation URL naming B's objects,
    or B's members through A's URL."""
    pb, cb, hidden = f"/p/{world.pb_id}", f"/comments/{world.cb_id}", world.hidden_b_id
    b, a, member = f"/c/{world.b.id}", f"/c/{world.a.id}", world.b_resident_id
    proposal = {"title": "Taken over", "body": "Taken over.", "category": "other"}
    gets = [
        pb,
        f"{pb}/edit",
        f"{pb}/report",
        f"{cb}/edit",
        f"{cb}/report",
        f"/photos/{world.b_photo_name}",
        f"/photos/{world.b_photo_name}/thumb",
        f"{b}/proposals",
        f"{b}/proposals?q=maple",
        f"{b}/proposals/new",
        f"{b}/moderation",
        f"{b}/moderation-log",
        f"{b}/settings",
        f"{b}/members/{member}/suspend",
        f"{a}/members/{member}/suspend",
    ]
    posts = [
        (f"{pb}/support", {}),
        (f"{pb}/comments", {"stance": "for", "body": "Walking in."}),
        (f"{pb}/comments", {"stance": "for", "body": "A reply.", "parent_id": str(world.cb_id)}),
        (
            f"/p/{world.p_id}/comments",
            {"stance": "for", "body": "x", "parent_id": str(world.cb_id)},
        ),
        (f"{pb}/follow", {}),
        (f"{pb}/report", B_REASON),
        (f"{pb}/hide", B_REASON),
        (f"{pb}/lock", B_REASON),
        (f"{pb}/schedule", {}),
        (f"{pb}/close", B_REASON),
        (f"{pb}/withdraw", B_REASON),
        (f"{pb}/publish", {}),
        (f"{pb}/edit", proposal),
        (f"{cb}/hide", B_REASON),
        (f"/comments/{hidden}/restore", B_REASON),
        (f"{cb}/helpful", {}),
        (f"{cb}/report", B_REASON),
        (f"{cb}/edit", {"body": "Taken over."}),
        (f"{cb}/delete", {}),
        (f"/reports/{world.rb_id}/dismiss", B_REASON),
        (f"{b}/members/{member}/suspend", {"days": "30", **B_REASON}),
        (f"{a}/members/{member}/suspend", {"days": "30", **B_REASON}),
        (f"{b}/settings", {"mode": "number", "threshold": "1", "window_days": "1"}),
        (f"{b}/proposals/new", proposal),
    ]
    walks = [("GET", path, {}, "") for path in gets]
    walks += [("POST", path, data, "csrf_token") for path, data in posts]
    walks.append(("POST", f"{b}/categories", {"cat-name": "Walked in"}, "cat-csrf_token"))
    return walks


@pytest.mark.parametrize("actor", ["resident", "moderator", "committee", "admin"])
def test_members_of_a_cannot_reach_deliberation_of_b(db, world, clients, actor):
    """Every power the actor has in A (reading, moderating, running rounds, configuring,
    administering) stops at B: 404 for B's objects, 403 for B's pages, nothing of B shown,
    nothing written. htmx requests are refused the same way."""
    client = clients(actor)
    before = snapshot(db)
    problems = []
    for method, path, data, token_field in b_walks(world):
        for headers in ({}, {"HX-Request": "true"}):
            if method == "GET":
                response = client.get(path, headers=headers)
            else:
                req = Req(path, dict(data), token_field=token_field)
                response = send(client, req, headers=headers)
            body = response.get_data(as_text=True)
            where = f"{method} {path} {'(htmx)' if headers else ''}"
            if response.status_code not in (403, 404):
                problems.append(f"{where}: {response.status_code}")
            leaked = [secret for secret in world.b_secrets if secret in body]
            if leaked:
                problems.append(f"{where}: shows {leaked}")
            if "Traceback" in body:
                problems.append(f"{where}: traceback")
            if method == "POST" and snapshot(db) != before:
                problems.append(f"{where}: changed the database")
                before = snapshot(db)
    # A's own pages (lists, queue, log, notifications) do not mention B's content either.
    a = f"/c/{world.a.id}"
    for path in (
        f"{a}/proposals",
        f"{a}/proposals?q=maple",
        f"{a}/moderation",
        f"{a}/moderation-log",
        f"{a}/settings",
        f"/p/{world.p_id}",
        "/notifications",
        "/",
        a,
    ):
        body = client.get(path).get_data(as_text=True)
        leaked = [secret for secret in world.b_secrets if secret in body]
        if leaked:
            problems.append(f"GET {path}: shows {leaked}")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- T27: voting rounds of B


def b_round_walks(app, world) -> list[tuple[str, str, Req, int]]:
    """(route, method, request, expected status) of every ballots route of the application
    naming B's round, B's ballot or B's objection (404: the round is not found), or B
    itself (403: the community page's refusal), with the form data of a valid request."""
    values = {
        "community_id": world.b.id,
        "round_id": world.b_round_id,
        "ballot_id": world.b_ballot_id,
        "objection_id": world.b_objection_id,
    }
    walks = []
    for route, method in sorted(app_routes(app)):
        if not route.startswith("ballots."):
            continue
        rule = rule_of(app, route)
        path = path_for(app, route, world, **values)
        expected = 403 if "community_id" in rule.arguments else 404
        if method == "GET":
            walks.append((route, method, Req(path), expected))
            continue
        req = post_request(route, app, world, "committee")
        data = dict(req.data)
        if route == "ballots.verify_receipt":
            data["receipt"] = world.b_receipt_text
        if route == "ballots.paper_ballot":
            data["voter"] = str(world.b_voter_id)
        walks.append((route, method, Req(path, data, req.token_field), expected))
    # B's ballot through A's own round.
    a_round = f"/r/{world.open_id}"
    walks.append(("ballots.receipt", "GET", Req(f"{a_round}/receipts/{world.b_ballot_id}"), 404))
    return walks


def test_round_of_b_is_not_found_through_any_route(app, db, world, clients):
    """T27: B's round, its receipt, results, board, objection and every form are not found
    (404) for A's members, whatever their power in A, htmx or not; B's pages 403; nothing
    of B is shown and nothing is written. The site admin (who may read B) reaches them, so
    the ids are real."""
    from deliberation import services as deliberation

    walks = b_round_walks(app, world)
    assert {route for route, *_rest in walks} >= {
        r for r, _m in app_routes(app) if r.startswith("ballots.")
    }
    # A proposal of B scheduled for a vote there, as a round of A might try to decide it.
    proposal = deliberation.submit_proposal(
        world.b_resident,
        world.b,
        deliberation.ProposalDraft(B_PROPOSAL_TITLE, B_PROPOSAL_BODY, "facilities"),
        publish=True,
    )
    for status in ("deliberation", "scheduled"):
        assert deliberation.change_status(proposal, status)
    db.session.commit()
    b_proposal_id = proposal.id
    world.b_secrets += [B_PROPOSAL_TITLE, B_PROPOSAL_BODY]
    for actor in ACTORS:
        clients(actor)
    before = snapshot(db)
    problems = []
    for actor in ("resident", "suspended", "moderator", "committee", "admin"):
        client = clients(actor)
        for _route, method, req, expected in walks:
            for headers in ({}, {"HX-Request": "true"}):
                if method == "GET":
                    response = client.get(req.path, headers=headers)
                else:
                    response = send(
                        client, Req(req.path, dict(req.data), req.token_field), headers=headers
                    )
                body = response.get_data(as_text=True)
                where = f"{actor}: {method} {req.path} {'(htmx)' if headers else ''}"
                if response.status_code != expected:
                    problems.append(f"{where}: {response.status_code}, not {expected}")
                leaked = [secret for secret in world.b_secrets if secret in body]
                if leaked:
                    problems.append(f"{where}: shows {leaked}")
                if method == "POST" and snapshot(db) != before:
                    problems.append(f"{where}: changed the database")
                    before = snapshot(db)
    # B's ids in the forms of A's rounds, by A's committee: a paper ballot for B's voter, a
    # new or changed round deciding B's proposal. Refused (400), nothing written.
    paper = post_request("ballots.paper_ballot", app, world, "committee")
    paper.data["voter"] = str(world.b_voter_id)
    new = post_request("ballots.new_round", app, world, "committee")
    edit = post_request("ballots.edit_round", app, world, "committee")
    for req in (new, edit):
        req.data["questions-0-proposal"] = str(b_proposal_id)
    for req in (paper, new, edit):
        response = send(clients("committee"), req)
        body = response.get_data(as_text=True)
        where = f"committee: POST {req.path} with B's ids"
        if response.status_code != 400:
            problems.append(f"{where}: {response.status_code}, not 400")
        if req is not paper and "That proposal is not one of this community" not in body:
            problems.append(f"{where}: not refused for B's proposal")
        leaked = [secret for secret in world.b_secrets if secret in body]
        if leaked:
            problems.append(f"{where}: shows {leaked}")
        if snapshot(db) != before:
            problems.append(f"{where}: changed the database")
            before = snapshot(db)
    # A's own pages name nothing of B's rounds either.
    for path in (
        f"/c/{world.a.id}/rounds",
        f"/r/{world.open_id}",
        f"/r/{world.closed_id}",
        "/",
        f"/c/{world.parent.id}/rounds",
    ):
        for actor in ("resident", "committee"):
            body = clients(actor).get(path).get_data(as_text=True)
            leaked = [secret for secret in world.b_secrets if secret in body]
            if leaked:
                problems.append(f"{actor}: GET {path} shows {leaked}")
    assert not problems, "\n".join(problems)

    site_admin = clients("site_admin")
    readable = ("ballots.round_page", "ballots.notice", "ballots.results_csv", "ballots.board_json")
    for route, method, req, _expected in walks:
        if method == "GET" and route in readable and req.path.startswith(f"/r/{world.b_round_id}"):
            response = site_admin.get(req.path)
            assert response.status_code == 200, req.path
    assert B_ROUND_TITLE in site_admin.get(f"/r/{world.b_round_id}").get_data(as_text=True)


@pytest.mark.parametrize("actor", ["resident", "moderator", "admin"])
def test_lists_of_the_shared_parent_show_nothing_of_the_sibling(world, clients, actor):
    """A's members may read the parent's pages (an ancestor), but B's proposals are not
    theirs to read: the parent's list and search must not name them."""
    client = clients(actor)
    for query in ("", "?q=maple", "?q=rooftop&sort=discussed", "?status=collecting"):
        path = f"/c/{world.parent.id}/proposals{query}"
        response = client.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code == 200, (path, response.status_code)
        leaked = [secret for secret in world.b_secrets if secret in body]
        assert not leaked, (path, leaked)
        assert f"/p/{world.pb_id}" not in body, path


def test_the_branch_reads_proposals_and_nobody_else(
    db, world, make_community, make_member, login_as
):
    """Readers of a proposal: verified members of its community, of one above it or of one
    inside it. A member of the parent reads A's and B's; a member of a building inside A
    reads A's, not B's."""
    building = make_community("Building 9", "building", parent=world.a)
    from_parent = login_as(make_member(world.parent, name="Parent Resident"))
    from_building = login_as(make_member(building, name="Building Resident"))
    p, pb = f"/p/{world.p_id}", f"/p/{world.pb_id}"
    assert from_parent.get(p).status_code == 200
    assert from_parent.get(pb).status_code == 200
    assert from_parent.get(f"/photos/{world.b_photo_name}").status_code == 200
    assert from_building.get(p).status_code == 200
    assert from_building.get(f"/photos/{world.photo_name}/thumb").status_code == 200
    response = from_building.get(pb)
    assert_friendly_error(response, 404)
    assert B_PROPOSAL_TITLE not in response.get_data(as_text=True)
    assert from_building.get(f"/photos/{world.b_photo_name}").status_code == 404
    # The draft stays its author's, whoever reads the branch.
    for client in (from_parent, from_building):
        assert client.get(f"/p/{world.d_id}").status_code == 404


def test_nobody_but_the_author_sees_a_draft_or_its_photo(db, world, clients):
    from deliberation import photos, services
    from deliberation.models import Photo

    draft = services.submit_proposal(
        world.users["resident"],
        world.a,
        services.ProposalDraft("Bike shed roof (draft)", "Shed roof.", "facilities"),
        publish=False,
        photos=[(photos.prepare_photo(tiny_jpeg("red")), "shed.jpg")],
        upload_dir=upload_dir(),
    )
    db.session.commit()
    name = db.session.scalar(select(Photo.stored_name).where(Photo.proposal_id == draft.id))
    for path in (f"/p/{draft.id}", f"/photos/{name}", f"/photos/{name}/thumb"):
        assert clients("resident").get(path).status_code == 200, path
    for actor in ("moderator", "committee", "admin", "site_admin", "non_member"):
        client = clients(actor)
        for path in (f"/p/{draft.id}", f"/p/{draft.id}/edit", f"/photos/{name}"):
            response = client.get(path)
            assert response.status_code == 404, (actor, path, response.status_code)
            assert "Bike shed" not in response.get_data(as_text=True)
        listed = client.get(f"/c/{world.a.id}/proposals").get_data(as_text=True)
        assert "Bike shed" not in listed, actor


# ---------------------------------------------------------------- T29: moderation


def test_moderators_never_moderate_their_own_content(db, world, clients):
    from deliberation import services
    from deliberation.models import Proposal

    moderator, admin = world.users["moderator"], world.users["admin"]
    own = services.submit_proposal(
        moderator,
        world.a,
        services.ProposalDraft("Moderator's own idea", "Plant trees.", "environment"),
        publish=True,
    )
    proposal = db.session.get(Proposal, world.p_id)
    comment = services.post_comment(admin, proposal, "The admin's own comment.", "neutral")
    db.session.commit()
    clients("moderator"), clients("admin")  # log in before the snapshot
    before = snapshot(db)
    for actor, path in [
        ("moderator", f"/p/{own.id}/hide"),
        ("moderator", f"/p/{own.id}/lock"),
        ("admin", f"/comments/{comment.id}/hide"),
    ]:
        response = send(clients(actor), Req(path, {"reason": "Mine."}))
        assert_friendly_error(response, 403)
        assert snapshot(db) == before, (actor, path)
    # ... while the other one may.
    response = send(clients("admin"), Req(f"/p/{own.id}/hide", {"reason": "Off topic."}))
    assert response.status_code == 302, response.get_data(as_text=True)[:1500]
    assert snapshot(db) != before


def test_suspended_member_reads_but_does_not_write(db, world, clients):
    """A suspension stops writing (proposing, supporting, commenting, helpful marks, editing
    one's own comment) in the suspending community; reading goes on."""
    client = clients("suspended")
    for path in (f"/p/{world.p_id}", f"/c/{world.a.id}/proposals", "/notifications"):
        assert client.get(path).status_code == 200, path
    new_proposal, _options = deliberation_request("deliberation.new_proposal", "suspended")
    before = snapshot(db)
    problems = []
    for path, data in [
        (f"/c/{world.a.id}/proposals/new", new_proposal),
        (f"/p/{world.p_id}/support", {}),
        (f"/p/{world.p_id}/comments", {"stance": "against", "body": "Still here."}),
        (f"/comments/{world.c_id}/helpful", {}),
        (f"/comments/{world.suspended_comment_id}/edit", {"body": "Changed while suspended."}),
    ]:
        response = send(client, Req(path, data))
        if response.status_code != 403:
            problems.append(f"{path}: {response.status_code}")
        if snapshot(db) != before:
            problems.append(f"{path}: changed the database")
            before = snapshot(db)
    assert not problems, "\n".join(problems)


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
