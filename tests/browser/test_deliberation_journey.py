"""A proposal's whole life up to its moderation, in a real browser against a live server:
propose (Markdown and a photo) → neighbours support it (htmx and a plain form post) → the
threshold is reached → discussion with replies three levels deep → a report → a moderator
hides the comment with a public reason → the public moderation log shows it.

Each person has their own browser context. The supporter who supports and replies without
JavaScript proves that the plain-form path works; the others use htmx where the page has
it. The console watch of conftest.py fails the test on console errors, CSP violations,
404s and server errors in any of the contexts."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Seed, SeededCommunity, SeededUser, unique
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

THRESHOLD = 2
BODY = "We need **a lift** in Building 3.\n\nOlder neighbours can no longer climb six floors."
PHOTO = "stairwell.png"
FIRST_COMMENT = "A lift costs far too much for six floors."
REPLY = "The district subsidy pays for half of it."
REPLY_TO_REPLY = "Then I would support it, if the subsidy is confirmed."
REPORT_REASON = "This comment insults the author."
HIDE_REASON = "Personal attack"


# ---------------------------------------------------------------- seeding and steps


def seed_threshold(seed: Seed, community: SeededCommunity, threshold: int) -> None:
    """A fixed number of supporters starts the discussion (instead of a share of members)."""
    from deliberation.models import DeliberationSettings
    from web.extensions import db

    with seed._lock, seed.app.app_context():
        db.session.add(
            DeliberationSettings(
                community_id=community.id,
                support_threshold=threshold,
                support_percent=None,
                support_window_days=30,
            )
        )
        db.session.commit()
        db.session.remove()


def seed_member(seed: Seed, community: SeededCommunity, name: str, role: str = "resident"):
    return seed.member(community, role=role, user=seed.user(unique(name)))


def flash(page: Page, text: str) -> Locator:
    return page.locator("#alerts").get_by_role("status").filter(has_text=text)


def log_in(page: Page, user: SeededUser) -> None:
    page.goto("/auth/login")
    page.get_by_label("Mobile number or email").fill(user.contact)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def status_badge(page: Page) -> Locator:
    return page.get_by_role("article").locator(".badge").first


def support_box(page: Page) -> Locator:
    return page.locator("#support")


def discussion(page: Page) -> Locator:
    return page.locator("#discussion")


def thread_items(page: Page) -> Locator:
    return discussion(page).locator("ol.thread > li")


def comment_by_text(page: Page, text: str) -> Locator:
    """The comment's own <li> (the thread is a flat list: replies are not nested inside)."""
    return thread_items(page).filter(has_text=text)


def reply_toggle(comment: Locator) -> Locator:
    return comment.locator("details.reply > summary").filter(has_text="Reply")


def new_comment_form(page: Page) -> Locator:
    return (
        discussion(page).locator("form").filter(has=page.get_by_role("button", name="Post comment"))
    )


def mark_same_page(page: Page) -> None:
    page.wait_for_load_state("load")  # htmx (a deferred script) has taken over the forms
    page.evaluate("window.__samePage = true")


def assert_same_page(page: Page, url: str) -> None:
    assert page.evaluate("window.__samePage") is True, "the page was reloaded"
    assert page.url == url


def expect_htmx_post(page: Page, path_end: str):
    return page.expect_response(
        lambda r: r.request.method == "POST" and r.url.split("?")[0].endswith(path_end)
    )


def assert_htmx_ok(response) -> None:
    assert response.request.headers.get("hx-request") == "true"
    assert response.status == 200, response.status


# ---------------------------------------------------------------- the journey


