"""Privacy (issue 5): a member downloads everything the site holds about them and can
delete their account; phone numbers and emails are never shown to other residents, and
committees see them only for their own community (community/privacy.py).

The story: in Sunny Garden (tests/ballots/conftest.py's estate) Jiang Wenhua and her
neighbour Lin Meiling joined with invitation codes from the voter roll (where Jiang is
listed under her legal name 姜文华), proposed, commented, supported, reported, rated the
finished work, voted in a round and objected to its result; a moderator suspended Jiang."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import String, Text, inspect, select

from crypto import passwords
from tests.ballots import conftest as rounds
from tests.conftest import PASSWORD, EnglishClient, csrf_token, login, post_form
from tests.test_authorization import snapshot, tiny_jpeg, upload_dir

# The voting-round fixtures of tests/ballots (Sunny Garden, its rounds and casts).
estate, make_round, cast = rounds.estate, rounds.make_round, rounds.cast
T1, close = rounds.T1, rounds.close

NAME, LEGAL_NAME = "Jiang Wenhua", "姜文华"
PHONE, EMAIL = "13911112222", "wenhua.jiang@example.com"
NEIGHBOUR, NEIGHBOUR_LEGAL = "Lin Meiling", "林美玲"
NEIGHBOUR_PHONE, NEIGHBOUR_EMAIL = "13733334444", "meiling.lin@example.org"
HER_DATA = (NAME, LEGAL_NAME, PHONE, EMAIL)
NEIGHBOUR_DATA = (NEIGHBOUR, NEIGHBOUR_LEGAL, NEIGHBOUR_PHONE, NEIGHBOUR_EMAIL)


# ---------------------------------------------------------------- the story


def _decided_and_done(db, author, community, committee):
    """A proposal of `author`, accepted and completed, ready to be rated."""
    from sqlalchemy import update

    from community.models import utcnow
    from deliberation import implementation, services
    from deliberation.lifecycle import Status
    from deliberation.models import Proposal

    proposal = services.submit_proposal(
        author,
        community,
        services.ProposalDraft("Fix the bench", "Decided by a vote.", "facilities", None),
        publish=True,
    )
    db.session.execute(
        update(Proposal).where(Proposal.id == proposal.id).values(status=Status.VOTING.value)
    )
    db.session.refresh(proposal)
    implementation.decide(proposal, True, decided_at=utcnow(), summary="Passed.")
    work = implementation.implementation_of(proposal)
    implementation.post_update(
        committee, work, implementation.UpdateDraft("Fixed.", 100, "completed")
    )
    return work


@pytest.fixture
def story(db, estate, make_user, make_member, make_round, cast):
    from ballots import services as ballots
    from community import services as community
    from community.models import Membership, RollEntry
    from deliberation import implementation, photos
    from deliberation import services as deliberation

    garden = estate.community
    community.import_roll(
        estate.committee,
        garden,
        "unit,owner_name,phone,private_area\n"
        f"Building 7 Room 701,{LEGAL_NAME},{PHONE},88.50\n"
        f"Building 7 Room 702,{NEIGHBOUR_LEGAL},{NEIGHBOUR_PHONE},70\n",
    )
    codes = {e.unit: code for e, code in community.issue_invites(estate.committee, garden)}
    db.session.commit()
    her = make_user(NAME, PHONE, email=EMAIL)
    neighbour = make_user(NEIGHBOUR, NEIGHBOUR_PHONE, email=NEIGHBOUR_EMAIL)
    community.redeem_invite(her, codes["Building 7 Room 701"])
    community.redeem_invite(neighbour, codes["Building 7 Room 702"])
    moderator = make_member(garden, role="moderator", name="Moderator Gao")
    db.session.commit()

    def draft(title, body):
        return deliberation.ProposalDraft(title, body, "facilities", None)

    hers = deliberation.submit_proposal(
        her,
        garden,
        draft("Repair the lamp", f"Written by {NAME} ({LEGAL_NAME}): call {PHONE} or {EMAIL}."),
        publish=True,
        photos=[(photos.prepare_photo(tiny_jpeg("red")), f"{NAME} lamp.jpg")],
        upload_dir=upload_dir(),
    )
    theirs = deliberation.submit_proposal(
        neighbour, garden, draft("Plant trees", "Three trees by gate 2."), publish=True
    )
    her_comment = deliberation.post_comment(her, theirs, f"{NAME} agrees, **yes**.", "for")
    their_comment = deliberation.post_comment(neighbour, hers, "Good idea.", "for")
    deliberation.support(her, theirs)
    deliberation.follow(her, theirs)
    deliberation.mark_helpful(her, their_comment)
    deliberation.mark_helpful(neighbour, her_comment)
    deliberation.report(her, hers, f"Spam reply, says {NAME}.", their_comment)
    deliberation.notify([her.id, neighbour.id], "status_changed", theirs)
    work = _decided_and_done(db, neighbour, garden, estate.committee)
    implementation.rate(her, work, 4, as_decided="yes", comment=f"Well done. {NAME}")
    implementation.rate(neighbour, work, 5, as_decided="yes", comment="Great.")
    db.session.commit()

    round_ = make_round()  # her and her neighbour hold places: verified, with a unit
    cast(her, round_, {"q1": ["yes"]})
    cast(neighbour, round_, {"q1": ["no"]})
    close(db, round_)
    ballots.raise_objection(her, round_, f"{NAME} objects: call {PHONE}.", T1 + timedelta(hours=1))
    db.session.commit()

    membership = db.session.scalar(
        select(Membership).where(Membership.user_id == her.id, Membership.community_id == garden.id)
    )
    # A moderator's reason also goes into the hash-chained audit log, which the deletion
    # cannot rewrite: this one names no one (see community/privacy.py).
    deliberation.suspend_member(moderator, membership, 7, "Shouted at the neighbours.")
    db.session.commit()
    roll_entry = db.session.scalar(select(RollEntry).where(RollEntry.invite_used_by_id == her.id))
    assert roll_entry is not None and roll_entry.owner_name == LEGAL_NAME
    return {
        "garden": garden,
        "her": her,
        "neighbour": neighbour,
        "moderator": moderator,
        "committee": estate.committee,
        "her_proposal": hers.id,
        "their_proposal": theirs.id,
        "round": round_,
    }


def personal_data_left(db, needles) -> list[str]:
    """Every text column of every table of the schema holding one of `needles` (any case)."""
    db.session.rollback()
    found = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text)]
            if not columns:
                continue
            for row in conn.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    if not isinstance(value, str):
                        continue
                    for needle in needles:
                        if needle.casefold() in value.casefold():
                            found.append(f"{table.name}.{column.name}: {needle!r} in {value!r}")
    return found


def english_login(app, user, password: str = PASSWORD):
    client = EnglishClient(app, app.response_class, use_cookies=True)
    login(client, user, password)
    return client


def delete_account(client, password: str = PASSWORD):
    return post_form(client, "/account/delete", {"password": password}, token_from="/account/data")


# ---------------------------------------------------------------- the map of the data


def test_every_users_foreign_key_is_covered(app):
    """A table added with a foreign key to users must say, in community/privacy.py LINKS,
    what it is to the member and what becomes of it when they delete their account."""
    from community import privacy

    unmapped = privacy.unmapped_user_columns()
    assert not unmapped, f"users foreign keys missing from privacy.LINKS: {unmapped}"
    stale = sorted(set(privacy.LINKS) - set(privacy.user_columns()))
    assert not stale, f"privacy.LINKS names columns that are not users foreign keys: {stale}"
    tables = privacy._tables()
    for key, link in privacy.LINKS.items():
        table = tables[key.split(".")[0]]
        missing = [c for c in link.shown if c not in table.c]
        assert not missing, (key, missing)
    owned = {key.split(".")[0] for key, link in privacy.LINKS.items() if link.relation == "own"}
    for key in privacy.PARTS:
        table, column = privacy._split(key)
        [fk] = table.c[column].foreign_keys
        assert fk.column.table.name in owned, key


def test_the_scan_reads_every_table_of_the_database(db):
    """The deletion test scans the schema's tables: they are all the database has (but
    Alembic's version and SQLite's full-text index, which holds only proposals' terms)."""
    real = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
    real = {t for t in real if not t.startswith("proposal_fts")}
    assert real == set(db.metadata.tables)


