"""Browsing and searching proposals: a community with the communities inside it, filters by
status and category, three orders, 20 per page, full-text search in Chinese and English,
and SQL-looking input that is only ever matched literally (RELIABILITY.md T38)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deliberation import services
from deliberation.models import Proposal
from tests.deliberation.test_proposals import (
    HX,
    build_compound,
    count,
    page,
    propose,
    require_support,
)


@pytest.fixture
def compound(make_community):
    return build_compound(make_community)


def titles(html: str) -> list[str]:
    """The proposal titles of a list page, in order."""
    return re.findall(r'<h2 class="h3"><a href="/p/\d+">([^<]*)</a></h2>', html)


def listing(client, community, **query) -> str:
    return page(client, f"/c/{community.id}/proposals", query_string=query)


# ---------------------------------------------------------------- what the list holds


def test_list_shows_the_community_and_the_communities_inside_it(
    db, compound, make_community, make_member, login_as
):
    building = make_community("Building 3", kind="building", parent=compound)
    sibling = make_community("Maple Court", parent=compound.parent)
    propose(make_member(compound), compound, title="Compound idea")
    propose(make_member(building), building, title="Building idea")
    propose(make_member(sibling), sibling, title="Sibling idea")
    propose(make_member(compound.parent), compound.parent, title="Parent idea")
    propose(make_member(compound), compound, title="Private draft", publish=False)

    text = listing(login_as(make_member(compound)), compound)
    assert sorted(titles(text)) == ["Building idea", "Compound idea"]
    assert "Building 3" in text  # where a proposal from inside comes from
    assert "2 proposals" in text

    parent_view = listing(login_as(make_member(compound.parent)), compound.parent)
    assert sorted(titles(parent_view)) == [
        "Building idea",
        "Compound idea",
        "Parent idea",
        "Sibling idea",
    ]


def test_the_parent_list_shows_a_member_only_what_they_may_open(
    db, compound, make_community, make_member, login_as
):
    """A member of one compound may read its parent's list, but not a sibling compound's
    proposals: the list must not name what the proposal page would answer 404 for (T27)."""
    sibling = make_community("Maple Court", parent=compound.parent)
    secret = propose(make_member(sibling), sibling, title="Maple Court only")
    propose(make_member(compound.parent), compound.parent, title="Parent idea")
    propose(make_member(compound), compound, title="Compound idea")
    client = login_as(make_member(compound))

    assert client.get(f"/p/{secret.id}").status_code == 404
    text = listing(client, compound.parent)
    assert "Maple Court only" not in text
    assert sorted(titles(text)) == ["Compound idea", "Parent idea"]
    searched = listing(client, compound.parent, q="maple")
    assert "Maple Court only" not in searched


def test_filters_by_status_and_category(db, compound, make_member, login_as):
    require_support(compound, 1)
    supporter = make_member(compound)
    lift = propose(make_member(compound), compound, title="Lift", category="elderly_children")
    services.support(supporter, lift)
    propose(make_member(compound), compound, title="Cameras", category="safety")
    propose(make_member(compound), compound, title="Benches", category="elderly_children")
    db.session.commit()
    require_support(compound, 10)
    client = login_as(make_member(compound))

    assert titles(listing(client, compound, status="deliberation")) == ["Lift"]
    assert sorted(titles(listing(client, compound, status="collecting"))) == [
        "Benches",
        "Cameras",
    ]
    assert sorted(titles(listing(client, compound, category="elderly_children"))) == [
        "Benches",
        "Lift",
    ]
    both = listing(client, compound, status="collecting", category="elderly_children")
    assert titles(both) == ["Benches"]
    assert '<option value="collecting" selected>' in both
    assert client.get(f"/c/{compound.id}/proposals?status=draft").status_code == 400


def test_three_orders_newest_most_supported_most_discussed(db, compound, make_member, login_as):
    require_support(compound, 10)
    old = propose(make_member(compound), compound, title="Old")
    middle = propose(make_member(compound), compound, title="Middle")
    propose(make_member(compound), compound, title="New")
    for _ in range(2):
        services.support(make_member(compound), old)
    services.support(make_member(compound), middle)
    for _ in range(3):
        services.post_comment(make_member(compound), middle, "Talk", "neutral")
    db.session.commit()
    client = login_as(make_member(compound))

    assert titles(listing(client, compound)) == ["New", "Middle", "Old"]
    assert titles(listing(client, compound, sort="newest")) == ["New", "Middle", "Old"]
    assert titles(listing(client, compound, sort="supported")) == ["Old", "Middle", "New"]
    assert titles(listing(client, compound, sort="discussed")) == ["Middle", "New", "Old"]


def test_twenty_proposals_per_page(db, compound, make_member, login_as):
    author = make_member(compound)
    for n in range(25):
        services.submit_proposal(
            author,
            compound,
            services.ProposalDraft(f"Idea {n:02d}", "Words", "other"),
            publish=True,
        )
    db.session.commit()
    client = login_as(make_member(compound))

    first = listing(client, compound, category="other")
    assert len(titles(first)) == 20 and titles(first)[0] == "Idea 24"
    assert "25 proposals" in first and "Page 1 of 2" in first
    assert "page=2" in first and "category=other" in first  # the next page keeps the filter
    second = listing(client, compound, category="other", page="2")
    assert titles(second) == [f"Idea {n:02d}" for n in range(4, -1, -1)]
    assert "Previous page" in second and "Next page" not in second
    assert titles(listing(client, compound, page="99")) == titles(second)  # the last page
    assert titles(listing(client, compound, page="abc")) == titles(first)
    assert titles(listing(client, compound, page="-3")) == titles(first)


# ---------------------------------------------------------------- full-text search


def test_chinese_search_finds_the_word_not_its_characters(db, compound, make_member, login_as):
    author = make_member(compound)
    propose(author, compound, title="3号楼加装电梯", body="老人上下楼很困难。")
    propose(author, compound, title="电动车充电桩与楼梯", body="楼梯间不能充电。")
    propose(author, compound, title="绿化", body="建议在电梯口摆放绿植。")
    client = login_as(make_member(compound))

    assert sorted(titles(listing(client, compound, q="电梯"))) == ["3号楼加装电梯", "绿化"]
    assert titles(listing(client, compound, q="加装电梯")) == ["3号楼加装电梯"]
    assert titles(listing(client, compound, q="充电桩")) == ["电动车充电桩与楼梯"]
    assert titles(listing(client, compound, q="电梯 老人")) == ["3号楼加装电梯"]
    assert "No proposals found." in listing(client, compound, q="游泳池")


def test_english_search_ignores_case_and_matches_as_you_type(db, compound, make_member, login_as):
    author = make_member(compound)
    propose(author, compound, title="Elevator for Building 3", body="Older NEIGHBOURS struggle.")
    propose(author, compound, title="Electric scooter chargers", body="Charging in stairwells.")
    client = login_as(make_member(compound))

    for query in ("elevator", "ELEVATOR", "Elevator", "eleva", "neighbours", "ＥＬＥＶＡＴＯＲ"):
        assert titles(listing(client, compound, q=query)) == ["Elevator for Building 3"], query
    assert titles(listing(client, compound, q="charging STAIRWELLS")) == [
        "Electric scooter chargers"
    ]
    assert sorted(titles(listing(client, compound, q="ele"))) == [
        "Electric scooter chargers",
        "Elevator for Building 3",
    ]


def test_search_follows_edits(db, compound, make_member, login_as):
    author = make_member(compound)
    proposal = propose(author, compound, title="Fix the fountain", body="It leaks.")
    services.edit_proposal(
        author, proposal, services.ProposalDraft("Fix the pond", "It is green.", "facilities")
    )
    db.session.commit()
    client = login_as(make_member(compound))
    assert titles(listing(client, compound, q="pond")) == ["Fix the pond"]
    assert titles(listing(client, compound, q="fountain")) == []
    assert titles(listing(client, compound, q="green")) == ["Fix the pond"]


def test_htmx_search_answers_with_the_results_fragment(db, compound, make_member, login_as):
    propose(make_member(compound), compound, title="Bicycle shed")
    client = login_as(make_member(compound))
    headers = {**HX, "HX-Target": "proposal-results"}
    fragment = page(client, f"/c/{compound.id}/proposals?q=bicycle", headers=headers)
    assert "<html" not in fragment and titles(fragment) == ["Bicycle shed"]
    assert '<form method="get"' not in fragment  # the filters are not swapped in again
    full = page(client, f"/c/{compound.id}/proposals?q=bicycle")
    assert "<html" in full and 'id="proposal-results"' in full


# ---------------------------------------------------------------- hostile input (T38)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "' OR 1=1 --"}, []),
        ({"q": '" OR "1"="1'}, []),
        ({"q": "lamp'; DROP TABLE proposals; --"}, []),  # every word must match
        ({"q": "lamp'--"}, ["Repair the lamp"]),
        ({"q": 'lamp* OR title:"x" NEAR(a b) -bench ^'}, []),
        ({"q": "%' OR '%'='"}, []),
        ({"q": "\\x00 \u3000 ----"}, []),
        ({"sort": "id;drop table proposals"}, ["Benches", "Repair the lamp"]),
        ({"sort": "support_count desc"}, ["Benches", "Repair the lamp"]),
        ({"category": "' OR '1'='1"}, []),
        ({"page": "1;drop table proposals"}, ["Benches", "Repair the lamp"]),
        ({"page": "9" * 40}, ["Benches", "Repair the lamp"]),
    ],
)
def test_sql_looking_input_is_matched_literally(
    db, compound, make_member, login_as, query, expected
):
    require_support(compound, 10)
    propose(make_member(compound), compound, title="Repair the lamp")
    propose(make_member(compound), compound, title="Benches", body="Wooden ones.")
    client = login_as(make_member(compound))
    text = listing(client, compound, **query)
    assert sorted(titles(text)) == expected
    assert count(Proposal) == 2


@pytest.mark.parametrize("status", ["nonsense", "draft", "collecting' OR '1'='1", "DELIBERATION"])
def test_unknown_status_is_a_clear_400(db, compound, make_member, login_as, status):
    propose(make_member(compound), compound)
    client = login_as(make_member(compound))
    response = client.get(f"/c/{compound.id}/proposals", query_string={"status": status})
    assert response.status_code == 400
    assert "Unknown status." in response.get_data(as_text=True)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    q=st.text(max_size=60),
    sort=st.text(max_size=20),
    category=st.text(max_size=20),
    page_number=st.text(max_size=12),
)
def test_no_search_input_causes_a_server_error(
    db, compound, make_member, login_as, q, sort, category, page_number
):
    client = _search_client(db, compound, make_member, login_as)
    response = client.get(
        f"/c/{compound.id}/proposals",
        query_string={"q": q, "sort": sort, "category": category, "page": page_number},
    )
    assert response.status_code in (200, 400), (q, sort, category, page_number)


_search_state: dict = {}


def _search_client(db, compound, make_member, login_as):
    """One member and one proposal per test, however many examples hypothesis runs."""
    if _search_state.get("compound") is not compound:
        propose(make_member(compound), compound, title="电梯 Elevator")
        _search_state.update(compound=compound, client=login_as(make_member(compound)))
    return _search_state["client"]