def test_proposal_from_support_to_moderated_discussion(new_context, seed, console, tmp_path):
    from PIL import Image

    compound = seed.community(unique("Lotus Court"))
    seed_threshold(seed, compound, THRESHOLD)
    author = seed_member(seed, compound, "Zhang Min")
    supporter_1 = seed_member(seed, compound, "Liu Yang")
    supporter_2 = seed_member(seed, compound, "Zhao Lei")
    moderator = seed_member(seed, compound, "Sun Hua", role="moderator")
    title = unique("A lift for Building 3")
    photo = tmp_path / PHOTO
    Image.new("RGB", (48, 32), (200, 90, 40)).save(photo)

    # 1. The author finds the proposals of the compound and makes one, with a photo.
    by_author = new_context().new_page()
    log_in(by_author, author)
    by_author.goto(f"/c/{compound.id}")
    by_author.get_by_role("link", name="Proposals", exact=True).click()
    expect(by_author).to_have_url(re.compile(rf"/c/{compound.id}/proposals$"))
    by_author.get_by_role("link", name="Make a proposal").click()
    expect(by_author).to_have_url(re.compile(rf"/c/{compound.id}/proposals/new$"))
    by_author.get_by_label("Title").fill(title)
    by_author.get_by_label("Category").select_option(label="Facilities")
    by_author.get_by_label(re.compile(r"^What do you propose, and why\?")).fill(BODY)
    by_author.get_by_label("Estimated cost in yuan (optional)").fill("350000")
    by_author.get_by_label(re.compile(r"^Photos")).set_input_files(photo)
    by_author.get_by_role("button", name="Publish").click()

    expect(by_author).to_have_url(re.compile(r"/p/\d+$"))
    proposal_url = by_author.url
    proposal_id = int(proposal_url.rsplit("/", 1)[1])
    expect(
        flash(by_author, "Your proposal is published. Neighbours can now support it.")
    ).to_be_visible()
    expect(by_author.get_by_role("heading", level=1)).to_have_text(title)
    expect(status_badge(by_author)).to_have_text("Collecting support")
    article = by_author.get_by_role("article")
    expect(article).to_contain_text("Facilities")
    expect(article.locator(".user-content strong")).to_have_text("a lift")  # Markdown
    expect(article.locator(".user-content")).not_to_contain_text("**")
    thumbnail = by_author.get_by_role("img", name=f"Photo: {PHOTO}")
    expect(thumbnail).to_be_visible()
    # The thumbnail links to the full photo; both are served (and the thumbnail loads).
    expect(thumbnail).to_have_attribute("src", re.compile(r"^/photos/[^/]+\.png/thumb$"))
    expect(by_author.get_by_role("link").filter(has=thumbnail)).to_have_attribute(
        "href", re.compile(r"^/photos/[^/]+\.png$")
    )
    thumbnail.scroll_into_view_if_needed()  # loading="lazy"
    by_author.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle()
    )
    full = by_author.request.get(
        by_author.get_by_role("link").filter(has=thumbnail).get_attribute("href")
    )
    assert full.ok and full.headers["content-type"] == "image/png", (full.status, full.headers)
    expect(support_box(by_author)).to_contain_text("0 supporters")
    expect(support_box(by_author)).to_contain_text("2 more needed to start the discussion")

    # 2a. Supporter 1, with JavaScript: the support box is swapped in place.
    by_supporter_1 = new_context().new_page()
    log_in(by_supporter_1, supporter_1)
    by_supporter_1.goto(f"/p/{proposal_id}")
    expect(status_badge(by_supporter_1)).to_have_text("Collecting support")
    mark_same_page(by_supporter_1)
    with expect_htmx_post(by_supporter_1, f"/p/{proposal_id}/support") as posted:
        support_box(by_supporter_1).get_by_role("button", name="I support this").click()
    assert_htmx_ok(posted.value)
    box = support_box(by_supporter_1)
    expect(box).to_contain_text("1 supporter")
    expect(box).to_contain_text("1 more needed to start the discussion")
    expect(box).to_contain_text("You support this proposal.")
    expect(box.get_by_role("button", name="Take back my support")).to_be_visible()
    expect(box.get_by_role("button", name="I support this")).to_have_count(0)
    expect(by_supporter_1.locator("#support")).to_have_count(1)  # replaced, not nested
    assert_same_page(by_supporter_1, proposal_url)

    # 2b. Supporter 2, without JavaScript: a plain post and a redirect back.
    by_supporter_2 = new_context(javascript=False).new_page()
    log_in(by_supporter_2, supporter_2)
    by_supporter_2.goto(f"/p/{proposal_id}")
    expect(support_box(by_supporter_2)).to_contain_text("1 supporter")
    support_box(by_supporter_2).get_by_role("button", name="I support this").click()
    expect(by_supporter_2).to_have_url(re.compile(rf"/p/{proposal_id}#support$"))
    expect(support_box(by_supporter_2)).to_contain_text("2 supporters")
    expect(support_box(by_supporter_2)).to_contain_text(
        "Enough support: the proposal is in deliberation."
    )
    expect(support_box(by_supporter_2).get_by_role("button")).to_have_count(0)
    expect(status_badge(by_supporter_2)).to_have_text("In deliberation")

    # 2c. The author sees the new status and is told.
    by_author.reload()
    expect(status_badge(by_author)).to_have_text("In deliberation")
    expect(support_box(by_author)).to_contain_text("2 supporters")
    by_author.locator("header nav").get_by_role("link", name=re.compile(r"^Notifications")).click()
    expect(by_author).to_have_url(re.compile(r"/notifications$"))
    notice = by_author.get_by_role("listitem").filter(
        has_text="Enough support: now in deliberation:"
    )
    expect(notice).to_have_count(1)
    expect(notice).to_contain_text("New")
    notice.get_by_role("link", name=title).click()
    expect(by_author).to_have_url(re.compile(rf"/p/{proposal_id}$"))
    by_author.get_by_role("link", name=f"Proposals in {compound.name}").click()
    card = by_author.get_by_role("listitem").filter(
        has=by_author.get_by_role("heading", name=title)
    )
    expect(card).to_contain_text("In deliberation")
    expect(card).to_contain_text("2 supporters · 0 comments")

    # 3a. Supporter 1 (htmx) comments against it.
    # Still the page loaded before supporting: the swaps never reload it.
    form = new_comment_form(by_supporter_1)
    form.get_by_label("Against", exact=True).check()
    form.get_by_label("Your comment").fill(FIRST_COMMENT)
    with expect_htmx_post(by_supporter_1, f"/p/{proposal_id}/comments") as posted:
        form.get_by_role("button", name="Post comment").click()
    assert_htmx_ok(posted.value)
    first = comment_by_text(by_supporter_1, FIRST_COMMENT)
    expect(first).to_have_class(re.compile(r"(^|\s)depth-0(\s|$)"))
    expect(first).to_contain_text(supporter_1.display_name)
    expect(first.locator(".stance")).to_have_text("Against")
    expect(discussion(by_supporter_1)).to_contain_text("Against: 1")
    # The form is empty again for the next comment (not refilled from the request).
    expect(new_comment_form(by_supporter_1).get_by_label("Your comment")).to_have_value("")
    assert_same_page(by_supporter_1, proposal_url)
    first_id = first.get_attribute("id")
    assert first_id and re.fullmatch(r"comment-\d+", first_id), first_id

    # 3b. The author (htmx) replies in the comment's Reply box.
    by_author.goto(f"/p/{proposal_id}")
    mark_same_page(by_author)
    first = comment_by_text(by_author, FIRST_COMMENT)
    reply_toggle(first).click()
    reply_form = first.locator("details.reply form")
    reply_form.get_by_label("For", exact=True).check()
    reply_form.get_by_label("Your reply").fill(REPLY)
    with expect_htmx_post(by_author, f"/p/{proposal_id}/comments") as posted:
        reply_form.get_by_role("button", name="Reply").click()
    assert_htmx_ok(posted.value)
    expect(thread_items(by_author)).to_have_count(2)
    reply = thread_items(by_author).nth(1)
    expect(reply).to_contain_text(REPLY)
    expect(reply).to_have_class(re.compile(r"(^|\s)depth-1(\s|$)"))
    expect(reply.locator(".stance")).to_have_text("For")
    expect(new_comment_form(by_author).get_by_label("Your comment")).to_have_value("")
    assert_same_page(by_author, proposal_url)

    # 3c. Supporter 2 (no JavaScript) replies to the reply: the third and last level.
    by_supporter_2.goto(f"/p/{proposal_id}")
    reply = comment_by_text(by_supporter_2, REPLY)
    reply_toggle(reply).click()  # <details> opens without JavaScript
    reply_form = reply.locator("details.reply form")
    reply_form.get_by_label("Question", exact=True).check()
    reply_form.get_by_label("Your reply").fill(REPLY_TO_REPLY)
    reply_form.get_by_role("button", name="Reply").click()
    expect(by_supporter_2).to_have_url(re.compile(rf"/p/{proposal_id}#comment-\d+$"))
    third_id = by_supporter_2.url.rsplit("#", 1)[1]
    items = thread_items(by_supporter_2)
    expect(items).to_have_count(3)
    expect(items.nth(0)).to_have_attribute("id", first_id)
    expect(items.nth(0)).to_have_class(re.compile(r"(^|\s)depth-0(\s|$)"))
    expect(items.nth(1)).to_contain_text(REPLY)
    expect(items.nth(1)).to_have_class(re.compile(r"(^|\s)depth-1(\s|$)"))
    third = items.nth(2)
    expect(third).to_have_attribute("id", third_id)
    expect(third).to_contain_text(REPLY_TO_REPLY)
    expect(third).to_contain_text(supporter_2.display_name)
    expect(third).to_have_class(re.compile(r"(^|\s)depth-2(\s|$)"))
    expect(third.locator(".stance")).to_have_text("Question")
    # Replies go three levels deep: the two upper comments offer Reply, the third not.
    expect(reply_toggle(items.nth(0))).to_have_count(1)
    expect(reply_toggle(items.nth(1))).to_have_count(1)
    expect(reply_toggle(third)).to_have_count(0)
    expect(third.get_by_label("Your reply")).to_have_count(0)
    expect(discussion(by_supporter_2)).to_contain_text("Questions: 1")

    # 4a. Supporter 2 reports supporter 1's comment.
    first = comment_by_text(by_supporter_2, FIRST_COMMENT)
    first.get_by_role("link", name="Report", exact=True).click()
    expect(by_supporter_2).to_have_url(
        re.compile(rf"/comments/{first_id.removeprefix('comment-')}/report$")
    )
    expect(by_supporter_2.get_by_role("heading", level=1)).to_have_text("Report a comment")
    by_supporter_2.get_by_label(re.compile(r"^Reason")).fill(REPORT_REASON)
    by_supporter_2.get_by_role("button", name="Send report").click()
    expect(by_supporter_2).to_have_url(re.compile(rf"/p/{proposal_id}#{first_id}$"))
    expect(
        flash(by_supporter_2, "Thank you. The neighborhood committee will look at your report.")
    ).to_be_visible()

    # 4b. The moderator finds the report in the queue, goes to the comment and hides it.
    by_moderator = new_context().new_page()
    log_in(by_moderator, moderator)
    by_moderator.goto(f"/c/{compound.id}")
    by_moderator.get_by_role("link", name="Reports (1)").click()
    expect(by_moderator).to_have_url(re.compile(rf"/c/{compound.id}/moderation$"))
    report = by_moderator.get_by_role("listitem").filter(has_text=REPORT_REASON)
    expect(report).to_have_count(1)
    expect(report).to_contain_text(f"Comment on {title}")
    expect(report).to_contain_text(FIRST_COMMENT)
    expect(report).to_contain_text(f"Reported by {supporter_2.display_name}: {REPORT_REASON}")
    report.get_by_role("link", name=title).click()
    expect(by_moderator).to_have_url(re.compile(rf"/p/{proposal_id}#{first_id}$"))
    first = by_moderator.locator(f"#{first_id}")
    first.locator("details.moderate > summary").filter(has_text="Moderate").click()
    first.get_by_label("Public reason").fill(HIDE_REASON)
    first.get_by_role("button", name="Hide the comment").click()
    expect(by_moderator).to_have_url(re.compile(rf"/p/{proposal_id}#{first_id}$"))
    expect(flash(by_moderator, "Hidden with your public reason.")).to_be_visible()
    expect(by_moderator.locator(f"#{first_id}")).to_contain_text(
        f"Hidden by the neighborhood committee: {HIDE_REASON}"
    )
    expect(  # in the closed "Moderate" box
        by_moderator.locator(f"#{first_id}").get_by_role(
            "button", name="Restore the comment", include_hidden=True
        )
    ).to_have_count(1)
    by_moderator.goto(f"/c/{compound.id}/moderation")
    expect(by_moderator.get_by_text("No reports are waiting.")).to_be_visible()

    # 4c. Everyone sees the tombstone in place of the comment; the replies stay in place.
    by_author.reload()
    items = thread_items(by_author)
    expect(items).to_have_count(3)
    hidden = items.nth(0)
    expect(hidden).to_have_attribute("id", first_id)
    expect(hidden.locator(".tombstone")).to_have_text(
        f"Hidden by the neighborhood committee: {HIDE_REASON}"
    )
    expect(hidden).not_to_contain_text(FIRST_COMMENT)
    expect(reply_toggle(hidden)).to_have_count(0)
    expect(hidden.locator("details.moderate")).to_have_count(0)  # not for residents
    expect(items.nth(1)).to_contain_text(REPLY)
    expect(items.nth(1)).to_have_class(re.compile(r"(^|\s)depth-1(\s|$)"))
    expect(items.nth(2)).to_have_attribute("id", third_id)
    expect(items.nth(2)).to_contain_text(REPLY_TO_REPLY)
    expect(items.nth(2)).to_have_class(re.compile(r"(^|\s)depth-2(\s|$)"))
    expect(discussion(by_author)).to_contain_text("Against: 0")
    expect(by_author.get_by_text(FIRST_COMMENT)).to_have_count(0)

    # 4d. The public moderation log, as the author: who, what, on what, why.
    by_author.goto(f"/c/{compound.id}")
    by_author.get_by_role("link", name="Moderation log").click()
    expect(by_author).to_have_url(re.compile(rf"/c/{compound.id}/moderation-log$"))
    rows = by_author.get_by_role("row").filter(has_text=HIDE_REASON)
    expect(rows).to_have_count(1)
    cells = rows.get_by_role("cell")
    expect(cells.nth(1)).to_have_text(moderator.display_name)
    expect(cells.nth(2)).to_have_text("hid")
    expect(cells.nth(3)).to_have_text(f"a comment on {title}")
    expect(cells.nth(3).get_by_role("link")).to_have_attribute(
        "href", f"/p/{proposal_id}#{first_id}"
    )
    expect(cells.nth(4)).to_have_text(HIDE_REASON)

    # 4e. Supporter 1 was told about the reply and the moderation.
    by_supporter_1.goto("/notifications")
    expect(
        by_supporter_1.get_by_role("listitem").filter(has_text="Someone replied to your comment on")
    ).to_have_count(1)
    expect(
        by_supporter_1.get_by_role("listitem").filter(
            has_text="The neighborhood committee moderated your content on"
        )
    ).to_have_count(1)

    console.assert_clean()