# ---------------------------------------------------------------- the download


def test_my_data_page_offers_the_download_and_the_deletion(app, story):
    client = english_login(app, story["her"])
    page = client.get("/account/data")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Download my data (JSON)" in body and 'action="/account/data/download"' in body
    assert 'href="/account/delete"' in body
    assert "Proposals: 1" in body and "Ballots: 1" in body
    assert 'href="/account/data"' in client.get("/profile").get_data(as_text=True)
    assert client.get("/account/data/download").status_code == 405  # a POST with CSRF


def test_download_holds_her_data_and_nothing_of_another_member(app, db, story):
    from community.audit import AuditEntry

    client = english_login(app, story["her"])
    response = post_form(client, "/account/data/download", token_from="/account/data")
    assert response.status_code == 200, response.get_data(as_text=True)[:1500]
    assert response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    document = json.loads(text)
    her = story["her"]

    account = document["account"]
    assert (account["id"], account["display_name"]) == (her.id, NAME)
    assert (account["phone"], account["email"]) == (PHONE, EMAIL)
    assert "password_hash" not in account and "$argon2" not in text
    records = document["records"]
    assert [p["id"] for p in records["proposals"]["author_id"]] == [story["her_proposal"]]
    assert PHONE in records["proposals"]["author_id"][0]["body"]
    assert "Repair the lamp" in [r["title"] for r in records["proposal_revisions"]["proposal_id"]]
    assert records["proposal_photos"]["proposal_id"][0]["display_name"] == f"{NAME} lamp.jpg"
    assert [c["body"] for c in records["comments"]["author_id"]] == [f"{NAME} agrees, **yes**."]
    assert records["supports"]["user_id"][0]["proposal_id"] == story["their_proposal"]
    assert {f["proposal_id"] for f in records["follows"]["user_id"]} >= {story["their_proposal"]}
    assert len(records["helpful_marks"]["user_id"]) == 1
    assert records["reports"]["reporter_id"][0]["reason"] == f"Spam reply, says {NAME}."
    assert records["ratings"]["user_id"][0]["comment"] == f"Well done. {NAME}"
    assert records["notifications"]["user_id"]
    assert records["memberships"]["user_id"][0]["unit"] == "Building 7 Room 701"
    assert records["roll_entries"]["invite_used_by_id"][0]["owner_name"] == LEGAL_NAME
    assert "invite_digest" not in records["roll_entries"]["invite_used_by_id"][0]
    [place] = records["round_voters"]["user_id"]
    assert place["round_id"] == story["round"].id and place["slot"] == f"u:{her.id}"
    assert records["round_credentials"]["voter_id"][0]["public_key"]
    assert "seed" not in records["round_credentials"]["voter_id"][0]
    [ballot] = records["ballots"]["cast_by_id"]
    assert json.loads(ballot["receipt"])["n"] == ballot["board_n"]
    assert records["round_objections"]["author_id"][0]["body"].startswith(NAME)
    assert records["moderation_log"]["member_id"][0]["action"] == "suspend"

    leaked = [value for value in NEIGHBOUR_DATA if value.casefold() in text.casefold()]
    assert not leaked, leaked
    assert "Moderator Gao" not in text and "Chair Wang" not in text

    db.session.rollback()
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "account.data_exported")
    )
    assert entry.actor_id == her.id and (entry.subject_kind, entry.subject_id) == ("user", her.id)
    assert PHONE not in entry.details and NAME not in entry.details


