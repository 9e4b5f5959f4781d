"""Writing, editing, publishing and withdrawing proposals, the committee's decisions on
them, the community's settings, and stored XSS (RELIABILITY.md T36) on the proposal
page, the list and the htmx fragments, as residents and committees experience them.

The helpers at the top (`build_compound`, `propose`, `require_support`, `assert_inert`,
...) are also used by the other test files of this folder."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
import time_machine
from sqlalchemy import func, select

from deliberation import services
from deliberation.models import (
    Comment,
    CustomCategory,
    DeliberationSettings,
    Proposal,
    Revision,
    Support,
)
from tests.conftest import post_form
from web.extensions import db

HX = {"HX-Request": "true"}
LAMP_BODY = "The lamp at **gate 2** has been dark for a month.\n\n- buy a lamp\n- fit it"


# ---------------------------------------------------------------- helpers for this folder


def build_compound(make_community):
    street = make_community("Happiness Street", kind="street")
    community = make_community("Happiness Community", kind="community", parent=street)
    return make_community("Sunny Garden", kind="compound", parent=community)


def propose(
    author,
    community,
    title: str = "Repair the lamp at gate 2",
    body: str = LAMP_BODY,
    category: str = "facilities",
    *,
    publish: bool = True,
    cost=None,
):
    proposal = services.submit_proposal(
        author,
        community,
        services.ProposalDraft(title, body, category, cost),
        publish=publish,
    )
    db.session.commit()
    return proposal


def require_support(community, supporters: int | None = None, percent=None, days: int = 30):
    """The community's threshold, written directly (the settings page has its own tests)."""
    db.session.merge(
        DeliberationSettings(
            community_id=community.id,
            support_threshold=supporters,
            support_percent=None if percent is None else Decimal(str(percent)),
            support_window_days=days,
        )
    )
    db.session.commit()


def fresh(obj):
    """`obj` as the database holds it now (after requests and threads wrote)."""
    db.session.commit()
    db.session.refresh(obj)
    return obj


def count(model, *where) -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def page(client, path: str, status: int = 200, **kwargs) -> str:
    response = client.get(path, **kwargs)
    assert response.status_code == status, (path, response.status_code)
    return response.get_data(as_text=True)


def into_deliberation(proposal, supporter):
    """Enough support for `proposal`: the threshold is one supporter, who supports."""
    require_support(proposal.community, 1)
    services.support(supporter, proposal)
    db.session.commit()
    assert fresh(proposal).status == "deliberation"
    return proposal


# Stored XSS corpus (T36). The bidi override is refused by the forms (see the tests).
XSS = {
    "script": "<script>alert(1)</script>",
    "handler": "<img src=x onerror=alert(1)>",
    "js_link": "[x](javascript:alert(1))",
    "template": "{{7*7}}",
    "htmx": "<a hx-get=/x>",
}
XSS_TITLE = "".join(XSS.values())  # 97 characters: a valid title
XSS_BODY = "\n\n".join(XSS.values()) + "\n\n![p](javascript:alert(2)) <iframe src=//evil>"
BIDI = "\u202e"


