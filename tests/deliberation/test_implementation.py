"""The feedback loop after a vote (issue 4), through the services: the decision a round
hands over, the committee's plan, progress updates and their statuses, who may report
and who may rate, the ratings, and the sweeps that remind, mark stale work and send the
monthly digest. The clock is passed in as `now=`, except in the last test, which runs the
scheduled jobs themselves with the clock moved.

The helpers at the top (`voting_proposal`, `decided`, `update`) are also used by
tests/deliberation/test_accountability.py."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
import time_machine
from PIL import Image
from sqlalchemy import func, select

from community.services import membership_of
from deliberation import implementation as work
from deliberation import services
from deliberation.models import (
    Decision,
    Follow,
    Implementation,
    Milestone,
    MonthlyDigest,
    Notification,
    ProgressUpdate,
    Proposal,
    Rating,
    StatusChange,
)
from web.errors import Conflict, InvalidInput, PermissionDenied
from web.extensions import db
from web.scheduler import run_all_due

# The services' messages, read here in English, as an English-speaking member's request
# would (outside a request they are in the default language, Chinese).
pytestmark = pytest.mark.usefixtures("english")


@pytest.fixture
def english(app):
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        yield


T = datetime(2027, 3, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


# ---------------------------------------------------------------- helpers for this folder


def voting_proposal(community, author, title="Repair the lamp at gate 2", category="facilities"):
    """A proposal that went through support and deliberation and is being voted on."""
    proposal = Proposal(
        community_id=community.id,
        author_id=author.id,
        title=title,
        body=f"{title}, please.",
        body_html=f"<p>{title}, please.</p>",
        category=category,
        status="voting",
    )
    db.session.add(proposal)
    db.session.flush()
    services.follow(author, proposal)
    db.session.commit()
    return proposal


def decided(
    community,
    author,
    title="Repair the lamp at gate 2",
    *,
    accepted=True,
    at=T,
    turnout=Fraction(3, 5),
    category="facilities",
):
    """A proposal whose vote ended `accepted` or not at `at`, as a final round reports it."""
    proposal = voting_proposal(community, author, title, category)
    verdict = "Passed: 75.0% of the votes cast chose yes" if accepted else "Not passed"
    assert work.decide(proposal, accepted, decided_at=at, summary=verdict, turnout=turnout)
    db.session.commit()
    return proposal


def update(author, implementation, status="in_progress", percent=50, *, now, **values):
    """A progress update, committed."""
    entry = work.post_update(
        author,
        implementation,
        work.UpdateDraft(f"Work is {status}.", percent, status, **values),
        now=now,
    )
    db.session.commit()
    return entry


def notified(kind: str, user=None) -> list[Notification]:
    query = select(Notification).where(Notification.kind == kind)
    if user is not None:
        query = query.where(Notification.user_id == user.id)
    return list(db.session.scalars(query.order_by(Notification.id)))


@dataclass
class Compound:
    street: object
    community: object
    committee: object
    responsible: object  # the member named to report on the work
    residents: list = field(default_factory=list)


@pytest.fixture
def compound(make_community, make_member) -> Compound:
    street = make_community("Happiness Street", kind="street")
    garden = make_community("Sunny Garden", kind="compound", parent=street)
    return Compound(
        street=street,
        community=garden,
        committee=make_member(garden, role="committee", name="Chair Wang"),
        responsible=make_member(garden, role="owner", name="Caretaker Li"),
        residents=[make_member(garden, name=f"Neighbour {i}") for i in range(1, 4)],
    )


@pytest.fixture
def lamp(compound) -> Implementation:
    """The accepted lamp proposal, planned: Caretaker Li reports, two milestones."""
    proposal = decided(compound.community, compound.residents[0])
    implementation = work.implementation_of(proposal)
    work.plan(
        compound.committee,
        implementation,
        work.PlanDraft(
            responsible="Caretaker Li for the property management",
            responsible_user_id=compound.responsible.id,
            budget="¥1,200.50",
            budget_source="Maintenance fund",
            milestones=[("Buy the lamp", "2027-03-10"), ("Fit the lamp", date(2027, 3, 20))],
        ),
        now=T + timedelta(hours=1),
    )
    db.session.commit()
    return implementation


def milestones(implementation) -> list[Milestone]:
    db.session.expire(implementation, ["milestones"])
    return list(implementation.milestones)


def fresh(obj):
    db.session.commit()
    db.session.refresh(obj)
    return obj


# ---------------------------------------------------------------- a real round decides


@dataclass
class Decided:
    round_: object
    gate: Proposal
    pink: Proposal


@pytest.fixture
def finalized_round(db, make_community, make_member) -> Decided:
    """Sunny Garden votes on two scheduled proposals: three of its five members take part;
    "repair the gate" passes, "paint the walls pink" does not; the round is final."""
    from ballots import services as ballots

    garden = make_community("Sunny Garden")
    committee = make_member(garden, role="committee", name="Chair Wang")
    owners = [make_member(garden, role="owner", name=f"Owner {i}") for i in range(1, 5)]
    scheduled = []
    for title in ("Repair the gate", "Paint the walls pink"):
        proposal = services.submit_proposal(
            owners[0],
            garden,
            services.ProposalDraft(title, f"{title}, please.", "facilities"),
            publish=True,
        )
        proposal.status = "scheduled"
        scheduled.append(proposal)
    db.session.commit()
    gate, pink = scheduled
    opens, closes = T, T + timedelta(days=7)
    round_ = ballots.create_round(
        committee,
        garden,
        ballots.RoundDraft(
            title="Spring decisions",
            opens_at=opens,
            closes_at=closes,
            electorate="residents",
            secrecy="secret",
            objection_days=7,
            questions=[
                ballots.QuestionDraft(
                    title="Repair the gate?", method="yes_no_abstain", proposal_id=gate.id
                ),
                ballots.QuestionDraft(
                    title="Paint the walls pink?", method="yes_no_abstain", proposal_id=pink.id
                ),
            ],
        ),
        now=opens - timedelta(days=1),
    )
    db.session.commit()
    assert ballots.open_round(round_.id, opens)
    db.session.commit()
    for voter in owners[:3]:
        ballots.cast_ballot(
            voter,
            round_,
            {"q1": ["yes"], "q2": ["no"]},
            ballots.new_nonce(),
            now=opens + timedelta(hours=1),
        )
        db.session.commit()
    assert ballots.close_round(round_.id, closes)
    db.session.commit()
    db.session.refresh(round_)
    assert ballots.finalize_round(round_.id, round_.objections_until)
    db.session.commit()
    db.session.refresh(round_)
    return Decided(round_, fresh(gate), fresh(pink))


def round_verdict(round_, key: str) -> str:
    """The verdict the round's result page shows for a question."""
    from ballots import results

    manifest = round_.manifest_data
    spec = next(q for q in manifest["questions"] if q["id"] == key)
    outcome = next(q for q in round_.result_data["questions"] if q["id"] == key)
    return results.verdict(spec, manifest["electorate"], outcome)


