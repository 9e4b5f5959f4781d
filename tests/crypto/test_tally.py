"""The recount of docs/ballot-format.md sections 5 and 6: worked examples at every bound of
every rule, malformed answers, and property tests against a slow reference written here
with fractions.Fraction."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.tally import (
    METHODS,
    REASONS,
    RULES,
    answer_problem,
    ballot_problem,
    rule_figures,
    tally,
    tally_question,
)

ART278 = ("art278_ordinary", "art278_major")
YES_NO = ["yes", "no", "abstain"]


# --- builders ----------------------------------------------------------------------------


def question(
    method="yes_no_abstain",
    rule="simple_majority",
    quorum=None,
    options=None,
    max_choices=1,
    qid="q1",
):
    if options is None:
        options = YES_NO if method == "yes_no_abstain" else ["a", "b", "c"]
    return {
        "id": qid,
        "title": f"Question {qid}",
        "method": method,
        "max_choices": max_choices,
        "options": [{"id": o, "label": o.title()} for o in options],
        "rule": {"kind": rule, "quorum": quorum},
        "proposal": None,
    }


def electorate(voters, weight=0):
    return {"kind": "owners", "voters": voters, "weight": weight}


def manifest(*questions, voters=100, weight=0):
    return {
        "version": 1,
        "round_id": 1,
        "electorate": electorate(voters, weight),
        "questions": list(questions),
    }


def spread(total, n):
    """n integer weights summing to exactly `total`, as equal as possible."""
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def cast(answer, n, total_weight=0):
    """n ballots giving `answer`, their weights summing to `total_weight`."""
    if n == 0:
        assert total_weight == 0
        return []
    return [(list(answer), w) for w in spread(total_weight, n)]


def owners(yes=(0, 0), no=(0, 0), abstain=(0, 0)):
    """yes/no/abstain ballots given as (heads, total area) pairs."""
    return cast(["yes"], *yes) + cast(["no"], *no) + cast(["abstain"], *abstain)


def outcome(result):
    return result["passed"], result["winners"], result["reason"]


def yes_no(rule, ballots, voters=1000, weight=0, quorum=None):
    return tally_question(question(rule=rule, quorum=quorum), electorate(voters, weight), ballots)


# --- section 5: the published example ----------------------------------------------------


def test_the_example_of_section_5():
    ballots = owners(yes=(73, 610000), no=(20, 160000), abstain=(3, 2400))
    q = question(rule="art278_major")
    e = electorate(120, 1045050)
    result = tally_question(q, e, ballots)
    assert result == {
        "id": "q1",
        "counts": {"abstain": 3, "no": 20, "yes": 73},
        "weights": {"abstain": 2400, "no": 160000, "yes": 610000},
        "participants": 96,
        "participant_weight": 772400,
        "blank": 0,
        "passed": True,
        "winners": ["yes"],
        "reason": "majority",
    }
    assert tally({**manifest(q), "electorate": e}, [({"q1": a}, w) for a, w in ballots]) == [result]
    figures = rule_figures(q, e, result)
    assert figures == {
        "subject": "yes",
        "support": Fraction(73, 93),
        "support_weight": Fraction(610000, 772400),
        "support_owners": Fraction(73, 96),
        "participation": Fraction(96, 120),
        "participation_weight": Fraction(772400, 1045050),
        "needed": Fraction(3, 4),
        "needed_strict": False,
        "participation_needed": Fraction(2, 3),
    }


# --- every method under every rule -------------------------------------------------------


def _landslide(method):
    """10 of 10 voters take part (area 1000 of 1000): 9 for the first option, 1 against."""
    if method == "yes_no_abstain":
        return owners(yes=(9, 900), no=(1, 100)), ["yes"]
    if method == "single":
        return cast(["a"], 9, 900) + cast(["b"], 1, 100), ["a"]
    return cast(["a"], 8, 800) + cast(["a", "b"], 1, 100) + cast(["c"], 1, 100), ["a"]


def _split(method):
    """10 of 10 voters, split evenly between two options: nothing is carried."""
    if method == "yes_no_abstain":
        return owners(yes=(5, 500), no=(5, 500)), "no_majority"
    if method == "single":
        return cast(["a"], 5, 500) + cast(["b"], 5, 500), "tie"
    return cast(["a"], 5, 500) + cast(["b"], 5, 500), "no_majority"


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("method", METHODS)
def test_a_landslide_passes_under_every_rule(method, rule):
    ballots, winners = _landslide(method)
    result = tally_question(question(method, rule, max_choices=2), electorate(10, 1000), ballots)
    assert outcome(result) == (True, winners, "majority")
    assert result["participants"] == 10
    assert result["participant_weight"] == 1000


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("method", METHODS)
def test_an_even_split_passes_under_no_rule(method, rule):
    ballots, reason = _split(method)
    result = tally_question(question(method, rule, max_choices=2), electorate(10, 1000), ballots)
    assert outcome(result) == (False, [], reason)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("method", METHODS)
def test_no_ballots_means_no_votes(method, rule):
    q = question(method, rule, quorum=None if rule in ART278 else [1, 2], max_choices=2)
    result = tally_question(q, electorate(10, 1000), [])
    options = [o["id"] for o in q["options"]]
    assert result == {
        "id": "q1",
        "counts": dict.fromkeys(options, 0),
        "weights": dict.fromkeys(options, 0),
        "participants": 0,
        "participant_weight": 0,
        "blank": 0,
        "passed": False,
        "winners": [],
        "reason": "no_votes",
    }


# --- the bounds of the plain rules -------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "yes", "no", "passed"),
    [
        ("simple_majority", 3, 3, False),  # exactly half is not more than half
        ("simple_majority", 4, 3, True),
        ("simple_majority", 1, 0, True),
        ("simple_majority", 50, 51, False),
        ("two_thirds", 2, 1, True),  # exactly two thirds
        ("two_thirds", 199, 101, False),  # just below
        ("two_thirds", 200, 100, True),
        ("two_thirds", 201, 100, True),
        ("three_quarters", 3, 1, True),  # exactly three quarters
        ("three_quarters", 299, 101, False),  # just below
        ("three_quarters", 300, 100, True),
        ("three_quarters", 2, 1, False),
    ],
)
def test_bounds_of_the_plain_rules(rule, yes, no, passed):
    result = yes_no(rule, owners(yes=(yes, 0), no=(no, 0)))
    assert outcome(result) == (
        (True, ["yes"], "majority") if passed else (False, [], "no_majority")
    )


@pytest.mark.parametrize("rule", ["simple_majority", "two_thirds", "three_quarters"])
def test_abstentions_are_participants_but_not_in_the_base(rule):
    # 3 yes, 1 no: carried under all three rules, however many abstain.
    result = yes_no(rule, owners(yes=(3, 30), no=(1, 10), abstain=(500, 5000)))
    assert result["participants"] == 504
    assert result["participant_weight"] == 5040
    assert result["counts"] == {"yes": 3, "no": 1, "abstain": 500}
    assert outcome(result) == (True, ["yes"], "majority")


@pytest.mark.parametrize("rule", RULES)
def test_only_abstentions_is_no_majority(rule):
    # Base 0 with P > 0, art. 278 participation met: nothing is carried, nothing divides.
    result = yes_no(rule, owners(abstain=(7, 70)), voters=7, weight=70)
    assert result["participants"] == 7
    assert outcome(result) == (False, [], "no_majority")
    result = yes_no(rule, owners(abstain=(7, 70)), voters=7, weight=70, quorum=[1, 1])
    assert outcome(result) == (False, [], "no_majority")
    # With too few of them, the quorum or participation fails first.
    result = yes_no(rule, owners(abstain=(3, 30)), voters=7, weight=70, quorum=[1, 2])
    assert result["reason"] == ("participation_not_met" if rule in ART278 else "quorum_not_met")


@pytest.mark.parametrize("rule", RULES)
def test_only_blank_answers_take_part_and_carry_nothing(rule):
    # Ten of ten owners, the whole area, every answer blank: P = 10, base 0.
    e = electorate(10, 1000)
    for options, reason in ((["a", "b", "c"], "no_majority"), (["a"], "no_majority")):
        q = question("single", rule, options=options)
        result = tally_question(q, e, cast([], 10, 1000))
        assert result == {
            "id": "q1",
            "counts": dict.fromkeys(options, 0),
            "weights": dict.fromkeys(options, 0),
            "participants": 10,
            "participant_weight": 1000,
            "blank": 10,
            "passed": False,
            "winners": [],
            "reason": reason,  # every option has 0 votes: no tie, nothing carried
        }
    q = question("approval", rule, max_choices=2)
    result = tally_question(q, e, cast([], 10, 1000))
    assert (result["participants"], result["participant_weight"], result["blank"]) == (10, 1000, 10)
    assert outcome(result) == (False, [], "no_majority")
    # Too few blank answers: the quorum or art. 278 participation fails first.
    quorum = None if rule in ART278 else [1, 2]
    q = question("approval", rule, quorum=quorum, max_choices=2)
    result = tally_question(q, e, cast([], 4, 400))
    assert result["reason"] == ("participation_not_met" if rule in ART278 else "quorum_not_met")


@pytest.mark.parametrize(
    ("voters", "yes", "passed"),
    [(10, 5, False), (10, 6, True), (11, 6, True), (12, 6, False), (1, 1, True)],
)
def test_absolute_majority_is_counted_against_the_electorate(voters, yes, passed):
    result = yes_no("absolute_majority", owners(yes=(yes, 0)), voters=voters)
    assert result["passed"] is passed
    # Every vote cast was for, so a simple majority would always pass.
    assert yes_no("simple_majority", owners(yes=(yes, 0)), voters=voters)["passed"]


def test_absolute_majority_ignores_no_and_abstain():
    ballots = owners(yes=(6, 0), no=(0, 0), abstain=(4, 0))
    assert yes_no("absolute_majority", ballots, voters=11)["passed"]
    assert not yes_no("absolute_majority", owners(yes=(6, 0)), voters=12)["passed"]


# --- art. 278 ----------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ART278)
@pytest.mark.parametrize(("heads", "passed"), [(20, True), (19, False), (21, True)])
def test_art278_participation_by_heads_at_two_thirds(rule, heads, passed):
    # 30 owners, area 3000; everyone taking part votes yes and they hold 2400 (> 2/3).
    result = yes_no(rule, owners(yes=(heads, 2400)), voters=30, weight=3000)
    expected = (True, ["yes"], "majority") if passed else (False, [], "participation_not_met")
    assert outcome(result) == expected


@pytest.mark.parametrize("rule", ART278)
@pytest.mark.parametrize(("area", "passed"), [(2000, True), (1999, False), (2001, True)])
def test_art278_participation_by_area_at_two_thirds(rule, area, passed):
    # 30 owners, area 3000; 25 owners (> 2/3) take part, all voting yes, holding `area`.
    result = yes_no(rule, owners(yes=(25, area)), voters=30, weight=3000)
    expected = (True, ["yes"], "majority") if passed else (False, [], "participation_not_met")
    assert outcome(result) == expected


@pytest.mark.parametrize("rule", ART278)
def test_art278_participation_counts_abstentions_and_no(rule):
    # 20 of 30 owners and 2000 of 3000 area take part, exactly 2/3 each; all vote yes
    # but the abstentions and the no do not agree.
    ballots = owners(yes=(18, 1800), no=(1, 100), abstain=(1, 100))
    assert outcome(yes_no(rule, ballots, voters=30, weight=3000)) == (True, ["yes"], "majority")


@pytest.mark.parametrize(
    ("yes", "no", "passed"),
    [
        ((15, 1500), (5, 500), True),  # exactly 3/4 of heads and of area
        ((14, 1500), (6, 500), False),  # heads just below 3/4
        ((15, 1499), (5, 501), False),  # area just below 3/4
        ((16, 1501), (4, 499), True),
        ((20, 2000), (0, 0), True),
    ],
)
def test_art278_major_at_three_quarters(yes, no, passed):
    result = yes_no("art278_major", owners(yes=yes, no=no), voters=20, weight=2000)
    assert outcome(result) == (
        (True, ["yes"], "majority") if passed else (False, [], "no_majority")
    )


@pytest.mark.parametrize(
    ("yes", "no", "passed"),
    [
        ((10, 1200), (10, 800), False),  # exactly half of the heads
        ((11, 1200), (9, 800), True),  # just above half of the heads
        ((11, 1000), (9, 1000), False),  # exactly half of the area
        ((11, 1001), (9, 999), True),  # just above half of the area
        ((9, 1500), (11, 500), False),  # just below half of the heads
        ((15, 999), (5, 1001), False),  # just below half of the area
    ],
)
def test_art278_ordinary_at_one_half(yes, no, passed):
    result = yes_no("art278_ordinary", owners(yes=yes, no=no), voters=20, weight=2000)
    assert outcome(result) == (
        (True, ["yes"], "majority") if passed else (False, [], "no_majority")
    )


@pytest.mark.parametrize("rule", ART278)
def test_art278_needs_both_area_and_heads(rule):
    # The large owners are for, the many small ones against: area carries, heads do not.
    big_for = owners(yes=(4, 1900), no=(16, 100))
    # The many small owners are for, the large ones against: heads carry, area does not.
    small_for = owners(yes=(16, 100), no=(4, 1900))
    for ballots in (big_for, small_for):
        result = yes_no(rule, ballots, voters=20, weight=2000)
        assert outcome(result) == (False, [], "no_majority")
        # A plain head count sees only one side of it.
    assert not yes_no("simple_majority", big_for)["passed"]
    assert yes_no("simple_majority", small_for)["passed"]


def test_art278_abstentions_take_part_but_do_not_agree():
    # 20 owners; nobody votes no, but 10 abstain: exactly half agree, which is not more.
    ballots = owners(yes=(10, 1100), abstain=(10, 900))
    result = yes_no("art278_ordinary", ballots, voters=20, weight=2000)
    assert outcome(result) == (False, [], "no_majority")
    # Abstentions are outside the base of the plain rules: there it is 10 to 0.
    assert yes_no("simple_majority", ballots)["passed"]
    # One more owner for, one fewer abstaining: 11 of 20 heads, 1100 of 2000 area.
    ballots = owners(yes=(11, 1100), abstain=(9, 900))
    assert yes_no("art278_ordinary", ballots, voters=20, weight=2000)["passed"]


@pytest.mark.parametrize("method", ["single", "approval"])
def test_art278_blank_answers_take_part_but_do_not_agree(method):
    # As the abstentions above: 10 of 20 owners for a, 10 blank. Exactly half agree.
    q = question(method, "art278_ordinary", max_choices=2)
    e = electorate(20, 2000)
    result = tally_question(q, e, cast(["a"], 10, 1100) + cast([], 10, 900))
    assert (result["participants"], result["participant_weight"], result["blank"]) == (20, 2000, 10)
    assert outcome(result) == (False, [], "no_majority")
    abstaining = yes_no("art278_ordinary", owners(yes=(10, 1100), abstain=(10, 900)), 20, 2000)
    assert outcome(abstaining) == outcome(result)
    # Blank answers are outside the base of the plain rules: there it is 10 of 10.
    plain = question(method, "simple_majority", max_choices=2)
    assert tally_question(plain, e, cast(["a"], 10, 1100) + cast([], 10, 900))["passed"]
    # One more owner for a, one fewer blank: 11 of 20 heads and 1100 of 2000 area.
    result = tally_question(q, e, cast(["a"], 11, 1100) + cast([], 9, 900))
    assert outcome(result) == (True, ["a"], "majority")
    # Area short of half: 11 heads, but only 1000 of 2000.
    result = tally_question(q, e, cast(["a"], 11, 1000) + cast([], 9, 1000))
    assert outcome(result) == (False, [], "no_majority")


@pytest.mark.parametrize("method", ["single", "approval"])
def test_art278_a_blank_answer_can_complete_participation(method):
    q = question(method, "art278_major", max_choices=2)
    e = electorate(30, 3000)
    result = tally_question(q, e, cast(["a"], 19, 2500))
    assert result["reason"] == "participation_not_met"
    result = tally_question(q, e, cast(["a"], 19, 2500) + cast([], 1, 10))
    assert result["participants"] == 20
    assert outcome(result) == (True, ["a"], "majority")  # 19 of 20 heads, 2500 of 2510 area


def test_art278_a_no_vote_can_complete_participation():
    # 19 of 30 owners vote yes: participation fails. The 20th owner votes no and the
    # question passes, because taking part counts whatever the vote.
    ballots = owners(yes=(19, 2500))
    assert yes_no("art278_major", ballots, voters=30, weight=3000)["reason"] == (
        "participation_not_met"
    )
    ballots = owners(yes=(19, 2500), no=(1, 10))
    assert outcome(yes_no("art278_major", ballots, voters=30, weight=3000)) == (
        True,
        ["yes"],
        "majority",
    )


@pytest.mark.parametrize("rule", ART278)
def test_art278_ignores_a_quorum(rule):
    ballots = owners(yes=(20, 2000))
    result = yes_no(rule, ballots, voters=30, weight=3000, quorum=[1, 1])
    assert outcome(result) == (True, ["yes"], "majority")


@pytest.mark.parametrize("rule", ART278)
@pytest.mark.parametrize("method", METHODS)
def test_art278_in_an_electorate_without_area_never_passes(method, rule):
    # EW = 0: participation fails whatever the ballots, even a unanimous full turnout.
    q = question(method, rule, max_choices=2)
    first = "yes" if method == "yes_no_abstain" else "a"
    e = electorate(20)
    result = tally_question(q, e, cast([first], 20))
    assert result["participants"] == 20
    assert outcome(result) == (False, [], "participation_not_met")
    # Positive ballot weights do not help either: the electorate's weight decides.
    result = tally_question(q, e, cast([first], 20, 2000))
    assert outcome(result) == (False, [], "participation_not_met")
    # No counted ballot at all is still no_votes, the first reason.
    assert tally_question(q, e, [])["reason"] == "no_votes"
    # The same ballots in an electorate with area pass.
    assert tally_question(q, electorate(20, 2000), cast([first], 20, 2000))["passed"]


@pytest.mark.parametrize("rule", ART278)
def test_art278_with_single_and_approval(rule):
    e = electorate(20, 2000)
    single = cast(["a"], 16, 1600) + cast(["b"], 4, 400)
    assert outcome(tally_question(question("single", rule), e, single)) == (
        True,
        ["a"],
        "majority",
    )
    # Most heads for b, but b holds too little area; a holds the area but not the heads.
    single = cast(["a"], 8, 1800) + cast(["b"], 12, 200)
    assert outcome(tally_question(question("single", rule), e, single)) == (
        False,
        [],
        "no_majority",
    )
    approval = cast(["a", "b"], 16, 1600) + cast(["c"], 4, 400)
    result = tally_question(question("approval", rule, max_choices=2), e, approval)
    assert outcome(result) == (True, ["a", "b"], "majority")


# --- quorum ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quorum", "voters", "participants", "met"),
    [
        ([1, 2], 10, 5, True),  # exactly half of the electorate
        ([1, 2], 10, 4, False),
        ([1, 2], 11, 5, False),
        ([1, 2], 11, 6, True),
        ([2, 3], 30, 20, True),
        ([2, 3], 30, 19, False),
        ([0, 1], 10, 1, True),
        ([1, 1], 10, 10, True),
        ([1, 1], 10, 9, False),
    ],
)
@pytest.mark.parametrize(
    "rule", ["simple_majority", "absolute_majority", "two_thirds", "three_quarters"]
)
def test_quorum(rule, quorum, voters, participants, met):
    # Everyone taking part votes yes, enough for every rule once the quorum is met
    # (the absolute majority needs more than half of the electorate).
    ballots = owners(yes=(participants, 0))
    result = yes_no(rule, ballots, voters=voters, quorum=quorum)
    if not met:
        assert outcome(result) == (False, [], "quorum_not_met")
    elif rule == "absolute_majority" and 2 * participants <= voters:
        assert outcome(result) == (False, [], "no_majority")
    else:
        assert outcome(result) == (True, ["yes"], "majority")


def test_quorum_counts_abstentions_and_blank_answers():
    q = question("yes_no_abstain", quorum=[1, 2])
    result = tally_question(q, electorate(10), owners(yes=(1, 0), abstain=(4, 0)))
    assert outcome(result) == (True, ["yes"], "majority")
    for method in ("single", "approval"):
        q = question(method, quorum=[1, 2], max_choices=2)
        # 4 votes for a and 3 blank answers: 7 of 10 take part.
        result = tally_question(q, electorate(10), cast(["a"], 4) + cast([], 3))
        assert result["participants"] == 7
        assert result["blank"] == 3
        assert outcome(result) == (True, ["a"], "majority")
        # 2 for a and 3 blank: exactly half of the electorate takes part.
        result = tally_question(q, electorate(10), cast(["a"], 2) + cast([], 3))
        assert outcome(result) == (True, ["a"], "majority")
        # 2 for a and 2 blank: 4 of 10, below the quorum.
        result = tally_question(q, electorate(10), cast(["a"], 2) + cast([], 2))
        assert outcome(result) == (False, [], "quorum_not_met")


def test_reasons_come_in_the_order_of_section_6():
    # A tie and a failed quorum: the quorum is reported.
    q = question("single", quorum=[1, 2])
    result = tally_question(q, electorate(10), cast(["a"], 2) + cast(["b"], 2))
    assert result["reason"] == "quorum_not_met"
    # Only blank answers are not "no votes": the ballots take part. Too few of them fail
    # the quorum; enough of them leave every option at 0: no tie, nothing carried.
    result = tally_question(q, electorate(10), cast([], 4))
    assert outcome(result) == (False, [], "quorum_not_met")
    assert (result["participants"], result["blank"]) == (4, 4)
    result = tally_question(q, electorate(10), cast([], 9))
    assert outcome(result) == (False, [], "no_majority")
    assert (result["participants"], result["blank"]) == (9, 9)
    # No ballot at all: no votes, before the quorum.
    assert tally_question(q, electorate(10), [])["reason"] == "no_votes"
    # No votes before art. 278 participation.
    q = question("single", "art278_major")
    assert tally_question(q, electorate(10, 100), [])["reason"] == "no_votes"
    # Blank answers alone are judged on art. 278 participation.
    result = tally_question(q, electorate(10, 100), cast([], 2, 20))
    assert result["reason"] == "participation_not_met"
    # Participation before a tie.
    result = tally_question(q, electorate(10, 100), cast(["a"], 1, 10) + cast(["b"], 1, 10))
    assert result["reason"] == "participation_not_met"
    # An electorate without area fails participation, before a tie.
    result = tally_question(q, electorate(2), cast(["a"], 1) + cast(["b"], 1))
    assert result["reason"] == "participation_not_met"


# --- single: ties and blanks -------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES)
def test_single_tie_for_the_most_has_no_winner(rule):
    ballots = cast(["a"], 3, 3000) + cast(["b"], 3, 30) + cast(["c"], 1, 10)
    q = question("single", rule)
    result = tally_question(q, electorate(7, 3040), ballots)
    assert outcome(result) == (False, [], "tie")
    assert result["counts"] == {"a": 3, "b": 3, "c": 1}


def test_single_a_tie_below_the_top_is_not_a_tie():
    ballots = cast(["a"], 4) + cast(["b"], 1) + cast(["c"], 1)
    result = tally_question(question("single"), electorate(6), ballots)
    assert outcome(result) == (True, ["a"], "majority")


def test_single_plurality_without_majority():
    ballots = cast(["a"], 3) + cast(["b"], 2) + cast(["c"], 2)
    result = tally_question(question("single"), electorate(7), ballots)
    assert outcome(result) == (False, [], "no_majority")


def test_single_blank_answers_take_part_but_are_outside_the_base():
    ballots = cast(["a"], 2, 20) + cast(["b"], 1, 10) + cast([], 5, 50)
    result = tally_question(question("single"), electorate(8, 80), ballots)
    assert result["participants"] == 8
    assert result["participant_weight"] == 80
    assert result["blank"] == 5
    assert result["counts"] == {"a": 2, "b": 1, "c": 0}
    assert result["weights"] == {"a": 20, "b": 10, "c": 0}
    assert outcome(result) == (True, ["a"], "majority")  # 2 of the base 3, not 2 of 8
    # Exactly two thirds of the base 3: at least two thirds.
    result = tally_question(question("single", "two_thirds"), electorate(8, 80), ballots)
    assert outcome(result) == (True, ["a"], "majority")
    result = tally_question(question("single", "three_quarters"), electorate(8, 80), ballots)
    assert outcome(result) == (False, [], "no_majority")
    # The absolute majority is counted against the electorate, blanks or not.
    result = tally_question(question("single", "absolute_majority"), electorate(3), ballots[:3])
    assert outcome(result) == (True, ["a"], "majority")
    result = tally_question(question("single", "absolute_majority"), electorate(8), ballots)
    assert outcome(result) == (False, [], "no_majority")


# --- approval ----------------------------------------------------------------------------


def test_approval_winners_by_count_then_manifest_order():
    q = question("approval", options=["x", "m", "a", "z"], max_choices=4)
    # Ids sorted in each answer; x, m and a tie on 5 and keep their manifest order.
    ballots = cast(["a", "m", "x", "z"], 4) + cast(["a", "x"], 1) + cast(["m"], 1)
    ballots += cast(["z"], 2)
    result = tally_question(q, electorate(8), ballots)
    assert result["counts"] == {"x": 5, "m": 5, "a": 5, "z": 6}
    assert outcome(result) == (True, ["z", "x", "m", "a"], "majority")


def test_approval_tests_every_option_on_its_own():
    q = question("approval", options=["a", "b", "c"], max_choices=2)
    ballots = cast(["a", "b"], 4) + cast(["a"], 1) + cast(["c"], 2) + cast([], 3)
    result = tally_question(q, electorate(10), ballots)
    assert result["participants"] == 10
    assert result["blank"] == 3
    assert result["counts"] == {"a": 5, "b": 4, "c": 2}
    # The base is the 7 non-blank ballots: 5 of 7 and 4 of 7 are more than half.
    assert outcome(result) == (True, ["a", "b"], "majority")
    # 4 of 7 carries b under a simple majority but not under two thirds.
    q = question("approval", "two_thirds", max_choices=2)
    assert outcome(tally_question(q, electorate(10), ballots)) == (True, ["a"], "majority")
    q = question("approval", "three_quarters", max_choices=2)
    result = tally_question(q, electorate(10), ballots)
    assert outcome(result) == (False, [], "no_majority")


def test_approval_ties_are_fine():
    q = question("approval", max_choices=2)
    result = tally_question(q, electorate(4), cast(["a", "b"], 4))
    assert outcome(result) == (True, ["a", "b"], "majority")


# --- several questions -------------------------------------------------------------------


def test_tally_reports_every_question_in_manifest_order():
    m = manifest(
        question("yes_no_abstain", qid="q2"),
        question("approval", max_choices=2, qid="q1"),
        question("single", "absolute_majority", qid="a"),
        voters=5,
    )
    ballots = [
        ({"q2": ["yes"], "q1": ["a", "b"], "a": ["c"]}, 0),
        ({"q2": ["no"], "q1": [], "a": ["c"]}, 0),
        ({"q2": ["yes"], "q1": ["b"], "a": []}, 0),
    ]
    results = tally(m, iter(ballots))
    assert [r["id"] for r in results] == ["q2", "q1", "a"]
    assert outcome(results[0]) == (True, ["yes"], "majority")
    assert outcome(results[1]) == (True, ["b"], "majority")
    assert results[1]["blank"] == 1
    assert outcome(results[2]) == (False, [], "no_majority")  # 2 of 5 voters
    for q, r in zip(m["questions"], results, strict=True):
        assert tally_question(q, m["electorate"], [(a[q["id"]], w) for a, w in ballots]) == r


def test_tally_of_a_hundred_thousand_ballots_from_a_generator():
    m = manifest(
        question("yes_no_abstain", "art278_major"),
        question("approval", "simple_majority", max_choices=3, options=list("abcde"), qid="q2"),
        voters=120_000,
        weight=12_000_000_000,
    )
    yes_no_answers = (["yes"], ["yes"], ["yes"], ["yes"], ["no"], ["abstain"])
    approvals = (["a"], ["a", "b"], ["a", "c", "e"], [], ["b", "d"])

    def ballots():
        for i in range(100_000):
            yield {"q1": yes_no_answers[i % 6], "q2": approvals[i % 5]}, 100_000 + i % 7

    first, second = tally(m, ballots())
    assert first["participants"] == 100_000
    assert first["counts"]["yes"] == 66_668
    assert sum(first["weights"].values()) == sum(100_000 + i % 7 for i in range(100_000))
    assert outcome(first) == (False, [], "no_majority")  # 2/3 yes, 3/4 needed
    assert second["participants"] == 100_000
    assert second["participant_weight"] == first["participant_weight"]
    assert second["blank"] == 20_000
    assert second["counts"] == {"a": 60_000, "b": 40_000, "c": 20_000, "d": 20_000, "e": 20_000}
    assert outcome(second) == (True, ["a"], "majority")  # 60,000 of 80,000, b exactly half


# --- malformed input ---------------------------------------------------------------------

APPROVAL = question("approval", options=["a", "b", "c", "d"], max_choices=2)


@pytest.mark.parametrize(
    ("q", "answer", "problem"),
    [
        (question(), "yes", "must be a list"),
        (question(), ("yes",), "must be a list"),
        (question(), None, "must be a list"),
        (question(), {"yes": True}, "must be a list"),
        (question(), [1], "must be strings"),
        (question(), [None], "must be strings"),
        (question(), [["yes"]], "must be strings"),
        (question(), ["maybe"], 'unknown option "maybe"'),
        (question(), ["Yes"], 'unknown option "Yes"'),
        (question(), [], "blank answer is not allowed"),
        (question(), ["no", "yes"], "exactly one"),
        (question(), ["yes", "yes"], 'option "yes" chosen more than once'),
        (question("single"), ["a", "b"], "at most one option"),
        (question("single"), ["a", "a"], "more than once"),
        (question("single"), ["x"], 'unknown option "x"'),
        (APPROVAL, ["b", "a"], "must be sorted"),
        (APPROVAL, ["a", "b", "c"], "at most 2 options"),
        (APPROVAL, ["a", "b", "a"], 'option "a" chosen more than once'),
        (APPROVAL, ["a", "e"], 'unknown option "e"'),
        (APPROVAL, ["a", 2], "must be strings"),
    ],
)
def test_answer_problem(q, answer, problem):
    found = answer_problem(q, answer)
    assert found is not None
    assert problem in found


@pytest.mark.parametrize(
    ("q", "answer"),
    [
        (question(), ["yes"]),
        (question(), ["no"]),
        (question(), ["abstain"]),
        (question("single"), []),
        (question("single"), ["c"]),
        (APPROVAL, []),
        (APPROVAL, ["d"]),
        (APPROVAL, ["a", "d"]),
        (question("approval", options=["x", "m"], max_choices=2), ["m", "x"]),
    ],
)
def test_valid_answers(q, answer):
    assert answer_problem(q, answer) is None


BALLOT_MANIFEST = manifest(question(qid="q1"), question("single", qid="q2"))


@pytest.mark.parametrize(
    ("answers", "problem"),
    [
        (None, "must be an object"),
        ([["yes"], ["a"]], "must be an object"),
        ({"q1": ["yes"]}, 'no answer to question "q2"'),
        ({}, 'no answer to question "q1"'),
        ({"q1": ["yes"], "q2": ["a"], "q3": []}, "unknown question 'q3'"),
        ({"q1": ["yes"], "q2": ["a"], 3: []}, "unknown question 3"),
        ({"q1": ["yes"], "q2": "a"}, 'question "q2": the answer must be a list'),
        ({"q1": [], "q2": ["a"]}, 'question "q1": a blank answer'),
        ({"q1": ["yes"], "q2": ["z"]}, 'question "q2": unknown option "z"'),
    ],
)
def test_ballot_problem(answers, problem):
    found = ballot_problem(BALLOT_MANIFEST, answers)
    assert found is not None
    assert problem in found


def test_ballot_problem_accepts_a_valid_ballot():
    assert ballot_problem(BALLOT_MANIFEST, {"q2": [], "q1": ["no"]}) is None


@pytest.mark.parametrize(
    ("ballots", "message"),
    [
        ([({"q1": ["yes"]}, 0)], "ballot 0: no answer to question"),
        ([({"q1": ["yes"], "q2": [], "q3": []}, 0)], "unknown question"),
        ([({"q1": ["yes"], "q2": []}, 0), (["yes"], 0)], "ballot 1: the answers must be"),
        ([({"q1": ["yes"], "q2": ["b", "a"]}, 0)], 'ballot 0: question "q2": option ids must'),
        ([({"q1": ["yes"], "q2": "a"}, 0)], 'ballot 0: question "q2": the answer must be'),
        ([({"q1": [["yes"]], "q2": []}, 0)], "option ids must be strings"),
        ([({"q1": ["yes"], "q2": []}, -1)], "non-negative integer"),
        ([({"q1": ["yes"], "q2": []}, 1.5)], "non-negative integer"),
        ([({"q1": ["yes"], "q2": []}, True)], "non-negative integer"),
        ([({"q1": ["yes"], "q2": []}, "100")], "non-negative integer"),
    ],
)
def test_tally_refuses_malformed_ballots(ballots, message):
    with pytest.raises(ValueError, match=message):
        tally(BALLOT_MANIFEST, ballots)


def test_tally_question_refuses_malformed_answers():
    with pytest.raises(ValueError, match='ballot 1: question "q1": unknown option "x"'):
        tally_question(question("single"), electorate(5), [(["a"], 0), (["x"], 0)])
    with pytest.raises(ValueError, match="blank answer"):
        tally_question(question(), electorate(5), [([], 0)])
    with pytest.raises(ValueError, match="non-negative"):
        tally_question(question(), electorate(5), [(["yes"], None)])


@pytest.mark.parametrize(
    ("q", "message"),
    [
        ({**question(), "method": "ranked"}, "unknown method"),
        ({**question(), "rule": {"kind": "unanimity", "quorum": None}}, "unknown rule"),
        ({**question(), "rule": None}, "unknown rule"),
        (question(options=["yes", "no"]), "exactly yes, no, abstain"),
        (question(options=["yes", "no", "maybe"]), "exactly yes, no, abstain"),
        (question("single", options=["a", "a"]), "unique"),
        (question("single", options=[]), "non-empty list"),
        ({**question("single"), "options": [{"label": "A"}]}, "string id"),
        (question("approval", max_choices=0), "max_choices"),
        ({**question("approval"), "max_choices": None}, "max_choices"),
        (question(quorum=[1, 0]), "quorum"),
        (question(quorum=[3, 2]), "quorum"),
        (question(quorum=[1]), "quorum"),
        (question(quorum=[0.5, 1]), "quorum"),
        ({**question(), "id": ""}, "string id"),
        ("q1", "must be an object"),
    ],
)
def test_malformed_questions_are_refused(q, message):
    with pytest.raises(ValueError, match=message):
        answer_problem(q, ["yes"])
    with pytest.raises(ValueError, match=message):
        tally_question(q, electorate(5), [])


def test_malformed_manifests_and_electorates_are_refused():
    with pytest.raises(ValueError, match="unique"):
        tally(manifest(question(), question()), [])
    with pytest.raises(ValueError, match="list of questions"):
        tally({"electorate": electorate(5)}, [])
    with pytest.raises(ValueError, match="electorate"):
        tally({**manifest(question()), "electorate": None}, [])
    for bad in (electorate(-1), electorate(5, -1), electorate(5, 1.0), {"voters": 5}):
        with pytest.raises(ValueError, match="electorate"):
            tally_question(question(), bad, [])
    with pytest.raises(ValueError, match="unique"):
        ballot_problem(manifest(question(), question()), {"q1": ["yes"]})


# --- rule_figures ------------------------------------------------------------------------


def test_figures_for_an_absolute_majority_are_against_the_electorate():
    q = question(rule="absolute_majority")
    e = electorate(10)
    result = tally_question(q, e, owners(yes=(5, 0), no=(1, 0)))
    figures = rule_figures(q, e, result)
    assert figures["support"] == Fraction(1, 2)
    assert figures["needed"] == Fraction(1, 2)
    assert figures["needed_strict"] is True
    assert figures["participation"] == Fraction(6, 10)
    assert figures["participation_weight"] is None  # EW = 0
    assert figures["participation_needed"] is None
    assert figures["support_weight"] is None
    assert figures["support_owners"] is None


def test_figures_with_a_quorum_and_abstentions():
    q = question(rule="two_thirds", quorum=[1, 3])
    e = electorate(30, 9000)
    result = tally_question(q, e, owners(yes=(8, 800), no=(4, 400), abstain=(3, 300)))
    figures = rule_figures(q, e, result)
    assert figures["subject"] == "yes"
    assert figures["support"] == Fraction(2, 3)
    assert figures["needed"] == Fraction(2, 3)
    assert figures["needed_strict"] is False
    assert figures["participation"] == Fraction(1, 2)
    assert figures["participation_weight"] == Fraction(1500, 9000)
    assert figures["participation_needed"] == Fraction(1, 3)
    assert result["passed"]


def test_figures_subject_for_single_and_approval():
    e = electorate(10)
    q = question("single", "three_quarters")
    result = tally_question(q, e, cast(["b"], 3) + cast(["c"], 3) + cast(["a"], 1))
    figures = rule_figures(q, e, result)
    assert figures["subject"] == "b"  # the first of those sharing the most, in manifest order
    assert figures["support"] == Fraction(3, 7)
    assert figures["needed"] == Fraction(3, 4)
    result = tally_question(q, e, [])
    figures = rule_figures(q, e, result)
    assert figures["subject"] is None
    assert figures["support"] is None
    assert figures["participation"] == 0
    q = question("approval", "art278_ordinary", max_choices=3)
    e = electorate(4, 400)
    result = tally_question(q, e, cast(["a", "b", "c"], 3, 390) + cast(["c"], 1, 10))
    assert result["winners"] == ["c", "a", "b"]
    figures = rule_figures(q, e, result)
    assert figures["subject"] == "c"
    assert figures["support"] == 1
    assert figures["support_weight"] == 1
    assert figures["support_owners"] == 1
    assert figures["participation_needed"] == Fraction(2, 3)


def test_figures_with_blank_answers():
    # single: the support is over the base P − blank; participation over every ballot.
    q = question("single")
    e = electorate(10, 100)
    result = tally_question(q, e, cast(["a"], 2, 20) + cast(["b"], 1, 10) + cast([], 5, 50))
    figures = rule_figures(q, e, result)
    assert figures["subject"] == "a"
    assert figures["support"] == Fraction(2, 3)
    assert figures["participation"] == Fraction(8, 10)
    assert figures["participation_weight"] == Fraction(80, 100)
    # art. 278: the blank answers are in P and PW, which agree less for it.
    q = question("single", "art278_ordinary")
    e = electorate(8, 80)
    result = tally_question(q, e, cast(["a"], 5, 50) + cast([], 3, 30))
    assert outcome(result) == (True, ["a"], "majority")
    figures = rule_figures(q, e, result)
    assert figures["support"] == 1
    assert figures["support_owners"] == Fraction(5, 8)
    assert figures["support_weight"] == Fraction(50, 80)
    assert figures["participation"] == 1
    assert figures["participation_weight"] == 1
    # approval: the base is the non-blank ballots, even when options are chosen together.
    q = question("approval", max_choices=2)
    e = electorate(10)
    result = tally_question(q, e, cast(["a", "b"], 3) + cast(["b"], 1) + cast([], 6))
    assert result["winners"] == ["b", "a"]
    figures = rule_figures(q, e, result)
    assert figures["subject"] == "b"
    assert figures["support"] == 1  # 4 of the 4 non-blank ballots
    assert figures["participation"] == 1


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("method", ["single", "approval"])
def test_figures_when_every_answer_is_blank(method, rule):
    q = question(method, rule, max_choices=2)
    e = electorate(10, 1000)
    figures = rule_figures(q, e, tally_question(q, e, cast([], 8, 800)))
    assert figures["subject"] is None  # no option has a vote
    assert figures["support"] is None
    assert figures["support_weight"] is None
    assert figures["support_owners"] is None
    assert figures["participation"] == Fraction(8, 10)
    assert figures["participation_weight"] == Fraction(800, 1000)


def test_figures_divide_by_zero_as_none():
    q = question(rule="simple_majority")
    e = electorate(0)
    figures = rule_figures(q, e, tally_question(q, e, []))
    assert figures["support"] is None
    assert figures["participation"] is None
    assert figures["participation_weight"] is None
    q = question(rule="art278_major")
    e = electorate(5, 0)
    result = tally_question(q, e, owners(abstain=(5, 0)))
    assert result["reason"] == "participation_not_met"  # EW = 0
    figures = rule_figures(q, e, result)
    assert figures["support"] is None  # base = yes + no = 0
    assert figures["support_owners"] == 0
    assert figures["support_weight"] is None  # PW = 0
    assert figures["participation_weight"] is None  # EW = 0
    assert figures["participation_needed"] == Fraction(2, 3)
    # Ballots with weight in an electorate without area: only EW divides by zero.
    result = tally_question(q, e, owners(yes=(5, 50)))
    assert result["reason"] == "participation_not_met"
    figures = rule_figures(q, e, result)
    assert figures["support_weight"] == 1
    assert figures["participation_weight"] is None


# --- the slow reference ------------------------------------------------------------------


def reference(q, e, ballots):
    """Section 6 read literally, ballot by ballot, with Fractions. Every counted ballot takes
    part (P, PW), a blank answer included; the blank answers (B) are counted apart and are
    outside the base of single and approval. With a base of 0 nothing is carried; art. 278
    participation needs an electorate with area; otherwise a share is only taken of a
    positive whole, except E, where a share of nothing (E = 0, which a consistent round
    never has while ballots are counted) is "more than" a bound exactly when the numerator
    is positive and always "at least" it, as the cross-multiplied inequalities say."""
    options = [o["id"] for o in q["options"]]
    counts = dict.fromkeys(options, 0)
    weights = dict.fromkeys(options, 0)
    p = pw = blank = 0
    for answer, weight in ballots:
        p += 1
        pw += weight
        if not answer:
            blank += 1
        for o in answer:
            counts[o] += 1
            weights[o] += weight
    voters, area = e["voters"], e["weight"]
    kind, quorum = q["rule"]["kind"], q["rule"]["quorum"]
    base = counts["yes"] + counts["no"] if q["method"] == "yes_no_abstain" else p - blank

    def more_than(part, whole, bound):
        return part > 0 if whole == 0 else Fraction(part, whole) > bound

    def at_least(part, whole, bound):
        return True if whole == 0 else Fraction(part, whole) >= bound

    half, two_thirds, three_quarters = Fraction(1, 2), Fraction(2, 3), Fraction(3, 4)

    def carried(o):
        if base == 0:
            return False
        # Under art. 278, participation (checked first) makes P and PW positive.
        c, w = counts[o], weights[o]
        return {
            "simple_majority": lambda: Fraction(c, base) > half,
            "absolute_majority": lambda: more_than(c, voters, half),
            "two_thirds": lambda: Fraction(c, base) >= two_thirds,
            "three_quarters": lambda: Fraction(c, base) >= three_quarters,
            "art278_ordinary": lambda: Fraction(w, pw) > half and Fraction(c, p) > half,
            "art278_major": lambda: (
                Fraction(w, pw) >= three_quarters and Fraction(c, p) >= three_quarters
            ),
        }[kind]()

    winners = []
    top = max(counts.values())
    if p == 0:
        reason = "no_votes"
    elif kind in ART278 and not (
        area > 0 and Fraction(pw, area) >= two_thirds and at_least(p, voters, two_thirds)
    ):
        reason = "participation_not_met"
    elif kind not in ART278 and quorum and not at_least(p, voters, Fraction(*quorum)):
        reason = "quorum_not_met"
    elif q["method"] == "single" and top > 0 and list(counts.values()).count(top) > 1:
        reason = "tie"
    else:
        if q["method"] == "yes_no_abstain":
            winners = ["yes"] if carried("yes") else []
        elif q["method"] == "single":
            leader = next(o for o in options if counts[o] == top)
            winners = [leader] if carried(leader) else []
        else:
            ranked = sorted(options, key=lambda o: (-counts[o], options.index(o)))
            winners = [o for o in ranked if carried(o)]
        reason = "majority" if winners else "no_majority"
    return {
        "id": q["id"],
        "counts": counts,
        "weights": weights,
        "participants": p,
        "participant_weight": pw,
        "blank": blank,
        "passed": bool(winners),
        "winners": winners,
        "reason": reason,
    }


# --- property tests ----------------------------------------------------------------------

SMALL_WEIGHTS = st.integers(0, 6) | st.integers(0, 500)


@st.composite
def questions(draw, methods=METHODS, rules=RULES, qid="q1"):
    method = draw(st.sampled_from(methods))
    rule = draw(st.sampled_from(rules))
    quorum = draw(
        st.none()
        | st.tuples(st.integers(0, 4), st.integers(1, 4)).filter(lambda t: t[0] <= t[1]).map(list)
    )
    if method == "yes_no_abstain":
        options = draw(st.permutations(YES_NO))
    else:
        options = draw(st.permutations(["a", "b", "c", "d"]))[: draw(st.integers(1, 4))]
    max_choices = draw(st.integers(1, len(options))) if method == "approval" else 1
    return question(method, rule, quorum, list(options), max_choices, qid)


def answers(q):
    options = [o["id"] for o in q["options"]]
    if q["method"] == "yes_no_abstain":
        return st.sampled_from([["yes"], ["no"], ["abstain"]])
    if q["method"] == "single":
        return st.sampled_from([[]] + [[o] for o in options])
    return st.sets(st.sampled_from(options), max_size=q["max_choices"]).map(sorted)


@st.composite
def scenarios(draw, methods=METHODS, rules=RULES, spare_voters=0, spare_weight=0):
    """A question, an electorate and valid ballots; the electorate is at least as large as
    the ballots plus `spare_voters` and `spare_weight`."""
    q = draw(questions(methods, rules))
    weighted = draw(st.booleans())
    ballots = draw(
        st.lists(st.tuples(answers(q), SMALL_WEIGHTS if weighted else st.just(0)), max_size=30)
    )
    voters = len(ballots) + spare_voters + draw(st.integers(0, 15))
    area = sum(w for _, w in ballots) + spare_weight + draw(st.integers(0, 600)) if weighted else 0
    return q, electorate(voters, area), ballots


@given(scenarios())
def test_matches_the_reference(scenario):
    q, e, ballots = scenario
    assert tally_question(q, e, ballots) == reference(q, e, ballots)


@given(scenarios())
def test_result_shape_and_sums(scenario):
    q, e, ballots = scenario
    result = tally_question(q, e, ballots)
    options = [o["id"] for o in q["options"]]
    assert list(result["counts"]) == options
    assert list(result["weights"]) == options
    assert result["participants"] == len(ballots)
    assert result["participant_weight"] == sum(w for _, w in ballots)
    assert result["blank"] == sum(1 for a, _ in ballots if not a)
    if q["method"] == "yes_no_abstain":
        assert result["blank"] == 0
    if q["method"] == "approval":
        assert sum(result["counts"].values()) == sum(len(a) for a, _ in ballots)
    else:
        assert sum(result["counts"].values()) == result["participants"] - result["blank"]
        assert sum(result["weights"].values()) == sum(w for a, w in ballots if a)
    assert result["reason"] in REASONS
    assert result["passed"] == bool(result["winners"]) == (result["reason"] == "majority")
    assert set(result["winners"]) <= set(options)
    assert len(set(result["winners"])) == len(result["winners"])
    if q["method"] != "approval":
        assert len(result["winners"]) <= 1
    if q["method"] == "yes_no_abstain":
        assert result["winners"] in ([], ["yes"])


@given(scenarios(), st.randoms(use_true_random=False))
def test_ballot_order_does_not_matter(scenario, rng):
    q, e, ballots = scenario
    shuffled = list(ballots)
    rng.shuffle(shuffled)
    assert tally_question(q, e, shuffled) == tally_question(q, e, ballots)


@given(scenarios(), st.integers(2, 1000))
def test_scaling_every_area_changes_nothing(scenario, k):
    q, e, ballots = scenario
    scaled = tally_question(
        q, electorate(e["voters"], k * e["weight"]), [(a, k * w) for a, w in ballots]
    )
    assert outcome(scaled) == outcome(tally_question(q, e, ballots))


@given(scenarios(["yes_no_abstain"], spare_voters=1, spare_weight=500), SMALL_WEIGHTS)
def test_one_more_yes_never_fails_a_passed_question(scenario, weight):
    # True of every rule, art. 278 and quorums included, in a fixed electorate: the yes
    # raises participation and the share for at least as much as the base.
    q, e, ballots = scenario
    if e["weight"] == 0:
        weight = 0
    before = tally_question(q, e, ballots)
    after = tally_question(q, e, [*ballots, (["yes"], weight)])
    assert after["passed"] or not before["passed"]


@given(
    scenarios(
        ["yes_no_abstain"],
        ["simple_majority", "absolute_majority", "two_thirds", "three_quarters"],
        spare_voters=1,
        spare_weight=500,
    ),
    SMALL_WEIGHTS,
)
def test_one_more_abstention_never_fails_a_passed_question(scenario, weight):
    # Not true under art. 278, where an abstention takes part without agreeing.
    q, e, ballots = scenario
    before = tally_question(q, e, ballots)
    after = tally_question(q, e, [*ballots, (["abstain"], weight if e["weight"] else 0)])
    assert after["passed"] or not before["passed"]


@given(
    scenarios(
        ["yes_no_abstain", "single"],
        ["simple_majority", "absolute_majority", "two_thirds", "three_quarters"],
        spare_voters=1,
    ),
    st.data(),
)
def test_without_a_quorum_a_vote_against_never_passes_a_failed_question(scenario, data):
    # With a quorum, or under art. 278, a vote against can complete the turnout.
    q, e, ballots = scenario
    q = {**q, "rule": {**q["rule"], "quorum": None}}
    before = tally_question(q, e, ballots)
    if q["method"] == "yes_no_abstain":
        against = ["no"]
    elif before["passed"] or len(q["options"]) == 1:
        return
    else:
        leaders = {o for o, c in before["counts"].items() if c == max(before["counts"].values())}
        others = [o["id"] for o in q["options"] if o["id"] not in leaders]
        if not others:
            return
        against = [data.draw(st.sampled_from(others))]
    after = tally_question(q, e, [*ballots, (against, 0)])
    assert before["passed"] or not after["passed"]


@given(scenarios(["yes_no_abstain"]), st.booleans())
def test_a_blank_answer_counts_like_an_abstention(scenario, yes_first):
    # The same ballots as a single question over yes and no, each abstention made blank:
    # the same participants, the same base, and yes wins exactly when it passes above.
    q, e, ballots = scenario
    single = question("single", q["rule"]["kind"], q["rule"]["quorum"], ["yes", "no"])
    if not yes_first:
        single = question("single", q["rule"]["kind"], q["rule"]["quorum"], ["no", "yes"])
    blanked = [([] if a == ["abstain"] else a, w) for a, w in ballots]
    before, after = tally_question(q, e, ballots), tally_question(single, e, blanked)
    for key in ("participants", "participant_weight"):
        assert after[key] == before[key]
    assert after["blank"] == before["counts"]["abstain"]
    assert after["weights"]["yes"] == before["weights"]["yes"]
    assert before["passed"] == (after["winners"] == ["yes"])
    if before["reason"] in ("no_votes", "participation_not_met", "quorum_not_met"):
        assert after["reason"] == before["reason"]


@given(
    scenarios(
        ["single", "approval"],
        ["simple_majority", "absolute_majority", "two_thirds", "three_quarters"],
        spare_voters=5,
    ),
    st.lists(SMALL_WEIGHTS, min_size=1, max_size=5),
)
def test_blank_answers_change_nothing_under_the_plain_rules_but_the_quorum(scenario, extra):
    # Blank answers take part (a quorum may be met by them) but are outside every base.
    q, e, ballots = scenario
    if e["weight"] == 0:
        extra = [0] * len(extra)
    before = tally_question(q, e, ballots)
    after = tally_question(q, e, [*ballots, *(([], w) for w in extra)])
    assert after["participants"] == before["participants"] + len(extra)
    assert after["blank"] == before["blank"] + len(extra)
    assert after["counts"] == before["counts"]
    assert after["passed"] or not before["passed"]
    if before["passed"] or q["rule"]["quorum"] is None:
        assert outcome(after)[:2] == outcome(before)[:2]


@given(scenarios(), st.booleans())
def test_without_a_base_nothing_passes(scenario, to_blank):
    # Every answer made blank (abstain for yes_no_abstain): P > 0, base 0.
    q, e, ballots = scenario
    if q["method"] == "yes_no_abstain":
        ballots = [(["abstain"], w) for _, w in ballots]
    elif to_blank:
        ballots = [([], w) for _, w in ballots]
    else:
        return
    result = tally_question(q, e, ballots)
    assert result == reference(q, e, ballots)
    assert not result["passed"]
    assert (result["reason"] == "no_votes") == (not ballots)
    if ballots:
        assert result["reason"] in ("participation_not_met", "quorum_not_met", "tie", "no_majority")
        assert result["reason"] != "tie" or len(q["options"]) > 1
    figures = rule_figures(q, e, result)
    if q["rule"]["kind"] == "absolute_majority":
        assert figures["support"] in (None, 0)  # c(subject) / E, and c(subject) is 0
    else:
        assert figures["support"] is None  # a share of a base of 0


@given(scenarios(rules=ART278))
def test_art278_never_passes_without_area(scenario):
    q, e, ballots = scenario
    result = tally_question(q, electorate(e["voters"], 0), ballots)
    assert not result["passed"]
    assert result["reason"] == ("participation_not_met" if ballots else "no_votes")


@given(scenarios())
def test_figures_never_divide_by_zero(scenario):
    q, e, ballots = scenario
    result = tally_question(q, e, ballots)
    figures = rule_figures(q, e, result)
    art278 = q["rule"]["kind"] in ART278
    counts, p = result["counts"], result["participants"]
    base = counts["yes"] + counts["no"] if q["method"] == "yes_no_abstain" else p - result["blank"]
    assert (figures["participation"] is None) == (e["voters"] == 0)
    assert (figures["participation_weight"] is None) == (e["weight"] == 0)
    subject = figures["subject"]
    if subject is None:
        assert q["method"] != "yes_no_abstain" and not any(counts.values())
        assert figures["support"] is figures["support_owners"] is figures["support_weight"]
        assert figures["support"] is None
        return
    if q["rule"]["kind"] == "absolute_majority":
        voters = e["voters"]
        assert figures["support"] == (Fraction(counts[subject], voters) if voters else None)
    else:
        assert figures["support"] == (Fraction(counts[subject], base) if base else None)
    if art278:
        assert figures["support_owners"] == (Fraction(counts[subject], p) if p else None)
        pw = result["participant_weight"]
        w = result["weights"][subject]
        assert figures["support_weight"] == (Fraction(w, pw) if pw else None)
    else:
        assert figures["support_owners"] is figures["support_weight"] is None


@st.composite
def rounds(draw):
    qs = [draw(questions(qid=f"q{i}")) for i in range(draw(st.integers(1, 3)))]
    m = manifest(*qs)
    ballots = draw(
        st.lists(
            st.tuples(st.fixed_dictionaries({q["id"]: answers(q) for q in qs}), SMALL_WEIGHTS),
            max_size=20,
        )
    )
    m["electorate"] = electorate(len(ballots) + draw(st.integers(0, 5)), 20 * 500)
    return m, ballots


@given(rounds())
def test_tally_is_tally_question_per_question(round_):
    m, ballots = round_
    for answers_ in (a for a, _ in ballots):
        assert ballot_problem(m, answers_) is None
    results = tally(m, (b for b in ballots))
    assert [r["id"] for r in results] == [q["id"] for q in m["questions"]]
    for q, result in zip(m["questions"], results, strict=True):
        per_question = [(a[q["id"]], w) for a, w in ballots]
        assert result == tally_question(q, m["electorate"], per_question)
        assert result == reference(q, m["electorate"], per_question)


JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3) | st.sampled_from(list("abcd")),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=2), children)
    ),
    max_leaves=8,
)


@given(questions(), JUNK | st.lists(st.sampled_from(["a", "b", "c", "d", "yes", "no", "abstain"])))
def test_answer_problem_is_total_and_exact(q, answer):
    problem = answer_problem(q, answer)
    assert problem is None or (isinstance(problem, str) and problem)
    options = [o["id"] for o in q["options"]]
    valid = (
        isinstance(answer, list)
        and all(isinstance(a, str) and a in options for a in answer)
        and answer == sorted(set(answer))
        and (
            len(answer) == 1 if q["method"] == "yes_no_abstain" else len(answer) <= q["max_choices"]
        )
    )
    assert (problem is None) == valid
    if valid:
        result = tally_question(q, electorate(1), [(answer, 0)])
        assert (result["participants"], result["blank"]) == (1, 0 if answer else 1)
    else:
        with pytest.raises(ValueError):
            tally_question(q, electorate(1), [(answer, 0)])


def test_random_rounds_against_the_reference():
    # A few larger rounds than hypothesis draws, to exercise bigger numbers.
    rng = random.Random(278)
    for _ in range(40):
        method = rng.choice(METHODS)
        q = question(method, rng.choice(RULES), rng.choice([None, [1, 2], [2, 3]]), max_choices=2)
        pool = {
            "yes_no_abstain": [["yes"], ["no"], ["abstain"]],
            "single": [[], ["a"], ["b"], ["c"]],
            "approval": [[], ["a"], ["b"], ["a", "b"], ["a", "c"], ["b", "c"]],
        }[method]
        ballots = [
            (rng.choice(pool), rng.randrange(5000, 20000)) for _ in range(rng.randrange(300))
        ]
        e = electorate(len(ballots) + rng.randrange(150), sum(w for _, w in ballots) + 10**6)
        assert tally_question(q, e, ballots) == reference(q, e, ballots)