def test_a_committee_members_download_shows_what_they_did_not_whom_to(app, db, story):
    """Acts in office (imports, approvals, rounds, paper ballots) are listed by what was
    done, without the other members' rows."""
    client = english_login(app, story["committee"])
    response = post_form(client, "/account/data/download", token_from="/account/data")
    document = response.get_json()
    records = document["records"]
    assert records["roll_imports"]["imported_by_id"][0]["rows_added"] == 2
    assert set(records["rounds"]["created_by_id"][0]) == {
        "id",
        "community_id",
        "title",
        "status",
        "created_at",
    }
    actions = {e["action"] for e in records["audit_entries"]["actor_id"]}
    assert {"roll.imported", "roll.invites", "round.created"} <= actions
    text = response.get_data(as_text=True)
    for value in HER_DATA + NEIGHBOUR_DATA:
        assert value.casefold() not in text.casefold(), value


# ---------------------------------------------------------------- deleting the account


def test_the_confirmation_page_says_what_happens(app, story):
    client = english_login(app, story["her"])
    body = client.get("/account/delete").get_data(as_text=True)
    assert "cannot be undone" in body
    assert "former resident" in body
    assert "Your ballots stay counted" in body
    assert 'name="password"' in body and 'autocomplete="current-password"' in body
    assert 'name="csrf_token"' in body