def test_accepted_proposal_enters_implementation_with_the_rounds_verdict_and_turnout(
    finalized_round,
):
    gate, round_ = finalized_round.gate, finalized_round.round_
    assert gate.status == "implementation"
    decision = work.decision_of(gate)
    assert decision.accepted is True
    assert decision.verdict("en") == round_verdict(round_, "q1")
    assert "100.0%" in decision.verdict("en") and "60.0%" in decision.verdict("en")
    # Kept in each language of the site, whoever's request (or job) published it.
    assert decision.verdict("zh").startswith("通过")
    assert decision.turnout == Decimal("0.6")  # three of the five members took part
    assert decision.decided_at == round_.objections_until
    assert (decision.round_title, decision.round_url) == ("Spring decisions", f"/r/{round_.id}")
    started = work.implementation_of(gate)
    assert (started.status, started.percent, started.community_id) == (
        "not_started",
        0,
        gate.community_id,
    )
    history = db.session.scalars(
        select(StatusChange.status).where(StatusChange.proposal_id == gate.id)
    ).all()
    assert history[-2:] == ["accepted", "implementation"]


def test_rejected_proposal_gets_its_decision_and_no_implementation(finalized_round):
    pink, round_ = finalized_round.pink, finalized_round.round_
    assert pink.status == "rejected"
    decision = work.decision_of(pink)
    assert decision.accepted is False
    assert decision.verdict("en") == round_verdict(round_, "q2")
    assert "0.0%" in decision.verdict("en") and "60.0%" in decision.verdict("en")
    assert decision.turnout == Decimal("0.6")
    assert work.implementation_of(pink) is None


def test_finalizing_a_round_twice_decides_its_proposals_once(finalized_round):
    from ballots import services as ballots

    round_ = finalized_round.round_
    gate = finalized_round.gate
    notices = len(notified("status_changed"))

    assert ballots.finalize_round(round_.id, round_.objections_until + timedelta(days=1)) is False
    db.session.commit()

    assert db.session.scalar(select(func.count(Decision.id))) == 2
    assert db.session.scalar(select(func.count(Implementation.id))) == 1
    assert len(notified("status_changed")) == notices
    assert fresh(gate).status == "implementation"


def test_deciding_a_proposal_again_changes_nothing(compound):
    proposal = decided(compound.community, compound.residents[0])

    again = work.decide(proposal, False, decided_at=T + timedelta(days=1), summary="Not passed")
    db.session.commit()

    assert again is False
    assert fresh(proposal).status == "implementation"
    assert [d.accepted for d in db.session.scalars(select(Decision))] == [True]


