"""A voting round from its creation to the verified receipt, in a real browser against a
live server: the committee creates a round on a proposal scheduled for a vote through the
form → the open sweep runs (in-process, with the clock passed in) → resident A votes on a
phone with JavaScript, one question per screen, changes an answer on the review page and
casts (the browser signs the ballot) → resident B votes without JavaScript (the server signs
with a custodial credential) → the close and the final result run → the round page shows
the verdicts, the proposal is accepted (and goes into implementation) → A checks the
receipt on the verification page.

The scheduled jobs are not waited for: the test calls the same services the sweeps call
(`open_round`, `close_round`, `finalize_round`) for this round, with `now` at the round's
times. The console watch of conftest.py fails the test on console errors, CSP violations,
404s and server errors in any of the contexts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Seed, SeededCommunity, SeededUser, unique
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

ZONE = ZoneInfo("Asia/Shanghai")  # the seeded community's time zone
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
LIFT_QUESTION = "Install a lift in Building 3?"
COLOUR_QUESTION = "Which finish for the lift cabin?"
COLOURS = ("Wood", "Steel")
FORM_TIME = "%Y-%m-%dT%H:%M"  # <input type="datetime-local">
HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX128 = re.compile(r"^[0-9a-f]{128}$")


# ---------------------------------------------------------------- seeding and the clock


def seed_scheduled_proposal(
    seed: Seed, community: SeededCommunity, author: SeededUser, committee: SeededUser, title: str
) -> int:
    """A published proposal that reached deliberation and that the committee scheduled for
    a vote, through the deliberation services."""
    from community.models import Community, User
    from deliberation import services
    from deliberation.lifecycle import Status
    from web.extensions import db

    with seed._lock, seed.app.app_context():
        proposal = services.submit_proposal(
            db.session.get(User, author.id),
            db.session.get(Community, community.id),
            services.ProposalDraft(
                title=title,
                body="Older neighbours can no longer climb six floors.",
                category="facilities",
            ),
            publish=True,
        )
        assert services.change_status(proposal, Status.DELIBERATION)
        services.schedule_for_vote(db.session.get(User, committee.id), proposal)
        db.session.commit()
        proposal_id = proposal.id
        db.session.remove()
    return proposal_id


@dataclass(frozen=True)
class RoundTimes:
    opens_at: datetime
    closes_at: datetime


def round_times(seed: Seed, round_id: int) -> RoundTimes:
    from ballots.models import Round
    from web.extensions import db

    with seed._lock, seed.app.app_context():
        round_ = db.session.get(Round, round_id)
        times = RoundTimes(round_.opens_at, round_.closes_at)
        db.session.remove()
    return times


def run_step(seed: Seed, step, round_id: int, now: datetime) -> bool:
    """One step of a sweep (ballots/jobs.py) for this round: its own transaction."""
    from web.extensions import db

    with seed._lock, seed.app.app_context():
        try:
            done = step(round_id, now)
            db.session.commit()
        finally:
            db.session.remove()
    return done


@dataclass(frozen=True)
class CastBallot:
    board_n: int
    channel: str
    public_key: str
    custodial: bool  # the credential row
    seed_kept: bool  # the server holds the credential's private key
    board_custodial: bool  # the credential entry on the public board


def ballot_of(seed: Seed, round_id: int, user: SeededUser) -> CastBallot:
    """The user's current ballot, its credential, and the credential's entry on the board."""
    from sqlalchemy import select

    from ballots.models import Ballot, BoardEntry, Credential
    from web.extensions import db

    with seed._lock, seed.app.app_context():
        ballot = db.session.scalars(
            select(Ballot).where(
                Ballot.round_id == round_id,
                Ballot.cast_by_id == user.id,
                Ballot.is_current.is_(True),
            )
        ).one()
        credential = db.session.get(Credential, ballot.credential_id)
        entry = db.session.scalars(
            select(BoardEntry).where(
                BoardEntry.round_id == round_id, BoardEntry.n == credential.board_n
            )
        ).one()
        ballot_entry = db.session.scalars(
            select(BoardEntry).where(
                BoardEntry.round_id == round_id, BoardEntry.n == ballot.board_n
            )
        ).one()
        assert entry.type == "credential" and ballot_entry.type == "ballot"
        payload = json.loads(entry.payload)
        assert payload["key"] == credential.public_key
        assert json.loads(ballot_entry.payload)["ballot"]["credential"] == credential.public_key
        found = CastBallot(
            board_n=ballot.board_n,
            channel=ballot.channel,
            public_key=credential.public_key,
            custodial=credential.custodial,
            seed_kept=credential.seed is not None,
            board_custodial=payload["custodial"],
        )
        db.session.remove()
    return found


# ---------------------------------------------------------------- steps


def flash(page: Page, text: str) -> Locator:
    return page.locator("#alerts").get_by_role("status").filter(has_text=text)


def log_in(page: Page, user: SeededUser) -> None:
    page.goto("/auth/login")
    page.get_by_label("Mobile number or email").fill(user.contact)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def badge(page: Page) -> Locator:
    return page.get_by_role("article").locator(".badge").first


def fact(page: Page, term: str) -> Locator:
    """The <dd> of a <dt> in a list of facts (round notice, receipt)."""
    return page.locator("dl.facts > dt", has_text=term).locator("xpath=following-sibling::dd[1]")


def question_block(page: Page, n: int) -> Locator:
    name = f"Question {n}" if n == 1 else f"Question {n} (leave empty if not needed)"
    return page.get_by_role("group", name=name, exact=True)


def expect_cast(page: Page, round_id: int):
    return page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith(f"/r/{round_id}/cast")
    )


def posted_fields(request) -> dict[str, list[str]]:
    return parse_qs(request.post_data or "", keep_blank_values=True)


def answer(page: Page, step: int, question: str, choice: str, button: str) -> None:
    """One screen of the ballot: its heading, the question, one choice, the button."""
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Question {step} of 2")
    expect(page.locator("legend.question")).to_have_text(question)
    page.get_by_label(choice, exact=True).check()
    page.get_by_role("button", name=button).click()


def review_items(page: Page) -> Locator:
    return page.locator("ol.review > li")


def expect_receipt(page: Page, round_id: int) -> tuple[str, int]:
    """The receipt page after a cast: its text (for the verification page) and position."""
    expect(page).to_have_url(re.compile(rf"/r/{round_id}/receipts/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your ballot is recorded")
    text = page.get_by_label(
        "The receipt as text (keep it; paste it on the verification page)"
    ).input_value()
    receipt = json.loads(text)
    assert set(receipt) == {"round", "n", "ballot", "head", "signature"}, receipt
    expect(fact(page, "Position on the board")).to_have_text(str(receipt["n"]))
    expect(fact(page, "Ballot hash")).to_have_text(receipt["ballot"])
    expect(page.get_by_role("img", name="QR code of this receipt")).to_be_visible()
    return text, receipt["n"]


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, full_page=True)


# ---------------------------------------------------------------- the journey


def test_round_from_creation_to_verified_receipt(new_context, seed, console):
    from babel.dates import format_datetime

    from ballots import services
    from crypto.verify import verify_json

    compound = seed.community(unique("Osmanthus Garden"))
    committee = seed.member(compound, role="committee", user=seed.user(unique("Chair Wang")))
    resident_a = seed.member(
        compound, unit="Building 3, Room 502", user=seed.user(unique("Grandma Li"))
    )
    resident_b = seed.member(
        compound, unit="Building 3, Room 601", user=seed.user(unique("Uncle Chen"))
    )
    seed.member(compound, unit="Building 1, Room 101")  # a voter who does not vote
    proposal_title = unique("A lift for Building 3")
    proposal_id = seed_scheduled_proposal(seed, compound, resident_a, committee, proposal_title)
    round_title = unique("Lift decision")
    # A minute or two ahead, in the community's zone, as the committee member types it.
    opens_local = (datetime.now(ZONE) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    closes_local = opens_local + timedelta(days=7)

    # 1. The committee member creates the round from the community's votes.
    by_committee = new_context().new_page()
    log_in(by_committee, committee)
    by_committee.goto("/")
    by_committee.get_by_role("link", name="See the votes").click()
    expect(by_committee).to_have_url(re.compile(rf"/c/{compound.id}/rounds$"))
    expect(by_committee.get_by_text("No voting rounds yet.")).to_be_visible()
    by_committee.get_by_role("link", name="New voting round").click()
    expect(by_committee).to_have_url(re.compile(rf"/c/{compound.id}/rounds/new$"))
    expect(
        by_committee.get_by_text(
            re.compile(r"^Times are in the community's time zone \(Asia/Shanghai\)")
        )
    ).to_be_visible()
    by_committee.get_by_label("Title").fill(round_title)
    by_committee.get_by_label("Explanation for voters").fill("One vote for each resident.")
    by_committee.get_by_label("Opens at").fill(opens_local.strftime(FORM_TIME))
    by_committee.get_by_label("Closes at").fill(closes_local.strftime(FORM_TIME))
    expect(by_committee.get_by_label("All verified residents (one vote each)")).to_be_checked()
    expect(
        by_committee.get_by_label("Secret: the public board shows no names or units")
    ).to_be_checked()
    by_committee.get_by_label("Objection period after the close, in days").fill("0")
    first = question_block(by_committee, 1)
    first.get_by_label("Question text", exact=True).fill(LIFT_QUESTION)
    expect(first.get_by_label("How is it answered?")).to_have_value("yes_no_abstain")
    expect(first.get_by_label("Decision rule")).to_have_value("simple_majority")
    first.get_by_label("Proposal decided by this question (optional)").select_option(
        label=proposal_title
    )
    second = question_block(by_committee, 2)
    second.get_by_label("Question text", exact=True).fill(COLOUR_QUESTION)
    second.get_by_label("How is it answered?").select_option(label="Choose one option")
    second.get_by_label("Options, one per line (not needed for Yes / No / Abstain)").fill(
        "\n".join(COLOURS)
    )
    by_committee.get_by_role("button", name="Schedule the round").click()

    expect(by_committee).to_have_url(re.compile(r"/r/\d+$"))
    round_id = int(by_committee.url.rsplit("/", 1)[1])
    expect(
        flash(by_committee, "The voting round is scheduled. You can change it until it opens.")
    ).to_be_visible()
    expect(by_committee.get_by_role("heading", level=1)).to_have_text(round_title)
    expect(badge(by_committee)).to_have_text("Scheduled")
    expect(fact(by_committee, "Voters")).to_have_text("3 (fixed when the round opens)")
    expect(fact(by_committee, "Objection period")).to_have_text("0 days after the close")
    # The times typed were read in the community's zone, and are shown in it.
    times = round_times(seed, round_id)
    assert times.opens_at == opens_local, (times.opens_at, opens_local)
    assert times.closes_at == closes_local, (times.closes_at, closes_local)
    expect(fact(by_committee, "Voting period")).to_have_text(
        format_datetime(times.opens_at, "medium", tzinfo=ZONE, locale="en_US")
        + " to "
        + format_datetime(times.closes_at, "medium", tzinfo=ZONE, locale="en_US")
    )
    matters = by_committee.locator("#notice-heading ~ ol > li")
    expect(matters).to_have_count(2)
    expect(matters.nth(0)).to_contain_text(LIFT_QUESTION)
    expect(matters.nth(0).get_by_role("link", name="the proposal")).to_have_attribute(
        "href", f"/p/{proposal_id}"
    )
    expect(matters.nth(1)).to_contain_text(COLOUR_QUESTION)
    expect(by_committee.get_by_role("link", name="Change this round")).to_be_visible()

    # 2. The open sweep, at the opening time: the round opens, the proposal is put to the vote.
    assert run_step(seed, services.open_round, round_id, times.opens_at)
    by_committee.reload()
    expect(badge(by_committee)).to_have_text("Open for voting")
    expect(by_committee.get_by_text("Turnout so far: 0 of 3 voters (0.0%).")).to_be_visible()
    expect(by_committee.get_by_role("link", name="Change this round")).to_have_count(0)
    by_committee.goto(f"/p/{proposal_id}")
    expect(badge(by_committee)).to_have_text("Voting")

    # 3. Resident A, on a phone with JavaScript: from the home page, one question per
    # screen, a change on the review page, and a ballot signed by the browser.
    by_a = new_context(**PHONE).new_page()
    log_in(by_a, resident_a)
    by_a.goto("/")
    open_for_a = by_a.get_by_role("region", name="Votes open for you", exact=True).get_by_role(
        "listitem"
    )
    expect(open_for_a).to_have_count(1)
    expect(open_for_a).to_contain_text(round_title)
    open_for_a.get_by_role("link", name="Vote now").click()
    expect(by_a).to_have_url(re.compile(rf"/r/{round_id}/vote$"))
    expect(by_a.get_by_label("Yes", exact=True)).to_be_visible()
    screenshot(by_a, "ballot-question-phone.png")
    answer(by_a, 1, LIFT_QUESTION, "Yes", "Next")
    answer(by_a, 2, COLOUR_QUESTION, "Wood", "Review my ballot")

    expect(by_a.get_by_role("heading", level=1)).to_have_text("Review your ballot")
    expect(review_items(by_a)).to_have_count(2)
    expect(review_items(by_a).nth(0)).to_contain_text(LIFT_QUESTION)
    expect(review_items(by_a).nth(0).locator("strong")).to_have_text("Yes")
    expect(review_items(by_a).nth(1).locator("strong")).to_have_text("Wood")
    review_items(by_a).nth(1).get_by_role("button", name="Change").click()
    expect(by_a.get_by_role("heading", level=1)).to_have_text("Question 2 of 2")
    expect(by_a.get_by_label("Wood", exact=True)).to_be_checked()
    by_a.get_by_role("button", name="Back").click()  # the first answer travelled along
    expect(by_a.get_by_role("heading", level=1)).to_have_text("Question 1 of 2")
    expect(by_a.get_by_label("Yes", exact=True)).to_be_checked()
    by_a.get_by_role("button", name="Next").click()
    answer(by_a, 2, COLOUR_QUESTION, "Steel", "Review my ballot")
    expect(review_items(by_a).nth(0).locator("strong")).to_have_text("Yes")
    expect(review_items(by_a).nth(1).locator("strong")).to_have_text("Steel")
    expect(
        by_a.get_by_text(
            "Your browser signs this ballot with a key of its own: the server never sees it."
        )
    ).to_be_visible()
    with expect_cast(by_a, round_id) as cast:
        by_a.get_by_role("button", name="Cast my ballot").click()
    sent_a = posted_fields(cast.value)
    assert HEX64.match(sent_a["credential"][0]), sent_a
    assert HEX128.match(sent_a["signature"][0]), sent_a
    assert sent_a["a_q1"] == ["yes"] and sent_a["a_q2"] == ["o2"], sent_a
    receipt_a, position_a = expect_receipt(by_a, round_id)
    screenshot(by_a, "ballot-receipt-phone.png")

    # 4. Resident B, without JavaScript: plain forms, a forgotten answer, the server signs.
    by_b = new_context(javascript=False).new_page()
    log_in(by_b, resident_b)
    by_b.goto(f"/r/{round_id}")
    expect(by_b.get_by_text("Turnout so far: 1 of 3 voters (33.3%).")).to_be_visible()
    by_b.get_by_role("link", name="Vote now").click()
    expect(by_b).to_have_url(re.compile(rf"/r/{round_id}/vote$"))
    console.allow(rf"/r/{round_id}/vote: Failed to load resource: .* status of 400 ")
    by_b.get_by_role("button", name="Next").click()  # nothing chosen
    expect(by_b.get_by_role("heading", level=1)).to_have_text("Question 1 of 2")
    expect(by_b.get_by_role("alert")).to_have_text("Please choose one answer.")
    answer(by_b, 1, LIFT_QUESTION, "Yes", "Next")
    answer(by_b, 2, COLOUR_QUESTION, "Steel", "Review my ballot")
    expect(by_b.get_by_role("heading", level=1)).to_have_text("Review your ballot")
    expect(review_items(by_b).nth(0).locator("strong")).to_have_text("Yes")
    expect(review_items(by_b).nth(1).locator("strong")).to_have_text("Steel")
    expect(by_b.locator("#signing-note")).to_be_hidden()
    with expect_cast(by_b, round_id) as cast:
        by_b.get_by_role("button", name="Cast my ballot").click()
    sent_b = posted_fields(cast.value)
    assert sent_b["credential"] == [""] and sent_b["signature"] == [""], sent_b
    _receipt_b, position_b = expect_receipt(by_b, round_id)
    by_b.get_by_role("link", name=f"← {round_title}").click()
    expect(by_b.get_by_text("You have voted.")).to_be_visible()

    # 5. The board: A's credential is the browser's own key, B's is custodial.
    ballot_a = ballot_of(seed, round_id, resident_a)
    assert ballot_a.board_n == position_a and ballot_a.channel == "online"
    assert ballot_a.public_key == sent_a["credential"][0]  # the key the browser made
    ballot_b = ballot_of(seed, round_id, resident_b)
    assert ballot_b.board_n == position_b and ballot_b.channel == "online"
    assert ballot_a.board_custodial is False and not ballot_a.custodial, ballot_a
    assert not ballot_a.seed_kept, ballot_a  # the server never had A's key
    assert ballot_b.board_custodial is True and ballot_b.custodial, ballot_b
    assert ballot_b.seed_kept, ballot_b

    # 6. The close and, with no objection period, the final result: the same due moment.
    assert run_step(seed, services.close_round, round_id, times.closes_at)
    assert run_step(seed, services.finalize_round, round_id, times.closes_at)

    by_a.goto(f"/r/{round_id}")
    expect(badge(by_a)).to_have_text("Final result")
    results = by_a.get_by_role("region", name="Final result", exact=True)
    expect(results).to_contain_text("Turnout: 2 of 3 voters (66.7%).")
    verdicts = results.locator(".verdict")
    expect(verdicts).to_have_text(
        [
            "Passed: 100.0% of the votes cast chose Yes; more than half was needed; "
            "66.7% of the voters took part.",
            "Passed: 100.0% of the votes cast chose Steel; more than half was needed; "
            "66.7% of the voters took part.",
        ]
    )
    lift = results.get_by_role("region", name=f"1. {LIFT_QUESTION}")
    expect(lift.get_by_role("row", name=re.compile(r"^Yes carried"))).to_contain_text("2")
    expect(by_a.get_by_text("No objections.")).to_be_visible()
    board = by_a.request.get(f"/r/{round_id}/board.json")
    assert board.ok, board.status
    report = verify_json(board.body(), receipts=[json.loads(receipt_a)], workers=1)
    assert report.ok, report.as_json()
    custodial = [
        e["payload"]["custodial"] for e in board.json()["entries"] if e["type"] == "credential"
    ]
    assert custodial == [False, True], custodial

    # 7. The proposal is accepted, and so goes into implementation: its page shows the
    # decision with the verdict.
    by_a.get_by_role("link", name="the proposal").click()
    expect(by_a).to_have_url(re.compile(rf"/p/{proposal_id}$"))
    expect(badge(by_a)).to_have_text("In implementation")
    expect(by_a.get_by_role("region", name="The decision", exact=True)).to_contain_text(
        "Accepted by the vote"
    )

    # 8. A checks the receipt kept from the receipt page.
    by_a.go_back()
    expect(by_a).to_have_url(re.compile(rf"/r/{round_id}$"))
    by_a.get_by_role("link", name="Check my receipt").click()
    expect(by_a).to_have_url(re.compile(rf"/r/{round_id}/verify$"))
    by_a.get_by_label("Your receipt (paste all of it)").fill(receipt_a)
    by_a.get_by_role("button", name="Check", exact=True).click()
    expect(by_a.get_by_role("status").filter(has_text="on the board")).to_have_text(
        f"Your ballot is on the board at position {position_a}. "
        "It is your current ballot and counts."
    )

    console.assert_clean()