def test_a_wrong_password_deletes_nothing(app, db, story):
    client = english_login(app, story["her"])
    before = snapshot(db)
    response = delete_account(client, "not my password")
    assert response.status_code == 400
    assert "The current password is wrong." in response.get_data(as_text=True)
    assert snapshot(db) == before
    assert client.get("/profile").status_code == 200  # still logged in


def test_guessing_the_password_on_the_deletion_page_is_limited(app, db, story):
    client = english_login(app, story["her"])
    before = snapshot(db)
    for _ in range(5):
        assert delete_account(client, "a guess").status_code == 400

    locked = delete_account(client)  # the right password, too late

    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "60"
    assert "Too many attempts. Please wait a minute and try again." in locked.get_data(as_text=True)
    assert snapshot(db) == before
    assert client.get("/profile").status_code == 200


def test_deletion_leaves_no_personal_data_in_any_table(app, db, story):
    """The issue's check: after the deletion no text column of any table holds her name
    (either of them), phone or email, while her neighbour's data is all still there."""
    from community.audit import AuditEntry
    from community.models import User

    assert personal_data_left(db, HER_DATA)  # the scan finds what is there
    client = english_login(app, story["her"])
    response = delete_account(client)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "Your account has been deleted" in client.get("/").get_data(as_text=True)

    left = personal_data_left(db, HER_DATA)
    assert not left, "\n".join(left)
    assert {n for n in NEIGHBOUR_DATA if personal_data_left(db, [n])} == set(NEIGHBOUR_DATA)

    user = db.session.get(User, story["her"].id)
    assert user.erased_at is not None and not user.is_active and not user.is_admin
    assert (user.phone, user.email, user.name_key) == (None, None, f"deleted-{user.id}")
    assert not passwords.verify_password(user.password_hash, PASSWORD)
    # Stored in English, shown in the reader's language (Chinese outside a request).
    assert (user._display_name, user.display_name) == ("former resident", "已注销居民")
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "account.deleted"))
    assert entry.actor_id == user.id and (entry.subject_kind, entry.subject_id) == ("user", user.id)
    assert json.loads(entry.details)["memberships"] == 1