def test_turnout_is_kept_to_six_decimal_places(compound):
    proposal = decided(compound.community, compound.residents[0], turnout=Fraction(2, 3))
    assert work.decision_of(proposal).turnout == Decimal("0.666667")


# ---------------------------------------------------------------- the plan


def test_committee_names_the_responsible_party_budget_and_milestones(compound, lamp):
    assert lamp.responsible == "Caretaker Li for the property management"
    assert lamp.responsible_user_id == compound.responsible.id
    assert (lamp.budget, lamp.budget_source) == (Decimal("1200.50"), "Maintenance fund")
    assert [(m.title, m.due_on) for m in milestones(lamp)] == [
        ("Buy the lamp", date(2027, 3, 10)),
        ("Fit the lamp", date(2027, 3, 20)),
    ]
    assert lamp.planned_at == T + timedelta(hours=1)
    follows = db.session.scalar(
        select(func.count(Follow.id)).where(
            Follow.proposal_id == lamp.proposal_id, Follow.user_id == compound.responsible.id
        )
    )
    assert follows == 1, "the reporting member hears what residents say"


def test_only_the_committee_plans_the_work(compound):
    implementation = work.implementation_of(decided(compound.community, compound.residents[0]))
    with pytest.raises(PermissionDenied):
        work.plan(compound.residents[0], implementation, work.PlanDraft(responsible="Me"))


@pytest.mark.parametrize(
    ("draft", "problem"),
    [
        (work.PlanDraft(responsible="  "), "who is responsible"),
        (work.PlanDraft(responsible="Li", budget="a lot"), "amount in yuan"),
        (work.PlanDraft(responsible="Li", budget="-5"), "amount in yuan"),
        (work.PlanDraft(responsible="Li", milestones=[("Buy", "next week")]), "a date"),
        (work.PlanDraft(responsible="Li", milestones=[("", "2027-03-10")]), "a name"),
    ],
)
def test_a_plan_needs_a_responsible_party_amounts_and_dated_milestones(compound, draft, problem):
    implementation = work.implementation_of(decided(compound.community, compound.residents[0]))
    with pytest.raises(InvalidInput) as refused:
        work.plan(compound.committee, implementation, draft)
    assert problem in str(refused.value.message)


def test_the_reporting_member_must_be_a_verified_member_of_the_community(
    compound, make_member, make_community
):
    implementation = work.implementation_of(decided(compound.community, compound.residents[0]))
    elsewhere = make_member(make_community("Moon Bay"))
    pending = make_member(compound.community, status="pending")
    for outsider in (elsewhere, pending):
        with pytest.raises(InvalidInput):
            work.plan(
                compound.committee,
                implementation,
                work.PlanDraft(responsible="Someone", responsible_user_id=outsider.id),
            )


def test_a_reached_milestone_stays_in_a_revised_plan(compound, lamp):
    bought = milestones(lamp)[0]
    update(compound.responsible, lamp, percent=40, milestone_id=bought.id, now=T + timedelta(1))

    with pytest.raises(Conflict):
        work.plan(compound.committee, lamp, work.PlanDraft(responsible="Li", milestones=[]))
    db.session.rollback()

    assert [m.title for m in milestones(lamp)] == ["Buy the lamp", "Fit the lamp"]


# ---------------------------------------------------------------- progress and its statuses


def test_work_moves_from_not_started_through_blocked_to_completed(compound, lamp):
    started = update(compound.responsible, lamp, "in_progress", 20, now=T + timedelta(days=2))
    assert (lamp.status, lamp.percent, lamp.started_at) == ("in_progress", 20, started.created_at)

    update(
        compound.responsible,
        lamp,
        "blocked",
        30,
        reason="No lamps in stock",
        now=T + timedelta(days=3),
    )
    assert (fresh(lamp).status, lamp.status_reason, lamp.percent) == (
        "blocked",
        "No lamps in stock",
        30,
    )

    update(compound.responsible, lamp, "in_progress", 60, now=T + timedelta(days=5))
    assert (fresh(lamp).status, lamp.status_reason) == ("in_progress", None)

    done_at = T + timedelta(days=9)
    update(compound.responsible, lamp, "completed", 80, spent="1,150", now=done_at)
    fresh(lamp)
    assert (lamp.status, lamp.percent, lamp.completed_at) == ("completed", 100, done_at)
    assert lamp.spent == Decimal("1150.00")
    assert fresh(lamp.proposal).status == "completed"
    assert [u.status for u in db.session.scalars(select(ProgressUpdate).order_by("id"))] == [
        "in_progress",
        "blocked",
        "in_progress",
        "completed",
    ]


