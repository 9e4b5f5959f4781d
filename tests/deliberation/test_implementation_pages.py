"""The feedback loop through its pages: plan, progress reports with photos and comments,
ratings, the accountability board and its downloads, the printable notice; who may do
what, and bad input answered with a message and a 4xx."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from io import BytesIO

import pytest
from PIL import Image
from sqlalchemy import select, update

from community.models import utcnow
from deliberation import implementation, services
from deliberation.lifecycle import Status
from deliberation.models import Implementation, Notification, Proposal, Rating
from tests.conftest import post_form


@pytest.fixture
def place(db, make_community, make_member):
    street = make_community(name="Street", kind="street")
    compound = make_community(name="Garden Court", kind="compound", parent=street)
    people = {
        "committee": make_member(compound, role="committee", display_name="Chair Wang"),
        "author": make_member(compound, display_name="Author Li"),
        "resident": make_member(compound, display_name="Resident Zhao"),
        "worker": make_member(compound, display_name="Worker Chen"),
        "street_staff": make_member(street, role="moderator", display_name="Street Staff"),
        "outsider": make_member(make_community(name="Elsewhere"), display_name="Outsider"),
    }
    return street, compound, people


def accepted_proposal(db, compound, author, title="Fix the north gate") -> Proposal:
    proposal = services.submit_proposal(
        author,
        compound,
        services.ProposalDraft(title, "The gate is broken.", "facilities", "12000"),
        publish=True,
    )
    db.session.commit()
    # Skip support, deliberation and the vote: they have their own tests.
    db.session.execute(
        update(Proposal).where(Proposal.id == proposal.id).values(status=Status.VOTING.value)
    )
    db.session.refresh(proposal)
    implementation.decide(
        proposal,
        True,
        decided_at=utcnow() - timedelta(days=2),
        summary="Passed: 80.0% agreed; more than half was needed",
        turnout=None,
        round_title="Gate vote",
        round_url="/r/1",
    )
    db.session.commit()
    return proposal


def image_bytes() -> bytes:
    out = BytesIO()
    Image.new("RGB", (320, 240), "steelblue").save(out, "PNG")
    return out.getvalue()


def test_the_whole_loop_through_the_pages(db, place, login_as, uploads):
    street, compound, people = place
    proposal = accepted_proposal(db, compound, people["author"])
    page = f"/p/{proposal.id}"
    committee = login_as(people["committee"])

    response = committee.get(page)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "Accepted by the vote" in text and "Passed: 80.0% agreed" in text
    assert "Make the plan" in text

    response = post_form(
        committee,
        f"{page}/plan",
        {
            "responsible": "Garden Property Management Co.",
            "responsible_user": str(people["worker"].id),
            "budget": "12,000",
            "budget_source": "maintenance fund",
            "milestone_title": ["Order parts", "Install"],
            "milestone_due": ["2099-01-10", "2099-02-10"],
        },
        token_from=f"{page}/plan",
    )
    assert response.status_code == 302
    work = db.session.scalar(
        select(Implementation).where(Implementation.proposal_id == proposal.id)
    )
    assert work.responsible == "Garden Property Management Co."
    assert str(work.budget) == "12000.00"
    assert [m.title for m in work.milestones] == ["Order parts", "Install"]

    worker = login_as(people["worker"])
    form = f"{page}/updates"
    response = post_form(
        worker,
        form,
        {
            "body": "Parts **ordered**.",
            "status": "in_progress",
            "percent": "30",
            "milestone": str(work.milestones[0].id),
            "spent": "3000",
            "photos": [(BytesIO(image_bytes()), "parts.png")],
        },
        token_from=form,
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    resident = login_as(people["resident"])
    text = resident.get(page).get_data(as_text=True)
    assert "Parts <strong>ordered</strong>." in text
    assert "30% complete" in text and "Milestone reached: Order parts" in text
    assert "parts.png" in text
    photo_path = text.split('src="/photos/')[1].split('"')[0]
    assert resident.get(f"/photos/{photo_path}").status_code == 200
    # Followers hear of it: the author follows their own proposal.
    kinds = db.session.scalars(
        select(Notification.kind).where(Notification.user_id == people["author"].id)
    ).all()
    assert "implementation_update" in kinds

    entry = implementation.updates_of(work)[0].update
    response = post_form(
        resident, f"/updates/{entry.id}/comments", {"body": "Thanks!"}, token_from=page
    )
    assert response.status_code == 302
    assert "Thanks!" in resident.get(page).get_data(as_text=True)
    # Not in the main discussion's counts.
    assert services.thread(proposal).counts["neutral"] == 0

    response = post_form(
        worker,
        form,
        {"body": "Installed.", "status": "completed", "percent": "90"},
        token_from=form,
    )
    assert response.status_code == 302
    db.session.refresh(proposal)
    assert proposal.status == Status.COMPLETED

    response = post_form(
        resident,
        f"{page}/rating",
        {"satisfaction": "4", "as_decided": "partly", "comment": "Good"},
        token_from=page,
    )
    assert response.status_code == 302
    # The worker is responsible: cannot rate their own work.
    response = post_form(
        worker, f"{page}/rating", {"satisfaction": "5", "as_decided": "yes"}, token_from=page
    )
    assert response.status_code == 403
    assert "responsible for this work" in response.get_data(as_text=True)
    assert db.session.scalar(select(Rating.satisfaction)) == 4

    board = resident.get(f"/c/{compound.id}/accountability")
    assert board.status_code == 200
    text = board.get_data(as_text=True)
    assert "Fix the north gate" in text and "<svg" in text
    # The street's board rolls the compound up, for the street's members.
    staff = login_as(people["street_staff"])
    assert "Fix the north gate" in staff.get(f"/c/{street.id}/accountability").get_data(
        as_text=True
    )
    data = json.loads(resident.get(f"/c/{compound.id}/accountability.json").data)
    assert data["totals"]["decisions"] == 1 and data["totals"]["ratings"] == 1
    assert data["decisions"][0]["status"] == "completed"
    rows = list(
        csv.DictReader(
            io.StringIO(
                resident.get(f"/c/{compound.id}/accountability.csv").data.decode("utf-8-sig")
            )
        )
    )
    assert rows[0]["title"] == "Fix the north gate" and rows[0]["satisfaction_4"] == "1"

    notice = resident.get(f"{page}/notice")
    assert notice.status_code == 200
    assert "data:image/svg+xml;base64," in notice.get_data(as_text=True)


def test_only_the_responsible_member_and_the_committee_report_progress(db, place, login_as):
    _street, compound, people = place
    proposal = accepted_proposal(db, compound, people["author"])
    form = f"/p/{proposal.id}/updates"
    resident = login_as(people["resident"])
    assert resident.get(form).status_code == 403
    response = post_form(
        resident,
        form,
        {"body": "I did it", "status": "in_progress", "percent": "10"},
        token_from=f"/p/{proposal.id}",
    )
    assert response.status_code == 403
    assert implementation.updates_of(implementation.implementation_of(proposal)) == []


def test_abandoning_needs_the_committee_and_a_reason(db, place, login_as):
    _street, compound, people = place
    proposal = accepted_proposal(db, compound, people["author"])
    committee = login_as(people["committee"])
    form = f"/p/{proposal.id}/updates"
    response = post_form(
        committee,
        form,
        {"body": "We stop.", "status": "abandoned", "percent": "0"},
        token_from=form,
    )
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Please give the reason" in text and "We stop." in text  # nothing lost
    response = post_form(
        committee,
        form,
        {"body": "We stop.", "status": "abandoned", "percent": "0", "reason": "No funds"},
        token_from=form,
    )
    assert response.status_code == 302
    text = committee.get(f"/p/{proposal.id}").get_data(as_text=True)
    assert "Abandoned by the owners" in text and "No funds" in text


def test_bad_plan_input_is_refused_with_a_message(db, place, login_as):
    _street, compound, people = place
    proposal = accepted_proposal(db, compound, people["author"])
    committee = login_as(people["committee"])
    path = f"/p/{proposal.id}/plan"
    response = post_form(
        committee,
        path,
        {
            "responsible": "Someone",
            "budget": "lots",
            "milestone_title": ["Start"],
            "milestone_due": ["not a date"],
        },
        token_from=path,
    )
    assert response.status_code == 400
    assert "must be an amount in yuan" in response.get_data(as_text=True)
    assert implementation.implementation_of(proposal).planned_at is None


def test_the_board_is_for_members_of_the_community_and_above(db, place, login_as):
    street, compound, people = place
    accepted_proposal(db, compound, people["author"])
    outsider = login_as(people["outsider"])
    assert outsider.get(f"/c/{compound.id}/accountability").status_code == 404
    assert outsider.get(f"/c/{compound.id}/accountability.json").status_code == 404
    # A compound member reads the compound's board, not the street's.
    resident = login_as(people["resident"])
    assert resident.get(f"/c/{compound.id}/accountability").status_code == 200
    assert resident.get(f"/c/{street.id}/accountability").status_code == 404
    assert resident.get(f"/c/{compound.id}/accountability?status=nonsense").status_code == 400