def test_her_content_stays_without_her_data(app, db, story):
    from ballots.models import Ballot, Voter
    from community.models import Membership, RollEntry
    from deliberation.models import Comment, Follow, Notification, Proposal, Rating, Support

    her = story["her"]
    delete_account(english_login(app, her))
    db.session.rollback()
    proposal = db.session.get(Proposal, story["her_proposal"])
    assert proposal.author_id == her.id and proposal.title == "Repair the lamp"
    assert proposal.body == (
        "Written by former resident (former resident): call [removed] or [removed]."
    )
    assert "[removed]" in proposal.body_html and PHONE not in proposal.body_html
    comment = db.session.scalar(select(Comment).where(Comment.author_id == her.id))
    assert comment.body == "former resident agrees, **yes**."
    assert "<strong>yes</strong>" in comment.body_html
    # What counts stays counted; what only served her is gone.
    assert db.session.scalar(select(Support).where(Support.user_id == her.id)) is not None
    assert db.session.get(Proposal, story["their_proposal"]).support_count == 1
    assert db.session.scalar(select(Rating.comment).where(Rating.user_id == her.id)) == (
        "Well done. former resident"
    )
    for model in (Membership, Follow, Notification):
        assert db.session.scalar(select(model).where(model.user_id == her.id)) is None, model
    # The household stays on the roll, without her, and may be invited again.
    entry = db.session.scalar(select(RollEntry).where(RollEntry.unit == "Building 7 Room 701"))
    assert (entry.owner_name, entry.phone, entry.invite_used_by_id) == ("", None, None)
    assert entry.invite_used_at is None and entry.invite_digest is None
    # Her place in the round and her ballot no longer lead to her.
    assert db.session.scalar(select(Voter).where(Voter.user_id == her.id)) is None
    assert db.session.scalar(select(Ballot).where(Ballot.cast_by_id == her.id)) is None
    assert db.session.scalar(select(Voter).where(Voter.slot == f"u:{her.id}")) is None


def test_pages_show_former_resident(app, db, story):
    from community import privacy

    privacy.erase_account(story["her"], PASSWORD, cost=passwords.MINIMAL)
    db.session.commit()
    neighbour = english_login(app, story["neighbour"])
    garden = story["garden"].id
    pages = {
        f"/p/{story['her_proposal']}": "by former resident",
        f"/p/{story['their_proposal']}": "former resident",
        f"/c/{garden}/proposals": "Repair the lamp",
        f"/c/{garden}/moderation-log": "former resident",
        f"/r/{story['round'].id}": "former resident",  # her objection
    }
    for path, shown in pages.items():
        response = neighbour.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code == 200, path
        assert shown in body, path
        for value in HER_DATA:
            assert value not in body, (path, value)
    committee = english_login(app, story["committee"])
    for path in (f"/c/{garden}/members", f"/c/{garden}/roll", f"/c/{garden}/audit"):
        body = committee.get(path).get_data(as_text=True)
        for value in HER_DATA:
            assert value not in body, (path, value)


def test_the_old_credentials_and_session_no_longer_work(app, db, story):
    client = english_login(app, story["her"])
    other_device = english_login(app, story["her"])
    delete_account(client)
    for contact in (PHONE, EMAIL):
        token = csrf_token(client, "/auth/login")
        response = client.post(
            "/auth/login", data={"contact": contact, "password": PASSWORD, "csrf_token": token}
        )
        assert response.status_code == 400, contact
        assert "wrong" in response.get_data(as_text=True)
    response = other_device.get("/profile")
    assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login")
    assert client.get("/account/data").status_code == 302
    # The phone number is free again: the same person may register anew.
    from community import services

    assert services.register("Jiang Again", PHONE, PASSWORD, cost=passwords.MINIMAL).id


def test_a_deleted_account_cannot_be_deleted_or_exported_again(db, story):
    from community import privacy
    from web.errors import NotFound

    her = story["her"]
    privacy.erase_account(her, PASSWORD, cost=passwords.MINIMAL)
    db.session.commit()
    with pytest.raises(NotFound):
        privacy.erase_account(her, "", cost=passwords.MINIMAL)
    with pytest.raises(NotFound):
        privacy.export_data(her)