def test_started_work_cannot_go_back_to_not_started(compound, lamp):
    update(compound.responsible, lamp, "in_progress", 20, now=T + timedelta(days=1))
    with pytest.raises(Conflict):
        update(compound.responsible, lamp, "not_started", 0, now=T + timedelta(days=2))
    db.session.rollback()
    assert (fresh(lamp).status, lamp.percent) == ("in_progress", 20)


@pytest.mark.parametrize("status", ["blocked", "abandoned"])
def test_blocking_or_abandoning_needs_a_reason(compound, lamp, status):
    with pytest.raises(InvalidInput) as refused:
        update(compound.committee, lamp, status, 10, reason="   ", now=T + timedelta(days=1))
    assert "reason" in str(refused.value.message)
    db.session.rollback()
    assert fresh(lamp).status == "not_started"


def test_only_the_committee_can_abandon_the_work(compound, lamp):
    with pytest.raises(PermissionDenied):
        update(compound.responsible, lamp, "abandoned", 10, reason="Too hard", now=T)
    db.session.rollback()

    why = "The owners chose another contractor"
    update(compound.committee, lamp, "abandoned", 10, reason=why, now=T + timedelta(days=1))

    assert (fresh(lamp).status, lamp.status_reason) == ("abandoned", why)
    proposal = fresh(lamp.proposal)
    assert (proposal.status, proposal.status_reason) == ("abandoned", why)


@pytest.mark.parametrize("ending", ["completed", "abandoned"])
def test_finished_work_takes_no_more_updates_or_plans(compound, lamp, ending):
    update(compound.committee, lamp, ending, 100, reason="Done with it", now=T)

    with pytest.raises(Conflict):
        update(compound.committee, lamp, "in_progress", 50, now=T + timedelta(days=1))
    db.session.rollback()
    with pytest.raises(Conflict):
        work.plan(compound.committee, lamp, work.PlanDraft(responsible="Someone else"))
    db.session.rollback()
    assert db.session.scalar(select(func.count(ProgressUpdate.id))) == 1


def test_responsible_member_and_committee_may_post_updates_no_one_else(
    compound, lamp, make_member, make_community
):
    street_committee = make_member(compound.street, role="committee")
    inside = make_member(make_community("Building 1", kind="building", parent=compound.community))
    assert work.can_post_update(compound.responsible, lamp)
    assert work.can_post_update(compound.committee, lamp)
    for other in (compound.residents[0], street_committee, inside, None):
        assert not work.can_post_update(other, lamp)
    with pytest.raises(PermissionDenied):
        update(compound.residents[0], lamp, now=T)


def test_a_suspended_responsible_member_cannot_post_updates(compound, lamp):
    membership = membership_of(compound.responsible, compound.community)
    membership.suspended_until = datetime.now(UTC) + timedelta(days=7)
    db.session.commit()
    assert not work.can_post_update(compound.responsible, lamp)


@pytest.mark.parametrize("percent", ["-1", "101", "half", None])
def test_percent_complete_is_a_whole_number_from_0_to_100(compound, lamp, percent):
    with pytest.raises(InvalidInput):
        update(compound.responsible, lamp, "in_progress", percent, now=T)


def test_an_update_can_only_reach_a_milestone_of_its_own_plan(compound, lamp):
    other = work.implementation_of(decided(compound.community, compound.residents[1], "Benches"))
    work.plan(
        compound.committee,
        other,
        work.PlanDraft(responsible="Li", milestones=[("Order benches", "2027-04-01")]),
    )
    db.session.commit()
    with pytest.raises(InvalidInput):
        update(compound.responsible, lamp, milestone_id=milestones(other)[0].id, now=T)


def test_an_update_marks_its_milestone_reached(compound, lamp):
    bought, fitted = milestones(lamp)
    at = T + timedelta(days=4)
    update(compound.responsible, lamp, percent=50, milestone_id=bought.id, now=at)
    assert [m.reached_at for m in milestones(lamp)] == [at, None]


def photo_bytes(color="steelblue") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 300), color).save(out, format="JPEG")
    return out.getvalue()


def test_an_update_carries_up_to_six_photos(compound, lamp, tmp_path):
    from deliberation.photos import prepare_photo

    prepared = [(prepare_photo(photo_bytes()), f"lamp-{i}.jpg") for i in range(7)]
    draft = work.UpdateDraft("The new lamp is up.", 90, "in_progress")
    with pytest.raises(InvalidInput):
        work.post_update(
            compound.responsible, lamp, draft, photos=prepared, upload_dir=tmp_path, now=T
        )
    db.session.rollback()

    entry = work.post_update(
        compound.responsible, lamp, draft, photos=prepared[:6], upload_dir=tmp_path, now=T
    )
    db.session.commit()

    [shown] = work.updates_of(lamp)
    assert [p.display_name for p in shown.update.photos] == [f"lamp-{i}.jpg" for i in range(6)]
    for p in entry.photos:
        assert (tmp_path / p.stored_name).exists()
        assert (tmp_path / f"thumb-{p.stored_name}").exists()


