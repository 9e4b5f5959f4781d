"""Times are stored in UTC and shown in the community's own time zone."""

from datetime import UTC, datetime

import pytest
import time_machine

from deliberation import services


@pytest.mark.parametrize(("zone", "shown"), [("Asia/Shanghai", "9:30"), ("Asia/Urumqi", "7:30")])
def test_comment_time_is_shown_in_the_community_zone(
    db, make_community, make_member, login_as, zone, shown
):
    compound = make_community("Sunny Garden", timezone=zone)
    author = make_member(compound)
    with time_machine.travel(datetime(2026, 1, 5, 1, 30, tzinfo=UTC), tick=False):
        proposal = services.submit_proposal(
            author,
            compound,
            services.ProposalDraft("Benches", "Two benches by the gate.", "facilities"),
            publish=True,
        )
        services.post_comment(author, proposal, "Good idea", "for")
        db.session.commit()
    page = login_as(author).get(f"/p/{proposal.id}", headers={"Accept-Language": "en"})
    assert shown in page.get_data(as_text=True)
