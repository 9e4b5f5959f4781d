"""Joining, deciding, roles, the voter roll and invitations, as residents and committees
experience them."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from community import services
from community.models import Membership, RollEntry
from tests.conftest import post_form

ROLL = """unit,owner_name,phone,private_area
Building 1 Room 101,Chen Wei,13700000101,120.00
Building 1 Room 102,Zhao Lei,13700000102,95.2
Building 2 Room 201,Sun Li,,76.80
"""


@pytest.fixture
def compound(make_community):
    street = make_community("Happiness Street", kind="street")
    community = make_community("Happiness Community", kind="community", parent=street)
    return make_community("Sunny Garden", kind="compound", parent=community)


def membership(db, user, community):
    db.session.commit()  # a fresh snapshot: see what requests and threads wrote
    return db.session.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.community_id == community.id
        )
    )


# ---------------------------------------------------------------- join requests


def test_resident_asks_to_join_and_sees_it_pending(db, compound, make_user, login_as):
    user = make_user("Li Ayi")
    client = login_as(user)
    response = post_form(client, f"/c/{compound.id}/join", {"unit": "Building 3, Room 502"})
    assert response.status_code == 302
    page = client.get(f"/c/{compound.id}").get_data(as_text=True)
    assert "waiting for a decision" in page
    assert membership(db, user, compound).status == "pending"


def test_join_without_unit_shows_form_again(db, compound, make_user, login_as):
    client = login_as(make_user())
    response = post_form(client, f"/c/{compound.id}/join", {"unit": "   "})
    assert response.status_code == 400
    assert 'name="unit"' in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Membership.id))) == 0


def test_moderator_approves_and_resident_sees_the_community(
    db, compound, make_user, make_member, login_as
):
    moderator = make_member(compound, role="moderator")
    resident = make_user("Wang Xiansheng")
    services.request_join(resident, compound, "Building 3, Room 301")
    db.session.commit()
    pending = membership(db, resident, compound)

    mod = login_as(moderator)
    queue = mod.get(f"/c/{compound.id}/requests").get_data(as_text=True)
    assert "Wang Xiansheng" in queue and "Building 3, Room 301" in queue
    response = post_form(
        mod, f"/c/{compound.id}/requests/{pending.id}", {"decision": "approve"}, token_from="/"
    )
    assert response.status_code == 302
    assert membership(db, resident, compound).status == "verified"

    home = login_as(resident).get("/").get_data(as_text=True)
    assert "Sunny Garden" in home and "My communities" in home


def test_rejection_needs_a_reason_and_the_resident_sees_it(
    db, compound, make_user, make_member, login_as
):
    committee = make_member(compound, role="committee")
    resident = make_user()
    services.request_join(resident, compound, "Building 9, Room 909")
    db.session.commit()
    pending = membership(db, resident, compound)
    client = login_as(committee)

    response = post_form(
        client, f"/c/{compound.id}/requests/{pending.id}", {"decision": "reject"}, "/"
    )
    assert response.status_code == 400
    assert "reason" in response.get_data(as_text=True)
    assert membership(db, resident, compound).status == "pending"

    response = post_form(
        client,
        f"/c/{compound.id}/requests/{pending.id}",
        {"decision": "reject", "reason": "There is no Building 9 in Sunny Garden."},
        "/",
    )
    assert response.status_code == 302
    home = login_as(resident).get("/").get_data(as_text=True)
    assert "Not approved" in home and "There is no Building 9 in Sunny Garden." in home


def test_rejected_resident_can_ask_again(db, compound, make_user, make_member, login_as):
    moderator = make_member(compound, role="moderator")
    resident = make_user()
    services.request_join(resident, compound, "Wrong unit")
    db.session.commit()
    services.decide_join(moderator, membership(db, resident, compound), False, "No such unit")
    db.session.commit()
    response = post_form(
        login_as(resident), f"/c/{compound.id}/join", {"unit": "Building 2, Room 201"}
    )
    assert response.status_code == 302
    again = membership(db, resident, compound)
    assert (again.status, again.unit, again.decision_reason) == (
        "pending",
        "Building 2, Room 201",
        None,
    )


def test_deciding_twice_is_a_conflict(db, compound, make_user, make_member, login_as):
    moderator = make_member(compound, role="moderator")
    resident = make_user()
    services.request_join(resident, compound, "Room 1")
    db.session.commit()
    pending = membership(db, resident, compound)
    client = login_as(moderator)
    url = f"/c/{compound.id}/requests/{pending.id}"
    assert post_form(client, url, {"decision": "approve"}, "/").status_code == 302
    second = post_form(client, url, {"decision": "reject", "reason": "late"}, "/")
    assert second.status_code == 409
    assert membership(db, resident, compound).status == "verified"


def test_htmx_decision_returns_the_fragment(db, compound, make_user, make_member, login_as):
    moderator = make_member(compound, role="moderator")
    resident = make_user("Zhou")
    services.request_join(resident, compound, "Room 7")
    db.session.commit()
    pending = membership(db, resident, compound)
    client = login_as(moderator)
    response = post_form(
        client,
        f"/c/{compound.id}/requests/{pending.id}",
        {"decision": "approve"},
        "/",
        headers={"HX-Request": "true"},
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in body and f'id="request-{pending.id}"' in body and "approved" in body


def test_resident_cannot_approve_joins(db, compound, make_user, make_member, login_as):
    resident = make_member(compound, role="resident")
    other = make_user()
    services.request_join(other, compound, "Room 8")
    db.session.commit()
    pending = membership(db, other, compound)
    client = login_as(resident)
    assert client.get(f"/c/{compound.id}/requests").status_code == 403
    response = post_form(
        client, f"/c/{compound.id}/requests/{pending.id}", {"decision": "approve"}, "/"
    )
    assert response.status_code == 403
    assert membership(db, other, compound).status == "pending"


def test_moderator_of_one_community_has_no_power_in_another(
    db, compound, make_community, make_user, make_member, login_as
):
    elsewhere = make_community("Other Garden")
    moderator = make_member(elsewhere, role="moderator")
    resident = make_user()
    services.request_join(resident, compound, "Room 5")
    db.session.commit()
    pending = membership(db, resident, compound)
    client = login_as(moderator)
    assert client.get(f"/c/{compound.id}/requests").status_code == 403
    assert client.get(f"/c/{compound.id}/members").status_code == 403
    response = post_form(
        client, f"/c/{compound.id}/requests/{pending.id}", {"decision": "approve"}, "/"
    )
    assert response.status_code == 403
    assert membership(db, resident, compound).status == "pending"


def test_community_admin_reaches_children_but_moderator_does_not(db, compound, make_member):
    parent = compound.parent
    admin = make_member(parent, role="admin")
    moderator = make_member(parent, role="moderator")
    assert services.can(admin, "verify_members", compound)
    assert services.can(admin, "administer", compound)
    assert not services.can(moderator, "verify_members", compound)
    assert services.can(moderator, "verify_members", parent)


def test_two_moderators_deciding_at_once_only_one_wins(app, db, compound, make_user, make_member):
    first = make_member(compound, role="moderator")
    second = make_member(compound, role="committee")
    resident = make_user()
    services.request_join(resident, compound, "Room 11")
    db.session.commit()
    pending_id = membership(db, resident, compound).id
    barrier = threading.Barrier(2)
    outcomes = []

    def decide(actor_id, approve):
        barrier.wait(timeout=10)
        with app.app_context():
            from community.models import User
            from web.extensions import db as tdb

            try:
                actor = tdb.session.get(User, actor_id)
                target = tdb.session.get(Membership, pending_id)
                services.decide_join(actor, target, approve, "" if approve else "No")
                tdb.session.commit()
                outcomes.append("won")
            except services.Conflict:
                tdb.session.rollback()
                outcomes.append("conflict")
            finally:
                tdb.session.remove()

    threads = [
        threading.Thread(target=decide, args=(first.id, True)),
        threading.Thread(target=decide, args=(second.id, False)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["conflict", "won"]
    final = membership(db, resident, compound)
    assert final.status in ("verified", "rejected") and final.decided_by_id in (first.id, second.id)


# ---------------------------------------------------------------- roles


def test_admin_appoints_staff_without_a_unit(db, compound, make_user, make_member, login_as):
    admin = make_member(compound, role="admin")
    staff = make_user("Zhang Zhuren", contact="13611112222")
    client = login_as(admin)
    response = post_form(
        client, f"/c/{compound.id}/appoint", {"contact": "136 1111 2222", "role": "moderator"}, "/"
    )
    assert response.status_code == 302
    m = membership(db, staff, compound)
    assert (m.role, m.status, m.unit) == ("moderator", "verified", None)
    page = client.get(f"/c/{compound.id}").get_data(as_text=True)
    assert "Zhang Zhuren" in page


def test_appointing_unknown_contact_is_a_clear_404(compound, make_member, login_as):
    client = login_as(make_member(compound, role="admin"))
    response = post_form(
        client, f"/c/{compound.id}/appoint", {"contact": "13999999999", "role": "moderator"}, "/"
    )
    assert response.status_code == 404
    assert "No account uses this phone number or email" in response.get_data(as_text=True)


def test_committee_cannot_assign_roles(db, compound, make_member, login_as):
    committee = make_member(compound, role="committee")
    resident = make_member(compound, role="resident")
    target = membership(db, resident, compound)
    response = post_form(
        login_as(committee), f"/c/{compound.id}/members/{target.id}/role", {"role": "admin"}, "/"
    )
    assert response.status_code == 403
    assert membership(db, resident, compound).role == "resident"


def test_member_list_shows_contacts_only_to_committees(compound, make_member, login_as):
    committee = make_member(compound, role="committee")
    resident = make_member(compound, role="resident", name="Hidden Phone", contact="13512345678")
    page = login_as(committee).get(f"/c/{compound.id}/members").get_data(as_text=True)
    assert "13512345678" in page
    resident_view = login_as(resident)
    assert resident_view.get(f"/c/{compound.id}/members").status_code == 403
    assert "13512345678" not in resident_view.get(f"/c/{compound.id}").get_data(as_text=True)


# ---------------------------------------------------------------- voter roll


def upload(client, community, text: str, name="roll.csv"):
    import io

    return post_form(
        client,
        f"/c/{community.id}/roll",
        {"roll": (io.BytesIO(text.encode("utf-8")), name)},
        token_from=f"/c/{community.id}/roll",
        content_type="multipart/form-data",
    )


def test_committee_imports_a_good_roll(db, compound, make_member, login_as):
    client = login_as(make_member(compound, role="committee"))
    response = upload(client, compound, ROLL)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "3 added" in page and "Chen Wei" in page
    areas = db.session.scalars(select(RollEntry.private_area).order_by(RollEntry.unit)).all()
    assert areas == [Decimal("120.00"), Decimal("95.20"), Decimal("76.80")]


def test_bad_rows_are_reported_line_by_line_and_nothing_imports(
    db, compound, make_member, login_as
):
    client = login_as(make_member(compound, role="committee"))
    bad = (
        "unit,owner_name,phone,private_area\n"
        "Room 1,Good Row,13700000001,80\n"
        "Room 2,Bad Area,13700000002,lots\n"
        ",No Unit,13700000003,70\n"
        "Room 1,Duplicate,13700000004,70\n"
        "Room 5,Bad Phone,12ab,70\n"
        "Room 6,Negative,,-3\n"
        "Room 7,Too precise,,70.123\n"
    )
    response = upload(client, compound, bad)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    for line in (3, 4, 5, 6, 7, 8):
        assert f"Line {line}:" in page
    assert "Line 2:" not in page
    assert "Nothing was imported" in page
    assert db.session.scalar(select(func.count(RollEntry.id))) == 0


def test_reimport_updates_households_without_duplicating(db, compound, make_member, login_as):
    client = login_as(make_member(compound, role="committee"))
    upload(client, compound, ROLL)
    changed = ROLL.replace("95.2", "96.00").replace("Sun Li", "Sun Lihua")
    changed += "Building 3 Room 301,New Owner,,88\n"
    page = upload(client, compound, changed).get_data(as_text=True)
    assert "1 added, 2 updated, 1 unchanged" in page
    assert db.session.scalar(select(func.count(RollEntry.id))) == 4


def test_roll_with_chinese_headers_and_bom(db, compound):
    text = "\ufeff房号,业主姓名,手机号,专有面积\n3栋502,李建国,13900000502,102.35\n"
    report = services.import_roll(None, compound, text)
    db.session.commit()
    assert report.added == 1
    assert report.entries[0].private_area == Decimal("102.35")


def test_resident_cannot_import_a_roll(db, compound, make_member, login_as):
    client = login_as(make_member(compound, role="resident"))
    assert client.get(f"/c/{compound.id}/roll").status_code == 403
    assert db.session.scalar(select(func.count(RollEntry.id))) == 0


def test_binary_file_is_refused_cleanly(db, compound, make_member, login_as):
    client = login_as(make_member(compound, role="committee"))
    import io

    response = post_form(
        client,
        f"/c/{compound.id}/roll",
        {"roll": (io.BytesIO(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"), "roll.csv")},
        token_from=f"/c/{compound.id}/roll",
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "not readable text" in response.get_data(as_text=True)


# ---------------------------------------------------------------- invitations


def test_invite_code_joins_the_household_verified(db, compound, make_member, make_user, login_as):
    committee = make_member(compound, role="committee")
    services.import_roll(committee, compound, ROLL)
    db.session.commit()
    client = login_as(committee)
    page = post_form(client, f"/c/{compound.id}/roll/invites", {}, f"/c/{compound.id}/roll")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    import re

    codes = re.findall(r'class="code">([0-9A-Z]{5}-[0-9A-Z]{5})<', text)
    assert len(codes) == 3
    resident = make_user("Chen Wei")
    rclient = login_as(resident)
    response = post_form(
        rclient, "/join/code", {"code": codes[0].lower().replace("-", " ")}, "/join/code"
    )
    assert response.status_code == 302
    m = membership(db, resident, compound)
    assert (m.status, m.unit, m.role, m.private_area) == (
        "verified",
        "Building 1 Room 101",
        "owner",
        Decimal("120.00"),
    )
    again = post_form(login_as(make_user()), "/join/code", {"code": codes[0]}, "/join/code")
    assert again.status_code == 400
    assert "not valid" in again.get_data(as_text=True)


def test_reissuing_invites_voids_the_unused_code(db, compound, make_member, make_user):
    committee = make_member(compound, role="committee")
    services.import_roll(committee, compound, ROLL)
    first = dict((e.unit, c) for e, c in services.issue_invites(committee, compound))
    second = dict((e.unit, c) for e, c in services.issue_invites(committee, compound))
    db.session.commit()
    unit = "Building 1 Room 101"
    with pytest.raises(services.InviteInvalid):
        services.redeem_invite(make_user(), first[unit])
    db.session.rollback()
    assert services.redeem_invite(make_user(), second[unit]).unit == unit


# ---------------------------------------------------------------- languages and pages


@pytest.mark.parametrize(
    ("accept", "lang", "text"),
    [("zh-CN,zh;q=0.9", "zh-Hans", "登录"), ("en-US,en", "en", "Log in")],
)
def test_pages_render_in_both_languages(client, compound, accept, lang, text):
    for path in ("/", "/communities", f"/c/{compound.id}", "/auth/login", "/auth/register"):
        response = client.get(path, headers={"Accept-Language": accept})
        body = response.get_data(as_text=True)
        assert response.status_code == 200, path
        assert f'<html lang="{lang}">' in body
        assert text in body


def test_language_choice_is_remembered_for_members(db, make_user, login_as):
    user = make_user(locale="en")
    client = login_as(user)
    response = post_form(client, "/settings/language", {"language": "zh", "next": "/profile"}, "/")
    assert response.status_code == 302 and response.headers["Location"] == "/profile"
    assert '<html lang="zh-Hans">' in client.get("/", headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )
    db.session.expire_all()
    assert user.locale == "zh"


def test_large_text_switch_works_without_an_account(client):
    post_form(client, "/settings/text-size", {"size": "large", "next": "/communities"})
    assert 'class="large-text"' in client.get("/communities").get_data(as_text=True)


def test_pages_work_without_javascript(client, compound, make_member, login_as):
    """Every action is a plain form with a submit button and an action URL."""
    committee = make_member(compound, role="committee")
    c = login_as(committee)
    for path in (
        "/",
        f"/c/{compound.id}",
        f"/c/{compound.id}/requests",
        f"/c/{compound.id}/roll",
        "/profile",
        "/join/code",
    ):
        body = c.get(path).get_data(as_text=True)
        import re

        for form in re.findall(r"<form[^>]*>", body):
            assert 'method="post"' in form and "action=" in form or 'method="post" class' in form, (
                form
            )
        assert "<noscript" not in body