def test_followers_hear_of_each_update_and_can_comment_on_it(compound, lamp):
    follower = compound.residents[1]
    services.follow(follower, lamp.proposal)
    db.session.commit()
    entry = update(compound.responsible, lamp, now=T + timedelta(days=1))

    assert [n.user_id for n in notified("implementation_update", follower)] == [follower.id]
    assert notified("implementation_update", compound.responsible) == []

    services.post_comment(
        follower, lamp.proposal, "Thank you, it is bright now.", "for", update_id=entry.id
    )
    db.session.commit()
    [shown] = work.updates_of(lamp)
    assert [c.body for c in shown.comments] == ["Thank you, it is bright now."]
    assert fresh(lamp.proposal).comment_count == 0, "not counted in the discussion"
    assert services.thread(lamp.proposal).comments == []


def test_the_timeline_tells_the_story_oldest_first_the_vote_before_its_consequence(compound, lamp):
    update(compound.responsible, lamp, "in_progress", 20, now=T + timedelta(days=2))
    update(compound.responsible, lamp, "completed", 100, now=T + timedelta(days=9))

    kinds = [
        (e.kind, e.status or (e.update.status if e.update else None))
        for e in work.timeline(lamp.proposal)
    ]

    assert kinds == [
        ("decision", None),
        ("status", "implementation"),
        ("plan", None),
        ("update", "in_progress"),
        ("update", "completed"),
    ]


# ---------------------------------------------------------------- ratings


@pytest.fixture
def done(compound, lamp) -> Implementation:
    update(compound.responsible, lamp, "completed", 100, now=T + timedelta(days=9))
    return lamp


RATED_AT = T + timedelta(days=10)


def test_a_verified_member_rates_the_completed_work(compound, done):
    rating = work.rate(
        compound.residents[0],
        done,
        4,
        as_decided="partly",
        comment="Bright, but late.",
        now=RATED_AT,
    )
    db.session.commit()
    assert (rating.satisfaction, rating.as_decided, rating.comment, rating.stage) == (
        4,
        "partly",
        "Bright, but late.",
        "final",
    )


def test_only_verified_members_of_that_community_can_rate(
    compound, done, make_member, make_user, make_community
):
    building = make_community("Building 1", kind="building", parent=compound.community)
    suspended = make_member(compound.community)
    membership_of(suspended, compound.community).suspended_until = datetime.now(UTC) + timedelta(7)
    db.session.commit()
    refused = {
        "pending": make_member(compound.community, status="pending"),
        "street member": make_member(compound.street),
        "building member": make_member(building),
        "someone else": make_user(),
        "suspended": suspended,
    }
    for who, user in refused.items():
        assert work.rating_refusal(user, done), who
        with pytest.raises(PermissionDenied):
            work.rate(user, done, 5, as_decided="yes", now=RATED_AT)
    assert db.session.scalar(select(func.count(Rating.id))) == 0


def test_the_responsible_member_cannot_rate_their_own_work(compound, done):
    assert "responsible" in work.rating_refusal(compound.responsible, done)
    with pytest.raises(PermissionDenied):
        work.rate(compound.responsible, done, 5, as_decided="yes", now=RATED_AT)


def test_work_is_rated_once_completed(compound, lamp):
    with pytest.raises(Conflict):
        work.rate(compound.residents[0], lamp, 5, as_decided="yes", now=RATED_AT)


@pytest.mark.parametrize(
    ("satisfaction", "as_decided"), [(0, "yes"), (6, "yes"), ("many", "yes"), (3, "maybe")]
)
def test_a_rating_needs_one_to_five_stars_and_an_answer(compound, done, satisfaction, as_decided):
    with pytest.raises(InvalidInput):
        work.rate(compound.residents[0], done, satisfaction, as_decided=as_decided, now=RATED_AT)


def test_rating_again_changes_the_members_one_rating(compound, done):
    neighbour = compound.residents[0]
    work.rate(neighbour, done, 2, as_decided="no", now=RATED_AT)
    db.session.commit()

    work.rate(neighbour, done, 4, as_decided="partly", now=RATED_AT + timedelta(days=29))
    db.session.commit()

    [rating] = db.session.scalars(select(Rating)).all()
    assert (rating.satisfaction, rating.as_decided) == (4, "partly")
    assert rating.updated_at == RATED_AT + timedelta(days=29)


