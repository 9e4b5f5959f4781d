"""What residents and moderators do, in a real browser against a live server: register,
ask to join, get approved (with htmx and without JavaScript), switch the language and the
text size. Every test also fails on console errors, CSP violations and server errors."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import unique, unique_email, unique_phone
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

UNIT = "Building 3, Room 502"
LARGE = re.compile(r"(^|\s)large-text(\s|$)")


# ---------------------------------------------------------------- steps


def flash(page: Page, text: str):
    return page.locator("#alerts").get_by_role("status").filter(has_text=text)


def register(page: Page, name: str, contact: str, password: str = PASSWORD):
    page.goto("/")
    page.get_by_role("link", name="Register").click()
    page.get_by_label("Your name (shown to neighbours)").fill(name)
    page.get_by_label("Mobile number or email").fill(contact)
    page.get_by_label("Password (at least 8 characters)").fill(password)
    page.get_by_role("button", name="Create my account").click()
    expect(page).to_have_url(re.compile(r"/communities$"))
    expect(flash(page, f"Welcome, {name}!")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def log_in(page: Page, contact: str, password: str = PASSWORD):
    page.goto("/auth/login")
    page.get_by_label("Mobile number or email").fill(contact)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def log_out(page: Page):
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(flash(page, "You have logged out.")).to_be_visible()
    expect(
        page.locator("header nav").get_by_role("link", name="Log in", exact=True)
    ).to_be_visible()


def ask_to_join(page: Page, community, unit: str = UNIT):
    """From anywhere: the Communities list, the community's page, the join form."""
    page.locator("header nav").get_by_role("link", name="Communities").click()
    expect(page).to_have_url(re.compile(r"/communities$"))
    page.get_by_role("link", name=community.name, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/c/{community.id}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(community.name)
    page.get_by_label("Where you live").fill(unit)
    page.get_by_role("button", name="Ask to join").click()
    expect(page).to_have_url(re.compile(rf"/c/{community.id}$"))
    expect(
        flash(page, "Your request was sent. A committee member will check it soon.")
    ).to_be_visible()
    expect(page.get_by_text("Your request to join is waiting for a decision.")).to_be_visible()
    expect(page.get_by_role("button", name="Ask to join")).to_have_count(0)


def my_communities(page: Page):
    return page.locator("section").filter(
        has=page.get_by_role("heading", name="My communities", exact=True)
    )


# ---------------------------------------------------------------- journeys


@pytest.mark.parametrize("moderator_js", [True, False], ids=["htmx", "no-js"])
def test_resident_registers_asks_to_join_and_is_approved(new_context, seed, console, moderator_js):
    compound = seed.community(unique("Sunny Garden"))
    moderator = seed.member(compound, role="moderator")
    resident_name, resident_phone = unique("Wang Fang"), unique_phone()

    # Resident, in their own browser: register, find the compound, ask to join.
    resident = new_context().new_page()
    register(resident, resident_name, resident_phone)
    ask_to_join(resident, compound)
    assert seed.membership_status(seed.user_by_contact(resident_phone), compound) == "pending"
    resident.goto("/")
    expect(my_communities(resident)).to_contain_text("You have not joined a community yet.")
    waiting = resident.locator("section").filter(has_text="My requests to join")
    expect(waiting).to_contain_text(f"{compound.name} ({UNIT})")
    expect(waiting).to_contain_text("Waiting for a decision")

    # Moderator, in another browser: the queue, approve.
    mod = new_context(javascript=moderator_js).new_page()
    log_in(mod, moderator.contact)
    mod.goto(f"/c/{compound.id}")
    mod.get_by_role("link", name="Requests to join").click()
    expect(mod).to_have_url(re.compile(rf"/c/{compound.id}/requests$"))
    card = mod.locator("#queue > li").filter(
        has=mod.get_by_role("heading", name=resident_name, exact=True)
    )
    expect(card).to_contain_text(f"Says they live at: {UNIT}")
    card_id = card.get_attribute("id")
    assert card_id and card_id.startswith("request-"), card_id
    card.get_by_label("Approve").check()

    if moderator_js:
        mod.wait_for_load_state("load")  # htmx (a deferred script) has taken over the form
        mod.evaluate("window.__samePage = true")
        with mod.expect_response(
            lambda r: r.request.method == "POST" and "/requests/" in r.url
        ) as posted:
            card.get_by_role("button", name="Save decision").click()
        response = posted.value
        assert response.request.headers.get("hx-request") == "true"
        assert response.status == 200
        decided = mod.locator(f"#{card_id}")
        expect(decided).to_contain_text(f"{resident_name} ({UNIT}): approved")
        expect(decided.get_by_role("button", name="Save decision")).to_have_count(0)
        # Swapped in place: no navigation, no flash, the page's state survived.
        assert mod.evaluate("window.__samePage") is True
        expect(mod).to_have_url(re.compile(rf"/c/{compound.id}/requests$"))
        expect(flash(mod, "Decision saved.")).to_have_count(0)
    else:
        card.get_by_role("button", name="Save decision").click()
        expect(mod).to_have_url(re.compile(rf"/c/{compound.id}/requests$"))
        expect(flash(mod, "Decision saved.")).to_be_visible()
        expect(mod.locator(f"#{card_id}")).to_have_count(0)
        expect(mod.get_by_text("No requests are waiting.")).to_be_visible()
    assert seed.membership_status(seed.user_by_contact(resident_phone), compound) == "verified"

    # Resident reloads home: the compound is now theirs.
    resident.reload()
    mine = my_communities(resident)
    expect(mine.get_by_role("link", name=compound.name, exact=True)).to_be_visible()
    expect(mine).to_contain_text(UNIT)
    expect(resident.get_by_text("My requests to join")).to_have_count(0)
    resident.get_by_role("link", name=compound.name, exact=True).click()
    expect(resident.get_by_text("You are a member here as: Resident")).to_be_visible()
    console.assert_clean()


def test_language_switch_is_remembered(new_context, console):
    context = new_context(locale="en-US")
    page = context.new_page()
    html = page.locator("html")
    login_link = page.locator("header nav").get_by_role("link", name="Log in", exact=True)

    page.goto("/communities")
    expect(html).to_have_attribute("lang", "en")
    expect(login_link).to_be_visible()
    expect(page.get_by_role("button", name="English")).to_have_attribute("aria-pressed", "true")

    page.get_by_role("button", name="中文").click()
    expect(page).to_have_url(re.compile(r"/communities$"))  # back where we were
    expect(html).to_have_attribute("lang", "zh-Hans")
    expect(page.get_by_role("button", name="中文")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("header nav").get_by_role("link", name="登录", exact=True)).to_be_visible()
    expect(login_link).to_have_count(0)

    # Another page, then a new tab of the same browser: still Chinese (the cookie).
    page.locator("header nav a[href='/']").first.click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(html).to_have_attribute("lang", "zh-Hans")
    second = context.new_page()
    second.goto("/auth/login")
    expect(second.locator("html")).to_have_attribute("lang", "zh-Hans")

    second.get_by_role("button", name="English").click()
    expect(second).to_have_url(re.compile(r"/auth/login$"))
    expect(second.locator("html")).to_have_attribute("lang", "en")
    expect(second.get_by_role("heading", name="Log in", exact=True)).to_be_visible()
    page.reload()
    expect(html).to_have_attribute("lang", "en")

    # Without a choice, the browser's language decides; Chinese is the default.
    chinese = new_context(locale="zh-CN").new_page()
    chinese.goto("/")
    expect(chinese.locator("html")).to_have_attribute("lang", "zh-Hans")
    console.assert_clean()


def test_pages_work_without_javascript(new_context, seed, console):
    compound = seed.community(unique("Quiet Courtyard"))
    page = new_context(javascript=False).new_page()
    name = unique("Chen Jing")
    contact = unique_email("chen.jing")

    register(page, name, contact)
    log_out(page)

    # A wrong password is refused with a message (status 400), the form keeps the contact.
    console.allow(r"/auth/login: Failed to load resource: .* status of 400")
    page.goto("/auth/login")
    page.get_by_label("Mobile number or email").fill(contact)
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "The phone number/email or the password is wrong."
    )
    expect(page.get_by_label("Mobile number or email")).to_have_value(contact)

    log_in(page, contact)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Hello, {name}")
    ask_to_join(page, compound, unit="Building 7, Room 101")
    page.locator("header nav a[href='/']").first.click()
    expect(page.locator("section").filter(has_text="My requests to join")).to_contain_text(
        "Waiting for a decision"
    )

    # Logged out, the community page offers to log in first and comes back after.
    log_out(page)
    page.goto(f"/c/{compound.id}")
    page.get_by_role("link", name="Log in to join").click()
    page.get_by_label("Mobile number or email").fill(contact)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/c/{compound.id}$"))
    expect(page.get_by_text("Your request to join is waiting for a decision.")).to_be_visible()
    log_out(page)
    console.assert_clean()


