"""A long discussion is shown a page at a time; counts and the strongest comments still
cover all of it, and links to a comment land on its page."""

from datetime import UTC, datetime, timedelta

import time_machine

from deliberation import services
from deliberation.models import Comment
from tests.conftest import post_form


def test_a_long_discussion_is_paged_with_its_replies(db, make_community, make_member, login_as):
    compound = make_community("Sunny Garden")
    author = make_member(compound, locale="en")
    other = make_member(compound)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        proposal = services.submit_proposal(
            author,
            compound,
            services.ProposalDraft("Benches", "Two benches by the gate.", "facilities"),
            publish=True,
        )
    first = None
    for n in range(30):
        with time_machine.travel(start + timedelta(minutes=n + 1), tick=False):
            comment = services.post_comment(other, proposal, f"Point number {n:02d}", "against")
            first = first or comment
    with time_machine.travel(start + timedelta(hours=2), tick=False):
        reply = services.post_comment(author, proposal, "Answer to the first point", "for", first)
    db.session.commit()
    services.mark_helpful(author, db.session.get(Comment, first.id))
    db.session.commit()

    client = login_as(author)
    page_one = client.get(f"/p/{proposal.id}").get_data(as_text=True)
    assert "Point number 00" in page_one and "Point number 24" in page_one
    assert "Point number 25" not in page_one
    assert "Answer to the first point" in page_one  # replies travel with their comment
    assert "Against: 30" in page_one and "For: 1" in page_one  # counts cover every page
    assert "Page 1 of 2" in page_one and "Later comments" in page_one

    page_two = client.get(f"/p/{proposal.id}?page=2").get_data(as_text=True)
    assert "Point number 25" in page_two and "Point number 29" in page_two
    assert (
        "Point number 00"
        not in page_two.split("Most helpful on each side")[-1].split('class="thread"')[-1]
    )
    assert "Page 2 of 2" in page_two

    assert services.thread_page_of(reply) == 1
    last = db.session.query(Comment).filter_by(body="Point number 29").one()
    assert services.thread_page_of(last) == 2
    assert client.get(f"/p/{proposal.id}?page=999").status_code == 200
    assert client.get(f"/p/{proposal.id}?page=abc").status_code == 200


def test_marking_helpful_without_javascript_returns_to_the_comments_page(
    db, make_community, make_member, login_as
):
    compound = make_community("Sunny Garden")
    author = make_member(compound)
    reader = make_member(compound)
    proposal = services.submit_proposal(
        author,
        compound,
        services.ProposalDraft("Benches", "Two benches by the gate.", "facilities"),
        publish=True,
    )
    comments = [services.post_comment(author, proposal, f"Note {n}", "for") for n in range(27)]
    db.session.commit()
    response = post_form(login_as(reader), f"/comments/{comments[-1].id}/helpful", {})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"?page=2#comment-{comments[-1].id}")