def test_a_rating_can_no_longer_change_after_30_days(compound, done):
    neighbour = compound.residents[0]
    work.rate(neighbour, done, 2, as_decided="no", now=RATED_AT)
    db.session.commit()

    with pytest.raises(Conflict):
        work.rate(neighbour, done, 5, as_decided="yes", now=RATED_AT + timedelta(days=31))
    db.session.rollback()

    assert db.session.scalar(select(Rating.satisfaction)) == 2


def test_ratings_show_their_distribution_and_exact_mean(compound, done, make_member):
    voters = [*compound.residents, compound.committee, make_member(compound.community)]
    for member, (score, answer) in zip(
        voters, [(5, "yes"), (4, "yes"), (4, "partly"), (1, "no"), (5, "yes")], strict=True
    ):
        work.rate(member, done, score, as_decided=answer, now=RATED_AT)
    db.session.commit()

    final = work.ratings_of(done)["final"]

    assert final.counts == {1: 1, 2: 0, 3: 0, 4: 2, 5: 2}
    assert final.as_decided == {"yes": 3, "partly": 1, "no": 1}
    assert final.total == 5
    assert final.mean == Fraction(19, 5)
    assert final.share(4) == Fraction(2, 5)


def test_residents_rate_midway_once_per_reached_milestone(compound, lamp):
    bought, fitted = milestones(lamp)
    neighbour = compound.residents[0]
    with pytest.raises(Conflict):
        work.rate(neighbour, lamp, 3, milestone_id=bought.id, now=T)
    db.session.rollback()
    update(compound.responsible, lamp, percent=50, milestone_id=bought.id, now=T + timedelta(1))

    work.rate(neighbour, lamp, 3, milestone_id=bought.id, now=T + timedelta(days=2))
    work.rate(neighbour, lamp, 4, milestone_id=bought.id, now=T + timedelta(days=3))
    db.session.commit()

    with pytest.raises(Conflict):
        work.rate(neighbour, lamp, 4, milestone_id=fitted.id, now=T + timedelta(days=3))
    db.session.rollback()
    summaries = work.ratings_of(lamp)
    assert list(summaries) == [f"m{bought.id}"]
    assert summaries[f"m{bought.id}"].counts == {1: 0, 2: 0, 3: 0, 4: 1, 5: 0}


def test_a_midway_rating_is_apart_from_the_rating_of_the_completed_work(compound, lamp):
    bought, _fitted = milestones(lamp)
    neighbour = compound.residents[0]
    update(compound.responsible, lamp, percent=50, milestone_id=bought.id, now=T + timedelta(1))
    work.rate(neighbour, lamp, 2, milestone_id=bought.id, now=T + timedelta(days=2))
    update(compound.responsible, lamp, "completed", now=T + timedelta(days=9))

    work.rate(neighbour, lamp, 5, as_decided="yes", now=RATED_AT)
    db.session.commit()

    assert sorted(work.my_ratings(neighbour, lamp)) == ["final", f"m{bought.id}"]
    assert work.ratings_of(lamp)["final"].counts[5] == 1


# ---------------------------------------------------------------- the sweeps: overdue milestones

# "Buy the lamp" is due on 2027-03-10 in Shanghai: it is overdue from midnight there.
SHANGHAI_MIDNIGHT = datetime(2027, 3, 10, 16, 0, tzinfo=UTC)  # 2027-03-11 00:00 local


def test_overdue_reminder_waits_until_the_date_has_passed_in_the_communitys_zone(compound, lamp):
    assert work.remind_overdue_milestones(SHANGHAI_MIDNIGHT - timedelta(minutes=1)) == 0
    db.session.commit()
    assert notified("milestone_overdue") == []

    assert work.remind_overdue_milestones(SHANGHAI_MIDNIGHT) == 1
    db.session.commit()

    [reminder] = notified("milestone_overdue")
    assert (reminder.user_id, reminder.subject, reminder.proposal_id) == (
        compound.responsible.id,
        "Buy the lamp",
        lamp.proposal_id,
    )


def test_overdue_reminder_goes_once_per_milestone(compound, lamp):
    assert work.remind_overdue_milestones(SHANGHAI_MIDNIGHT) == 1
    assert work.remind_overdue_milestones(SHANGHAI_MIDNIGHT + timedelta(hours=1)) == 0
    db.session.commit()
    later = datetime(2027, 3, 25, tzinfo=UTC)  # both milestones are overdue now
    assert work.remind_overdue_milestones(later) == 1
    assert work.remind_overdue_milestones(later + timedelta(days=1)) == 0
    db.session.commit()

    assert [n.subject for n in notified("milestone_overdue")] == ["Buy the lamp", "Fit the lamp"]


