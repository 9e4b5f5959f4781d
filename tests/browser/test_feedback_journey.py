"""A decision from the vote to the residents' verdict on the work, in a real browser against
a live server: a proposal accepted by a real voting round (created, opened, voted on, closed
and finalized through the ballots services, with the clock passed in) → the committee makes
the plan (responsible party, budget, two milestones) → reports progress twice with a photo
each (40% and the first milestone, then completed) → a resident comments on a report (htmx)
→ two residents rate the work, one on a phone with JavaScript, one without JavaScript → the
community's accountability board shows the decision, its figures and its CSV row.

The console watch of conftest.py fails the test on console errors, CSP violations, 404s and
server errors in any of the contexts."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Seed, SeededCommunity, SeededUser, unique
from tests.browser.test_ballot_journey import (
    PHONE,
    ZONE,
    badge,
    fact,
    flash,
    log_in,
    run_step,
    screenshot,
    seed_scheduled_proposal,
)

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

QUESTION = "Repave the main path?"
RESPONSIBLE = "Greenway Property Management"
BUDGET_SOURCE = "Maintenance fund"
MILESTONES = ("Old paving removed", "New paving laid")
FIRST_REPORT = "The old paving is **removed** along the whole path."
SECOND_REPORT = "The new paving is laid and the path is open again."
COMMENT = "Thank you, the path already looks much better."
SATISFACTION = "How satisfied are you with the result?"
AS_DECIDED = "Was it done as decided?"


# ---------------------------------------------------------------- seeding


def seed_accepted_by_vote(
    seed: Seed, community: SeededCommunity, committee: SeededUser, proposal_id: int, voters
) -> int:
    """A round on the scheduled proposal, run through the ballots services in the past:
    created, opened, everyone votes yes, closed and (no objection period) finalized. The
    final result accepts the proposal, which goes into implementation."""
    from ballots import services
    from ballots.models import Round
    from community.models import Community, User
    from web.extensions import db

    opens_at = datetime.now(ZONE).replace(microsecond=0) - timedelta(days=10)
    closes_at = opens_at + timedelta(days=7)
    draft = services.RoundDraft(
        title=unique("Path decision"),
        opens_at=opens_at,
        closes_at=closes_at,
        objection_days=0,
        questions=[services.QuestionDraft(title=QUESTION, proposal_id=proposal_id)],
    )
    with seed._lock, seed.app.app_context():
        round_ = services.create_round(
            db.session.get(User, committee.id),
            db.session.get(Community, community.id),
            draft,
            now=opens_at - timedelta(hours=1),
        )
        db.session.commit()
        round_id = round_.id
        db.session.remove()
    assert run_step(seed, services.open_round, round_id, opens_at)
    with seed._lock, seed.app.app_context():
        for i, voter in enumerate(voters):
            services.cast_ballot(
                db.session.get(User, voter.id),
                db.session.get(Round, round_id),
                {"q1": ["yes"]},
                services.new_nonce(),
                now=opens_at + timedelta(hours=1 + i),
            )
            db.session.commit()
        db.session.remove()
    assert run_step(seed, services.close_round, round_id, closes_at)
    assert run_step(seed, services.finalize_round, round_id, closes_at)
    return round_id


def make_photo(tmp_path: Path, name: str, colour: tuple[int, int, int]) -> Path:
    from PIL import Image

    path = tmp_path / name
    Image.new("RGB", (64, 48), colour).save(path)
    return path


# ---------------------------------------------------------------- steps


def region(page: Page, name: str) -> Locator:
    return page.get_by_role("region", name=name, exact=True)


def work_section(page: Page) -> Locator:
    return region(page, "Carrying out the decision")


def reports(page: Page) -> Locator:
    return region(page, "Progress reports").get_by_role("article")


def report_progress(
    page: Page, body: str, status: str, percent: str, milestone: str, photo: Path
) -> None:
    work_section(page).get_by_role("link", name="Report progress").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Report progress")
    page.get_by_label("What was done? (Markdown)").fill(body)
    page.get_by_label("Status", exact=True).select_option(label=status)
    page.get_by_label("Percent complete (0–100)").fill(percent)
    page.get_by_label("Milestone reached with this update (optional)").select_option(
        label=milestone
    )
    page.get_by_label(re.compile(r"^Photos")).set_input_files(photo)
    page.get_by_role("button", name="Publish the report").click()
    expect(
        flash(page, "Your progress report is published. Followers are notified.")
    ).to_be_visible()


def expect_photo_loads(page: Page, report: Locator, name: str) -> None:
    image = page.get_by_role("img", name=f"Photo: {name}")  # `has=` is relative to the link
    thumbnail = report.locator(image)
    expect(thumbnail).to_be_visible()
    thumbnail.scroll_into_view_if_needed()  # loading="lazy"
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle()
    )
    full = page.request.get(report.get_by_role("link").filter(has=image).get_attribute("href"))
    assert full.ok and full.headers["content-type"] == "image/png", (full.status, full.headers)


def rate(page: Page, satisfaction: str, as_decided: str) -> None:
    ratings = region(page, "Residents' ratings")
    expect(ratings.get_by_role("heading", name="Rate the work")).to_be_visible()
    ratings.get_by_role("group", name=SATISFACTION).get_by_label(satisfaction, exact=True).check()
    ratings.get_by_role("group", name=AS_DECIDED).get_by_label(as_decided, exact=True).check()
    ratings.get_by_role("button", name="Save my rating").click()
    expect(
        flash(page, "Thank you. Your rating is counted; you can change it for 30 days.")
    ).to_be_visible()
    expect(region(page, "Residents' ratings").get_by_role("heading", level=3)).to_have_text(
        "Change your rating"
    )


# ---------------------------------------------------------------- the journey


def test_accepted_proposal_from_plan_to_rated_on_the_board(new_context, seed, tmp_path):
    compound = seed.community(unique("Magnolia Court"))
    committee = seed.member(compound, role="committee", user=seed.user(unique("Chair Zhao")))
    author = seed.member(compound, unit="Building 2, Room 301", user=seed.user(unique("Auntie Xu")))
    neighbour_b = seed.member(
        compound, unit="Building 2, Room 402", user=seed.user(unique("Mr Sun"))
    )
    neighbour_c = seed.member(
        compound, unit="Building 5, Room 101", user=seed.user(unique("Ms Gao"))
    )
    title = unique("Repave the main path")
    proposal_id = seed_scheduled_proposal(seed, compound, author, committee, title)
    round_id = seed_accepted_by_vote(
        seed, compound, committee, proposal_id, [author, neighbour_b, neighbour_c]
    )
    today = datetime.now(ZONE).date()
    due_dates = (today + timedelta(days=10), today + timedelta(days=30))
    photos = (
        make_photo(tmp_path, "paving-removed.png", (120, 110, 100)),
        make_photo(tmp_path, "paving-laid.png", (90, 90, 95)),
    )

    # 1. The committee member finds the accepted proposal waiting for its plan.
    by_committee = new_context().new_page()
    log_in(by_committee, committee)
    by_committee.goto(f"/p/{proposal_id}")
    expect(badge(by_committee)).to_have_text("In implementation")
    decision = region(by_committee, "The decision")
    expect(decision).to_contain_text("Accepted by the vote")
    # The verdict itself is written by the final-result sweep, in the site's language.
    expect(
        decision.get_by_role("link", name=re.compile(r"^The verified result of"))
    ).to_have_attribute("href", f"/r/{round_id}")
    expect(decision).to_contain_text("Turnout: 100.0% of the electorate")
    work = work_section(by_committee)
    expect(work.locator(".badge")).to_have_text("Not started")
    expect(work.get_by_role("progressbar", name="Percent complete")).to_have_attribute("value", "0")
    expect(fact(by_committee, "Responsible")).to_have_text("Not named yet")
    expect(region(by_committee, "Progress reports")).to_contain_text("No progress reports yet.")

    # 2. The plan: who, how much from where, two milestones with their target dates.
    work.get_by_role("link", name="Make the plan").click()
    expect(by_committee).to_have_url(re.compile(rf"/p/{proposal_id}/plan$"))
    expect(by_committee.get_by_role("heading", level=1)).to_have_text("Plan the work")
    by_committee.get_by_label(re.compile(r"^Who is responsible")).fill(RESPONSIBLE)
    by_committee.get_by_label("Budget in yuan (optional)").fill("86000")
    by_committee.get_by_label(re.compile(r"^Where the money comes from")).fill(BUDGET_SOURCE)
    milestones = by_committee.get_by_role("group", name="Milestones and their target dates")
    for n, (name, due) in enumerate(zip(MILESTONES, due_dates, strict=True)):
        milestones.get_by_label(f"Milestone {n + 1}", exact=True).fill(name)
        milestones.get_by_label("Target date").nth(n).fill(due.isoformat())
    by_committee.get_by_role("button", name="Save the plan").click()

    expect(by_committee).to_have_url(re.compile(rf"/p/{proposal_id}#implementation$"))
    expect(
        flash(by_committee, "The plan is saved and shown on the proposal's page.")
    ).to_be_visible()
    expect(fact(by_committee, "Responsible")).to_have_text(RESPONSIBLE)
    expect(fact(by_committee, "Budget")).to_have_text(f"¥86,000 · {BUDGET_SOURCE}")
    planned = work.locator("ol.milestones > li")
    expect(planned).to_have_count(2)
    for n, (name, due) in enumerate(zip(MILESTONES, due_dates, strict=True)):
        expect(planned.nth(n)).to_contain_text(f"{name} · target {due.isoformat()}")
    expect(work.get_by_role("link", name="Edit the plan")).to_be_visible()

    # 3. Two progress reports, each with a photo: 40% and the first milestone, then done.
    report_progress(by_committee, FIRST_REPORT, "In progress", "40", MILESTONES[0], photos[0])
    expect(work.locator(".badge")).to_have_text("In progress")
    expect(work).to_contain_text("40% complete")
    expect(planned.nth(0)).to_contain_text(f"✓ {MILESTONES[0]}")
    report_progress(by_committee, SECOND_REPORT, "Completed", "100", MILESTONES[1], photos[1])

    expect(badge(by_committee)).to_have_text("Completed")
    expect(work.locator(".badge")).to_have_text("Completed")
    expect(work).to_contain_text("100% complete")
    expect(work.get_by_role("progressbar", name="Percent complete")).to_have_attribute(
        "value", "100"
    )
    expect(work.get_by_role("link", name="Report progress")).to_have_count(0)
    expect(work.get_by_role("link", name="Edit the plan")).to_have_count(0)
    expect(reports(by_committee)).to_have_count(2)
    latest, first = reports(by_committee).nth(0), reports(by_committee).nth(1)  # newest first
    expect(latest).to_contain_text("Completed · 100% complete")
    expect(latest).to_contain_text(f"Milestone reached: {MILESTONES[1]}")
    expect(latest).to_contain_text(SECOND_REPORT)
    expect(first).to_contain_text("In progress · 40% complete")
    expect(first).to_contain_text(f"Milestone reached: {MILESTONES[0]}")
    expect(first.locator(".user-content strong")).to_have_text("removed")  # Markdown
    expect_photo_loads(by_committee, latest, photos[1].name)
    expect_photo_loads(by_committee, first, photos[0].name)
    story = region(by_committee, "The whole story").get_by_role("listitem")
    expect(story.filter(has_text="Vote: accepted")).to_have_count(1)
    expect(story.filter(has_text="The plan was published")).to_have_count(1)
    expect(
        story.filter(has_text=f"Progress report: In progress, 40% complete, ✓ {MILESTONES[0]}")
    ).to_have_count(1)
    expect(
        story.filter(has_text=f"Progress report: Completed, 100% complete, ✓ {MILESTONES[1]}")
    ).to_have_count(1)
    expect(region(by_committee, "Residents' ratings")).to_contain_text("No ratings yet.")

    # 4. The author comments on the first report; htmx swaps the comments in place.
    by_author = new_context().new_page()
    log_in(by_author, author)
    by_author.goto(f"/p/{proposal_id}")
    by_author.wait_for_load_state("load")  # htmx (a deferred script) has taken over the forms
    first_report = reports(by_author).filter(has_text=FIRST_REPORT.replace("**", ""))
    first_report.get_by_text("Comment on this report").click()
    first_report.get_by_label("Your comment on this update").fill(COMMENT)
    with by_author.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/comments")
    ) as posted:
        first_report.get_by_role("button", name="Post comment").click()
    assert posted.value.request.headers.get("hx-request") == "true"
    assert posted.value.status == 200, posted.value.status
    expect(first_report.get_by_role("heading", name="1 comment")).to_be_visible()
    expect(first_report.get_by_role("listitem").filter(has_text=COMMENT)).to_contain_text(
        author.display_name
    )
    assert by_author.url.endswith(f"/p/{proposal_id}")  # no navigation: swapped in place

    # 5. Resident B rates on a phone, with JavaScript.
    by_b = new_context(**PHONE).new_page()
    log_in(by_b, neighbour_b)
    by_b.goto(f"/p/{proposal_id}#ratings")
    rate(by_b, "4 – satisfied", "Yes, as decided")
    expect(region(by_b, "Residents' ratings")).to_contain_text("1 rating, average 4.0 of 5")
    screenshot(by_b, "feedback-rating-phone.png")

    # 6. Resident C rates without JavaScript: the plain form does it all.
    by_c = new_context(javascript=False).new_page()
    log_in(by_c, neighbour_c)
    by_c.goto(f"/p/{proposal_id}")
    rate(by_c, "5 – very satisfied", "Partly")
    ratings = region(by_c, "Residents' ratings")
    expect(ratings).to_contain_text("2 ratings, average 4.5 of 5")
    expect(ratings).to_contain_text("Done as decided? yes: 1 · partly: 1 · no: 0")
    chart = ratings.get_by_role(
        "img", name="How satisfied residents are: number of ratings for each score"
    )
    expect(chart).to_be_visible()
    # A label and a count for each score, 5 first: the numbers are printed beside the bars.
    expect(chart.locator("text")).to_have_text(
        ["5 – very satisfied", "1", "4 – satisfied", "1", "3 – so-so", "0"]
        + ["2 – dissatisfied", "0", "1 – very dissatisfied", "0"]
    )

    # 7. The accountability board of the compound, from the community's page.
    by_c.goto(f"/c/{compound.id}")
    by_c.get_by_role("link", name="Accountability board").click()
    expect(by_c).to_have_url(re.compile(rf"/c/{compound.id}/accountability$"))
    expect(by_c.get_by_role("heading", level=1)).to_have_text("Accountability board")
    expect(fact(by_c, "Decisions")).to_have_text("1, of which 1 accepted")
    expect(fact(by_c, "Average turnout")).to_have_text("100.0%")
    expect(fact(by_c, "Implemented on time")).to_have_text("100.0% (1 of 1 finished or due)")
    expect(fact(by_c, "Satisfaction")).to_have_text("2 ratings, average 4.5 of 5")
    rows = by_c.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(2)  # the header and one decision
    row = rows.filter(has=by_c.get_by_role("link", name=title))
    expect(row.get_by_role("cell")).to_have_text(
        [
            re.compile(r"^Accepted\s*turnout 100\.0%$"),
            "Completed",
            "100%",
            "on time",
            "4.5 (2: 5★1 4★1 3★0 2★0 1★0)",
        ]
    )
    screenshot(by_c, "feedback-board.png")

    # 8. The CSV download has the same row (the committee member downloads it).
    by_committee.goto(f"/c/{compound.id}/accountability")
    with by_committee.expect_download() as download:
        by_committee.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == f"accountability-{compound.id}.csv"
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.startswith("\ufeff"), text[:20]  # a BOM, for spreadsheet programs
    [line] = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert line["proposal_id"] == str(proposal_id), line
    assert line["title"] == title and line["result"] == "accepted", line
    assert line["status"] == "completed" and line["percent_complete"] == "100", line
    assert line["on_time"] == "True" and line["turnout"] == "1.000000", line
    assert line["ratings"] == "2" and line["satisfaction_mean"] == "4.5000", line
    assert [line[f"satisfaction_{n}"] for n in range(1, 6)] == ["0", "0", "0", "1", "1"], line