def test_large_text_switch(page, console):
    body = page.locator("body")
    page.goto("/communities")
    expect(body).not_to_have_class(LARGE)
    page.wait_for_load_state("load")  # the stylesheet is applied
    normal_size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")

    page.get_by_role("button", name="Large text: off").click()
    expect(page).to_have_url(re.compile(r"/communities$"))
    expect(body).to_have_class(LARGE)
    expect(page.get_by_role("button", name="Large text: on")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.wait_for_load_state("load")  # the stylesheet is applied
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") > normal_size

    page.locator("header nav a[href='/']").first.click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(body).to_have_class(LARGE)
    other = page.context.new_page()
    other.goto("/auth/register")
    expect(other.locator("body")).to_have_class(LARGE)

    other.get_by_role("button", name="Large text: on").click()
    expect(other).to_have_url(re.compile(r"/auth/register$"))
    expect(other.locator("body")).not_to_have_class(LARGE)
    page.reload()
    expect(body).not_to_have_class(LARGE)
    console.assert_clean()


def test_console_watch_catches_csp_violations(page, console):
    """The safety net of the tests above works: an inline event handler slipped into a page
    is refused by the CSP, and the refusal is caught (as is the 404 that triggered it)."""
    page.goto("/")
    # Waiting on the context's own events: the watch's handlers, registered earlier, have
    # run by the time these waits end.
    with (
        page.context.expect_console_message(lambda m: "CSP violation" in m.text),
        page.context.expect_event("response", lambda r: r.url.endswith("/no-such-image")),
    ):
        page.evaluate(
            "document.body.insertAdjacentHTML('beforeend',"
            ' \'<img alt="" src="/no-such-image" onerror="document.title = 1">\')'
        )
    caught = console.unexpected()
    assert any("script-src" in p for p in caught), caught
    assert any("404 for GET" in p and "/no-such-image" in p for p in caught), caught
    assert page.title() != "1"
    console.problems.clear()
    console.assert_clean()