def test_overdue_reminder_in_a_zone_behind_utc_waits_for_its_midnight(
    compound, make_community, make_member
):
    harbor = make_community("Harbor Court", timezone="America/New_York")
    committee = make_member(harbor, role="committee")
    implementation = work.implementation_of(decided(harbor, make_member(harbor)))
    work.plan(
        committee,
        implementation,
        work.PlanDraft(responsible="Board", milestones=[("Fix the pier", "2027-03-10")]),
    )
    db.session.commit()
    new_york_midnight = datetime(2027, 3, 11, 5, 0, tzinfo=UTC)  # 00:00 EST

    assert work.remind_overdue_milestones(new_york_midnight - timedelta(minutes=1)) == 0
    assert work.remind_overdue_milestones(new_york_midnight) == 1
    db.session.commit()

    [reminder] = notified("milestone_overdue")
    assert reminder.user_id == committee.id, "without a reporting member the committee hears"


def test_a_new_target_date_rearms_the_overdue_reminder(compound, lamp):
    assert work.remind_overdue_milestones(SHANGHAI_MIDNIGHT) == 1
    db.session.commit()
    work.plan(
        compound.committee,
        lamp,
        work.PlanDraft(
            responsible=lamp.responsible,
            responsible_user_id=lamp.responsible_user_id,
            milestones=[("Buy the lamp", "2027-03-15"), ("Fit the lamp", "2027-03-20")],
        ),
        now=SHANGHAI_MIDNIGHT + timedelta(hours=2),
    )
    db.session.commit()

    assert work.remind_overdue_milestones(SHANGHAI_MIDNIGHT + timedelta(days=1)) == 0
    assert work.remind_overdue_milestones(SHANGHAI_MIDNIGHT + timedelta(days=5)) == 1
    db.session.commit()

    assert [n.subject for n in notified("milestone_overdue")] == ["Buy the lamp"] * 2


def test_no_overdue_reminder_for_a_reached_milestone_or_finished_work(compound, lamp):
    bought, _fitted = milestones(lamp)
    update(compound.responsible, lamp, milestone_id=bought.id, now=T + timedelta(days=5))
    assert work.remind_overdue_milestones(SHANGHAI_MIDNIGHT) == 0
    update(compound.responsible, lamp, "completed", now=T + timedelta(days=15))
    assert work.remind_overdue_milestones(datetime(2027, 4, 1, tzinfo=UTC)) == 0
    db.session.commit()
    assert notified("milestone_overdue") == []


# ---------------------------------------------------------------- the sweeps: stale work


def test_work_without_an_update_for_30_days_is_marked_stale_once(compound, lamp):
    last = T + timedelta(days=2)
    update(compound.responsible, lamp, "in_progress", 20, now=last)

    assert work.mark_stale(last + timedelta(days=30) - timedelta(minutes=1)) == 0
    assert work.mark_stale(last + timedelta(days=30)) == 1
    assert work.mark_stale(last + timedelta(days=31)) == 0
    db.session.commit()

    assert fresh(lamp).stale_since == last + timedelta(days=30)
    assert [n.user_id for n in notified("implementation_stale")] == [compound.responsible.id]


def test_a_new_update_clears_the_stale_mark_and_the_clock_starts_again(compound, lamp):
    last = T + timedelta(days=2)
    update(compound.responsible, lamp, "in_progress", 20, now=last)
    assert work.mark_stale(last + timedelta(days=30)) == 1
    db.session.commit()

    again = last + timedelta(days=40)
    update(compound.responsible, lamp, "in_progress", 40, now=again)
    assert fresh(lamp).stale_since is None
    assert work.mark_stale(again + timedelta(days=29)) == 0
    assert work.mark_stale(again + timedelta(days=30)) == 1
    db.session.commit()

    assert len(notified("implementation_stale")) == 2


def test_accepted_work_never_planned_goes_stale_30_days_after_the_decision(compound):
    implementation = work.implementation_of(decided(compound.community, compound.residents[0]))
    assert work.mark_stale(T + timedelta(days=30)) == 1
    db.session.commit()
    assert fresh(implementation).stale_since == T + timedelta(days=30)
    assert [n.user_id for n in notified("implementation_stale")] == [compound.committee.id]


def test_finished_work_is_never_stale(compound, lamp):
    update(compound.responsible, lamp, "completed", now=T + timedelta(days=2))
    assert work.mark_stale(T + timedelta(days=90)) == 0


# ---------------------------------------------------------------- the sweeps: monthly digest

# The first hour of February 2027 in Shanghai.
FEBRUARY = datetime(2027, 1, 31, 16, 30, tzinfo=UTC)