# ---------------------------------------------------------------- ballots stay, unlinked


@pytest.mark.parametrize("secrecy", ["secret", "named"])
def test_the_board_still_verifies_after_a_voter_deletes_her_account(
    db, estate, make_round, cast, secrecy
):
    """Mid-round: her ballot stays counted, the board's entries are unchanged, the
    receipts still verify, the close tallies and the verifier accepts the whole board."""
    from ballots import services
    from ballots.models import Ballot, BoardEntry, Voter
    from community import privacy
    from crypto.verify import verify_board

    round_ = make_round(secrecy=secrecy)
    leaving, staying, late = estate.voters[:3]
    receipts = [
        cast(leaving, round_, {"q1": ["yes"]}).receipt_data,
        cast(staying, round_, {"q1": ["no"]}).receipt_data,
    ]
    board_before = [
        (e.n, e.type, e.payload, e.hash)
        for e in db.session.scalars(select(BoardEntry).where(BoardEntry.round_id == round_.id))
    ]

    privacy.erase_account(leaving, PASSWORD, cost=passwords.MINIMAL)
    db.session.commit()
    receipts.append(cast(late, round_, {"q1": ["yes"]}).receipt_data)
    close(db, round_)

    board_after = [
        (e.n, e.type, e.payload, e.hash)
        for e in db.session.scalars(
            select(BoardEntry).where(BoardEntry.round_id == round_.id).order_by(BoardEntry.n)
        )
    ]
    assert board_after[: len(board_before)] == sorted(board_before)
    report = verify_board(services.board_document(round_), receipts)
    assert report.ok, report.problems
    [question] = round_.result_data["questions"]
    assert question["counts"]["yes"] == 2 and question["counts"]["no"] == 1, question
    # Unlinked: no row leads from her account to a place, a credential or a ballot.
    assert db.session.scalar(select(Voter).where(Voter.user_id == leaving.id)) is None
    assert db.session.scalar(select(Ballot).where(Ballot.cast_by_id == leaving.id)) is None
    places = db.session.scalars(select(Voter).where(Voter.round_id == round_.id)).all()
    [erased] = [p for p in places if p.user_id is None]
    assert erased.slot == f"x:{erased.id}" and erased.voted_at is not None
    assert (erased.unit is None) == (secrecy == "secret")
    # Reminders and notices go to the remaining voters only.
    others = {p.user_id for p in places} - {None}
    assert services._electorate_user_ids(round_) == others


# ---------------------------------------------------------------- who sees phones and emails


@pytest.fixture
def other_compound(db, make_community, make_member):
    from community import services

    maple = make_community("Maple Court")
    chair = make_member(maple, role="committee", name="Maple Chair")
    services.import_roll(None, maple, "unit,owner_name,phone\nM1,Maple Owner,13600000001\n")
    db.session.commit()
    return maple, chair


def test_a_phone_typed_at_registration_opens_no_other_communitys_roll(
    app, db, make_user, other_compound
):
    """Maple Court's roll lists 13600000001; someone registers with that number without
    joining Maple Court. Their download holds nothing of the roll, and deleting their
    account leaves the roll as Maple Court's committee made it."""
    from community import privacy
    from community.models import RollEntry

    maple, _chair = other_compound
    stranger = make_user(name="Not the Owner", contact="13600000001")
    db.session.commit()

    document = json.dumps(privacy.export_data(stranger), ensure_ascii=False)
    assert "Maple Owner" not in document and "M1" not in document
    privacy.erase_account(stranger, PASSWORD, cost=passwords.MINIMAL)
    db.session.commit()

    entry = db.session.scalar(select(RollEntry).where(RollEntry.community_id == maple.id))
    assert (entry.owner_name, entry.phone) == ("Maple Owner", "13600000001")