class _Markup(HTMLParser):
    """The tags and attributes a browser would build from a page, and script texts."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {name: value or "" for name, value in attrs}))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def assert_inert(html: str, where: str = "") -> None:
    """None of the XSS corpus arrives as markup: no script, event handler, javascript:
    link, hx-* attribute, iframe or bidi override that a browser (or htmx) would act on;
    user content sits in hx-disable containers."""
    parsed = _Markup(html)
    assert not any("alert" in script for script in parsed.scripts), where
    for tag, attrs in parsed.tags:
        assert tag not in ("iframe", "object", "embed", "base"), (where, tag, attrs)
        for name, value in attrs.items():
            assert not name.startswith("on"), (where, tag, attrs)
            assert not value.strip().lower().startswith(("javascript:", "data:")), (where, attrs)
            assert not (name.startswith("hx-") and value == "/x"), (where, tag, attrs)
        if tag == "img":
            assert attrs.get("src") != "x", (where, attrs)
        if "user-content" in attrs.get("class", "").split():
            assert "hx-disable" in attrs, (where, tag, attrs)
    assert BIDI not in html, where


@pytest.fixture
def compound(make_community):
    return build_compound(make_community)


def new_proposal_form(client, community, **fields):
    data = {
        "title": "Repair the lamp at gate 2",
        "body": LAMP_BODY,
        "category": "facilities",
        "estimated_cost": "",
        "action": "publish",
    }
    data.update(fields)
    path = f"/c/{community.id}/proposals/new"
    return post_form(client, path, data, token_from=path)


# ---------------------------------------------------------------- writing and publishing


def test_member_publishes_a_proposal_neighbours_can_read(db, compound, make_member, login_as):
    author = make_member(compound, name="Li Ayi")
    response = new_proposal_form(
        login_as(author), compound, estimated_cost="1,250.5", category="facilities"
    )
    assert response.status_code == 302
    proposal = db.session.scalar(select(Proposal))
    assert response.headers["Location"].endswith(f"/p/{proposal.id}")
    assert (proposal.status, proposal.estimated_cost) == ("collecting", Decimal("1250.50"))
    assert proposal.support_deadline - proposal.published_at == timedelta(days=30)

    text = page(login_as(make_member(compound)), f"/p/{proposal.id}")
    assert "Repair the lamp at gate 2" in text and "by Li Ayi" in text
    assert "<strong>gate 2</strong>" in text and "<li>buy a lamp</li>" in text
    assert "Collecting support" in text and "Facilities" in text and "1,250.50" in text


def test_draft_is_seen_only_by_its_author_until_published(db, compound, make_member, login_as):
    author_client = login_as(make_member(compound))
    assert new_proposal_form(author_client, compound, action="draft").status_code == 302
    draft = db.session.scalar(select(Proposal))
    assert draft.status == "draft" and draft.published_at is None

    neighbour = login_as(make_member(compound))
    assert neighbour.get(f"/p/{draft.id}").status_code == 404
    assert "Repair the lamp" not in page(neighbour, f"/c/{compound.id}/proposals")
    own_list = page(author_client, f"/c/{compound.id}/proposals")
    assert "My drafts (only I can see them)" in own_list and "Repair the lamp" in own_list

    response = post_form(author_client, f"/p/{draft.id}/publish", {}, token_from=f"/p/{draft.id}")
    assert response.status_code == 302
    assert fresh(draft).status == "collecting"
    assert "Repair the lamp" in page(neighbour, f"/p/{draft.id}")


def test_missing_title_shows_the_form_again_with_the_text_kept(db, compound, make_member, login_as):
    response = new_proposal_form(
        login_as(make_member(compound)), compound, title="  ", body="My careful words"
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'name="title"' in text and "My careful words" in text
    assert count(Proposal) == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("category", "custom:999", "Not a valid choice"),
        ("estimated_cost", "about 3000", "The estimated cost must be a number of yuan."),
        ("estimated_cost", "-5", "The estimated cost must be a number of yuan."),
        ("estimated_cost", "NaN", "The estimated cost must be a number of yuan."),
        ("title", "x" * 121, "120"),
    ],
)
def test_bad_fields_are_refused_with_a_message(
    db, compound, make_member, login_as, field, value, message
):
    response = new_proposal_form(login_as(make_member(compound)), compound, **{field: value})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert count(Proposal) == 0


def test_every_edit_is_kept_as_a_visible_revision(db, compound, make_member, login_as):
    author = make_member(compound)
    proposal = propose(author, compound, title="Fix the gate lamp", body="First words")
    client = login_as(author)
    edit = page(client, f"/p/{proposal.id}/edit")
    assert 'value="Fix the gate lamp"' in edit and "First words" in edit

    path = f"/p/{proposal.id}/edit"
    for body in ("Second words", "Third words"):
        response = post_form(
            client,
            path,
            {"title": "Fix the gate lamp", "body": body, "category": "safety", "action": "save"},
            token_from=path,
        )
        assert response.status_code == 302

    assert count(Revision, Revision.proposal_id == proposal.id) == 3
    text = page(login_as(make_member(compound)), f"/p/{proposal.id}")
    assert "History of changes" in text
    assert all(f"Version {n}," in text for n in (1, 2, 3))
    assert text.index("Third words") < text.index("Second words") < text.index("First words")
    assert fresh(proposal).category == "safety"


def test_saving_unchanged_text_adds_no_revision(db, compound, make_member, login_as):
    author = make_member(compound)
    proposal = propose(author, compound, body="Same words")
    path = f"/p/{proposal.id}/edit"
    data = {"title": proposal.title, "body": "Same words", "category": "facilities"}
    assert post_form(login_as(author), path, data, token_from=path).status_code == 302
    assert count(Revision, Revision.proposal_id == proposal.id) == 1
    assert "History of changes" not in page(login_as(author), f"/p/{proposal.id}")


def test_only_the_author_edits(db, compound, make_member, login_as):
    proposal = propose(make_member(compound), compound, title="Original title")
    other = login_as(make_member(compound))
    path = f"/p/{proposal.id}/edit"
    assert other.get(path).status_code == 403
    response = post_form(
        other,
        path,
        {"title": "Hijacked", "body": "x", "category": "other"},
        token_from=f"/p/{proposal.id}",
    )
    assert response.status_code == 403
    assert fresh(proposal).title == "Original title"
    assert count(Revision) == 1


def test_editing_ends_when_the_proposal_reaches_deliberation(db, compound, make_member, login_as):
    author = make_member(compound)
    proposal = into_deliberation(propose(author, compound, body="Before"), make_member(compound))
    client = login_as(author)
    assert f'href="/p/{proposal.id}/edit"' not in page(client, f"/p/{proposal.id}")
    path = f"/p/{proposal.id}/edit"
    response = post_form(
        client,
        path,
        {"title": "Changed late", "body": "After", "category": "facilities"},
        token_from=f"/p/{proposal.id}",
    )
    assert response.status_code == 409
    assert "until support collection ends" in response.get_data(as_text=True)
    assert (fresh(proposal).title, proposal.body) == ("Repair the lamp at gate 2", "Before")


def test_editing_ends_at_the_support_deadline_even_before_the_sweep(
    db, compound, make_member, login_as
):
    author = make_member(compound)
    proposal = propose(author, compound, body="Before")
    with time_machine.travel(proposal.support_deadline + timedelta(minutes=1), tick=False):
        client = login_as(author)
        path = f"/p/{proposal.id}/edit"
        response = post_form(
            client,
            path,
            {"title": "Changed late", "body": "After", "category": "facilities"},
            token_from=f"/p/{proposal.id}",
        )
    assert response.status_code == 409
    assert fresh(proposal).body == "Before"


def test_author_withdraws_with_a_public_reason(db, compound, make_member, login_as):
    author = make_member(compound)
    proposal = propose(author, compound)
    supporter = make_member(compound)
    require_support(compound, 5)
    services.support(supporter, proposal)
    db.session.commit()
    response = post_form(
        login_as(author),
        f"/p/{proposal.id}/withdraw",
        {"reason": "The property company fixed it."},
        token_from=f"/p/{proposal.id}",
    )
    assert response.status_code == 302
    text = page(login_as(supporter), f"/p/{proposal.id}")
    assert "Withdrawn" in text and "The property company fixed it." in text
    assert "I support this" not in text
    again = post_form(
        login_as(author), f"/p/{proposal.id}/withdraw", {}, token_from=f"/p/{proposal.id}"
    )
    assert again.status_code == 409


@pytest.mark.parametrize("reason", [f"Changed {BIDI}dnim", "x" * 501], ids=["bidi", "long"])
def test_a_withdrawal_reason_is_checked_like_every_public_reason(
    db, compound, make_member, login_as, reason
):
    author = make_member(compound)
    proposal = propose(author, compound)
    response = post_form(
        login_as(author), f"/p/{proposal.id}/withdraw", {"reason": reason}, token_from="/"
    )
    assert response.status_code == 400
    assert (fresh(proposal).status, proposal.status_reason) == ("collecting", None)


def test_a_withdrawal_reason_is_shown_as_text(db, compound, make_member, login_as):
    author = make_member(compound)
    proposal = propose(author, compound)
    reason = " ".join(XSS.values())
    response = post_form(
        login_as(author), f"/p/{proposal.id}/withdraw", {"reason": reason}, token_from="/"
    )
    assert response.status_code == 302
    text = page(login_as(make_member(compound)), f"/p/{proposal.id}")
    assert_inert(text, "withdrawn")
    assert "Reason: &lt;script&gt;alert(1)&lt;/script&gt;" in text


# ---------------------------------------------------------------- the committee


def test_committee_schedules_a_proposal_in_deliberation_for_a_vote(
    db, compound, make_member, login_as
):
    committee = login_as(make_member(compound, role="committee"))
    proposal = propose(make_member(compound), compound)
    path = f"/p/{proposal.id}/schedule"
    early = post_form(committee, path, {}, token_from=f"/p/{proposal.id}")
    assert early.status_code == 409
    assert fresh(proposal).status == "collecting"

    into_deliberation(proposal, make_member(compound))
    assert "Schedule for a vote" in page(committee, f"/p/{proposal.id}")
    assert post_form(committee, path, {}, token_from=f"/p/{proposal.id}").status_code == 302
    assert fresh(proposal).status == "scheduled"
    assert "Scheduled for a vote" in page(committee, f"/p/{proposal.id}")
    twice = post_form(committee, path, {}, token_from=f"/p/{proposal.id}")
    assert twice.status_code == 409


def test_committee_closes_a_proposal_with_a_public_reason(db, compound, make_member, login_as):
    committee = login_as(make_member(compound, role="committee"))
    proposal = into_deliberation(propose(make_member(compound), compound), make_member(compound))
    path = f"/p/{proposal.id}/close"
    refused = post_form(committee, path, {"reason": "  "}, token_from=f"/p/{proposal.id}")
    assert refused.status_code == 400
    assert "Please give the reason for closing." in refused.get_data(as_text=True)
    assert fresh(proposal).status == "deliberation"

    reason = "The district already funds new lamps next month."
    assert post_form(committee, path, {"reason": reason}, token_from="/").status_code == 302
    assert (fresh(proposal).status, proposal.status_reason) == ("closed", reason)
    text = page(login_as(make_member(compound)), f"/p/{proposal.id}")
    assert "Closed" in text and reason in text


def test_committee_sets_the_threshold_on_the_settings_page(db, compound, make_member, login_as):
    committee = login_as(make_member(compound, role="committee"))
    path = f"/c/{compound.id}/settings"
    text = page(committee, path)
    # The defaults: 10 % of the verified members within 30 days.
    assert '<input checked id="mode-1" name="mode" required type="radio" value="percent">' in text
    assert 'name="percent" step="any" type="number" value="10.00"' in text
    assert 'name="window_days" required type="number" value="30"' in text

    data = {"mode": "number", "threshold": "12", "percent": "", "window_days": "14"}
    assert post_form(committee, path, data, token_from=path).status_code == 302
    settings = db.session.get(DeliberationSettings, compound.id)
    assert (settings.support_threshold, settings.support_percent) == (12, None)
    assert settings.support_window_days == 14
    assert services.required_support(compound) == 12

    data = {"mode": "percent", "threshold": "", "percent": "25", "window_days": "14"}
    assert post_form(committee, path, data, token_from=path).status_code == 302
    settings = fresh(settings)
    assert (settings.support_threshold, settings.support_percent) == (None, Decimal("25.00"))


@pytest.mark.parametrize(
    "data",
    [
        {"mode": "number", "threshold": "0", "window_days": "30"},
        {"mode": "number", "threshold": "", "window_days": "30"},
        {"mode": "percent", "percent": "150", "window_days": "30"},
        {"mode": "number", "threshold": "5", "window_days": "400"},
        {"mode": "sometimes", "threshold": "5", "window_days": "30"},
    ],
)
def test_settings_refuse_impossible_values(db, compound, make_member, login_as, data):
    committee = login_as(make_member(compound, role="committee"))
    path = f"/c/{compound.id}/settings"
    response = post_form(committee, path, data, token_from=path)
    assert response.status_code == 400
    assert count(DeliberationSettings) == 0


def test_committee_adds_a_category_residents_can_choose(db, compound, make_member, login_as):
    committee = login_as(make_member(compound, role="committee"))
    settings_path = f"/c/{compound.id}/settings"
    assert 'name="cat-name"' in page(committee, settings_path)
    response = post_form(
        committee, f"/c/{compound.id}/categories", {"cat-name": "Parking"}, settings_path
    )
    assert response.status_code == 302
    category = db.session.scalar(select(CustomCategory))
    assert category.name == "Parking"
    again = post_form(
        committee, f"/c/{compound.id}/categories", {"cat-name": "Parking"}, settings_path
    )
    assert again.status_code == 409

    resident = login_as(make_member(compound))
    form = page(resident, f"/c/{compound.id}/proposals/new")
    assert f'value="custom:{category.id}"' in form and "Parking" in form
    assert (
        new_proposal_form(resident, compound, category=f"custom:{category.id}").status_code == 302
    )
    proposal = db.session.scalar(select(Proposal))
    assert "Parking" in page(resident, f"/p/{proposal.id}")


# ---------------------------------------------------------------- stored XSS (T36)


def test_xss_corpus_is_inert_on_the_page_the_list_and_the_fragments(
    db, compound, make_member, login_as
):
    author = make_member(compound, name="<b>Author</b>")
    author_client = login_as(author)
    response = new_proposal_form(author_client, compound, title=XSS_TITLE, body=XSS_BODY)
    assert response.status_code == 302
    proposal = db.session.scalar(select(Proposal))
    assert proposal.title == XSS_TITLE
    draft = services.ProposalDraft(XSS_TITLE, XSS_BODY + "\n\nEdited.", "facilities")
    services.edit_proposal(author, proposal, draft)  # the history shows both versions
    db.session.commit()
    reader = login_as(make_member(compound))
    require_support(compound, 5)
    pid = proposal.id
    comment = post_form(
        reader, f"/p/{pid}/comments", {"stance": "for", "body": XSS_BODY}, f"/p/{pid}"
    )
    assert comment.status_code == 302
    for name, value in XSS.items():
        services.post_comment(author, proposal, f"{name}: {value}", "against")
    db.session.commit()
    first_comment = db.session.scalar(select(Comment).order_by(Comment.id))
    committee = login_as(make_member(compound, role="committee"))
    add = post_form(committee, f"/c/{compound.id}/categories", {"cat-name": XSS["handler"]})
    assert add.status_code == 302

    views = {
        "helpful fragment": post_form(
            author_client, f"/comments/{first_comment.id}/helpful", {}, f"/p/{pid}", headers=HX
        ).get_data(as_text=True),
        "page": page(reader, f"/p/{pid}"),
        "author page": page(author_client, f"/p/{pid}"),
        "edit form": page(author_client, f"/p/{pid}/edit"),
        "list": page(reader, f"/c/{compound.id}/proposals"),
        "results": page(
            reader, f"/c/{compound.id}/proposals", headers={**HX, "HX-Target": "proposal-results"}
        ),
        "search": page(reader, f"/c/{compound.id}/proposals?q=script+alert"),
        "support fragment": post_form(
            reader, f"/p/{pid}/support", {}, f"/p/{pid}", headers=HX
        ).get_data(as_text=True),
        "thread fragment": post_form(
            reader,
            f"/p/{pid}/comments",
            {"stance": "question", "body": XSS["script"]},
            f"/p/{pid}",
            headers=HX,
        ).get_data(as_text=True),
        "settings": page(committee, f"/c/{compound.id}/settings"),
        "new proposal form": page(reader, f"/c/{compound.id}/proposals/new"),
    }
    assert "Most helpful on each side" in views["page"]  # the strongest "for" is shown too
    for name, html in views.items():
        assert_inert(html, name)
    # The words are shown, as text.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in views["page"]
    assert "{{7*7}}" in views["page"] and "{{7*7}}" in views["list"]
    assert "&lt;b&gt;Author&lt;/b&gt;" in views["page"]
    assert XSS_TITLE not in views["page"]  # never raw
    # The rendered Markdown sits in hx-disable containers.
    assert re.search(r'<div class="user-content" hx-disable[^>]*>\s*<p>&lt;script', views["page"])


def test_bidi_override_is_refused_in_titles_bodies_and_comments(
    db, compound, make_member, login_as
):
    client = login_as(make_member(compound))
    for field in ("title", "body"):
        response = new_proposal_form(client, compound, **{field: f"Lamp {BIDI}2 etag"})
        assert response.status_code == 400, field
        assert "invisible or control characters" in response.get_data(as_text=True)
    assert count(Proposal) == 0

    proposal = propose(make_member(compound), compound)
    response = post_form(
        client,
        f"/p/{proposal.id}/comments",
        {"stance": "for", "body": f"Agree {BIDI}txet"},
        f"/p/{proposal.id}",
    )
    assert response.status_code == 400
    assert count(Comment) == 0


def test_markdown_links_and_headings_are_tamed(db, compound, make_member, login_as):
    body = "# Big heading\n\n[site](https://example.org) [bad](javascript:alert(1))"
    proposal = propose(make_member(compound), compound, body=body)
    text = page(login_as(make_member(compound)), f"/p/{proposal.id}")
    assert "<h3>Big heading</h3>" in text
    assert 'href="https://example.org"' in text and 'rel="nofollow noopener ugc"' in text
    assert_inert(text)


def test_support_rows_are_what_the_list_counts(db, compound, make_member, login_as):
    """The list shows the stored count; it equals the Support rows."""
    proposal = propose(make_member(compound), compound)
    require_support(compound, 10)
    for _ in range(3):
        services.support(make_member(compound), proposal)
    db.session.commit()
    text = page(login_as(make_member(compound)), f"/c/{compound.id}/proposals")
    assert "3 supporters" in text
    assert count(Support, Support.proposal_id == proposal.id) == fresh(proposal).support_count == 3