def test_monthly_digest_goes_once_per_community_and_month_with_its_figures(
    compound, make_member, make_community
):
    garden, author = compound.community, compound.residents[0]
    january = datetime(2027, 1, 5, 2, 0, tzinfo=UTC)
    lamp = work.implementation_of(decided(garden, author, "Lamp", at=january))
    decided(garden, author, "Pink walls", accepted=False, at=january + timedelta(days=1))
    # 23:30 on 31 January in Shanghai: still January there.
    decided(garden, author, "Benches", at=datetime(2027, 1, 31, 15, 30, tzinfo=UTC))
    # 00:10 on 1 February in Shanghai: February's.
    decided(garden, author, "Trees", at=datetime(2027, 1, 31, 16, 10, tzinfo=UTC))
    update(compound.committee, lamp, "in_progress", 50, now=january + timedelta(days=2))
    update(compound.committee, lamp, "completed", now=january + timedelta(days=10))
    for member, score in zip(compound.residents[:2], (4, 5), strict=True):
        work.rate(member, lamp, score, as_decided="yes", now=january + timedelta(days=12))
    make_member(garden, status="pending")
    quiet = make_community("Moon Bay")
    make_member(quiet)
    db.session.commit()

    assert work.send_monthly_digests(FEBRUARY) == 1
    assert work.send_monthly_digests(FEBRUARY + timedelta(days=3)) == 0
    db.session.commit()

    digests = notified("monthly_digest")
    verified = sorted(
        [compound.committee.id, compound.responsible.id] + [r.id for r in compound.residents]
    )
    assert sorted(n.user_id for n in digests) == verified
    assert {n.subject for n in digests} == {
        "2027-01: decisions 3 (accepted 2), progress reports 2, completed 1, ratings 2 "
        "(average 4.5 of 5)"
    }
    assert {n.url for n in digests} == {f"/c/{garden.id}/accountability"}
    [row] = db.session.scalars(select(MonthlyDigest)).all()
    assert (row.community_id, row.month, row.recipients) == (garden.id, "2027-01", 5)


def test_next_months_digest_goes_the_next_month(compound):
    decided(compound.community, compound.residents[0], at=datetime(2027, 1, 5, tzinfo=UTC))
    assert work.send_monthly_digests(FEBRUARY) == 1
    march = datetime(2027, 2, 28, 16, 30, tzinfo=UTC)
    assert work.send_monthly_digests(march) == 1
    db.session.commit()

    subjects = [n.subject for n in notified("monthly_digest", compound.committee)]
    assert subjects == [
        "2027-01: decisions 1 (accepted 1), progress reports 0, completed 0, ratings 0",
        "2027-02: decisions 0 (accepted 0), progress reports 0, completed 0, ratings 0",
    ]


def test_no_digest_for_a_month_before_the_communitys_first_decision(compound):
    decided(compound.community, compound.residents[0], at=FEBRUARY + timedelta(hours=1))
    assert work.send_monthly_digests(FEBRUARY + timedelta(days=1)) == 0
    db.session.commit()
    assert notified("monthly_digest") == []


# ---------------------------------------------------------------- the same sweeps, as scheduled


def test_the_scheduled_jobs_remind_mark_stale_and_send_the_digest_as_time_passes(
    app, compound, lamp
):
    """The jobs the scheduler runs (deliberation/jobs.py, all sweeps in one pass, each in its
    own transaction), with the clock moved by time-machine instead of passed in."""
    update(compound.responsible, lamp, "in_progress", 20, now=T + timedelta(days=1))
    stale_from = T + timedelta(days=31)  # 30 days after that last report
    end_of_march = datetime(2027, 3, 31, 16, 30, tzinfo=UTC)  # 00:30 on 1 April in Shanghai
    jobs = ("remind_overdue_milestones", "mark_stale_implementations", "monthly_digests")

    def at(moment):
        with time_machine.travel(moment, tick=False):
            changed = run_all_due(app)
        return tuple(changed[job] for job in jobs)

    assert at(SHANGHAI_MIDNIGHT - timedelta(minutes=1)) == (0, 0, 0)
    assert at(SHANGHAI_MIDNIGHT) == (1, 0, 0)  # "Buy the lamp" is overdue
    assert at(SHANGHAI_MIDNIGHT + timedelta(hours=1)) == (0, 0, 0)
    assert at(end_of_march) == (1, 0, 1)  # "Fit the lamp" too; March's digest
    assert at(stale_from - timedelta(minutes=1)) == (0, 0, 0)
    assert at(stale_from) == (0, 1, 0)
    assert at(stale_from + timedelta(days=1)) == (0, 0, 0)

    db.session.expire_all()
    assert [n.subject for n in notified("milestone_overdue")] == ["Buy the lamp", "Fit the lamp"]
    assert [n.user_id for n in notified("implementation_stale")] == [compound.responsible.id]
    assert fresh(lamp).stale_since == stale_from
    [digest] = db.session.scalars(select(MonthlyDigest)).all()
    assert (digest.community_id, digest.month) == (compound.community.id, "2027-03")