def test_other_residents_never_see_her_phone_or_email(app, db, story, other_compound):
    maple, maple_chair = other_compound
    garden, round_id = story["garden"].id, story["round"].id
    readable = [
        "/",
        "/profile",
        "/notifications",
        f"/c/{garden}",
        f"/c/{garden}/proposals",
        f"/c/{garden}/moderation-log",
        f"/c/{garden}/audit",
        f"/c/{garden}/rounds",
        f"/c/{garden}/accountability",
        f"/c/{garden}/accountability.csv",
        f"/p/{story['her_proposal']}",
        f"/p/{story['their_proposal']}",
        f"/r/{round_id}",
        f"/r/{round_id}/results.csv",
        f"/r/{round_id}/board.json",
    ]
    refused = [f"/c/{garden}/members", f"/c/{garden}/roll", f"/c/{garden}/requests"]
    published = {
        f"/p/{story['her_proposal']}": {PHONE, EMAIL, LEGAL_NAME},
        f"/r/{round_id}": {PHONE},
    }
    neighbour = english_login(app, story["neighbour"])
    outsider = english_login(app, maple_chair)
    for client, pages in ((neighbour, readable + refused), (outsider, refused)):
        for path in pages:
            response = client.get(path)
            assert response.status_code < 500, path
            if path in refused:
                assert response.status_code == 403, path
            body = response.get_data(as_text=True)
            # What she typed herself into her proposal (names, phone, email) and her
            # objection (phone) shows there, as she published it; nothing else does.
            for value in {PHONE, EMAIL, LEGAL_NAME} - published.get(path, set()):
                assert value not in body, (path, value)


def test_committees_see_contacts_only_for_their_own_community(app, db, story, other_compound):
    maple, maple_chair = other_compound
    garden = story["garden"].id
    for staff in (story["committee"], story["moderator"]):  # the two committees of Garden
        members = english_login(app, staff).get(f"/c/{garden}/members").get_data(as_text=True)
        assert PHONE in members and NEIGHBOUR_PHONE in members
    roll = english_login(app, story["committee"]).get(f"/c/{garden}/roll").get_data(as_text=True)
    assert PHONE in roll and LEGAL_NAME in roll
    # The committee of another compound: its own roll, never Garden's.
    outsider = english_login(app, maple_chair)
    assert "13600000001" in outsider.get(f"/c/{maple.id}/roll").get_data(as_text=True)
    for page in ("members", "roll"):
        response = outsider.get(f"/c/{garden}/{page}")
        assert response.status_code == 403
        assert PHONE not in response.get_data(as_text=True)
    own = outsider.get(f"/c/{maple.id}/members").get_data(as_text=True)
    assert PHONE not in own and EMAIL not in own
    # And Garden's committee sees nothing of Maple's roll.
    response = english_login(app, story["committee"]).get(f"/c/{maple.id}/roll")
    assert response.status_code == 403 and "13600000001" not in response.get_data(as_text=True)


def test_the_redaction_replaces_whole_names_phones_and_emails(app):
    from community import privacy

    patterns = privacy._patterns({"Al Wu", "王芳", "X"}, {PHONE}, {EMAIL})

    def redact(text: str) -> str:
        return privacy._redact(text, patterns, None)

    assert redact("Also Al Wu's flat; al wu again.") == (
        "Also former resident's flat; former resident again."
    )
    assert redact("Al Wuhan") == "Al Wuhan"  # not a part of a longer word
    assert redact("我是王芳。") == "我是former resident。"
    assert redact("X marks the spot") == "X marks the spot"  # one letter is no name
    assert redact(f"+86 139 1111 2222, {EMAIL.upper()}") == "+86 [removed], [removed]"
    assert redact("Tom &amp; Al Wu") == "Tom &amp; former resident"
    assert privacy._redact("Al Wu " * 3, patterns, 20) == "former resident form"
