"""The recount of a voting round: docs/ballot-format.md, sections 5 and 6.

Pure code on plain JSON-like values (dicts, lists, strings, integers), the Python standard
library only, so that a standalone verifier can import it as it is. Every decision is exact
integer arithmetic: fractions are cross-multiplied, "more than" excludes the bound and
"at least" includes it. `fractions.Fraction` appears only in `rule_figures`, which explains
a result in words and decides nothing.

Terms as in section 6, per question: E / EW the electorate's voters and weight (private
area in 0.01 m²), P / PW the participants (every counted ballot, a blank answer included)
and their weight, B the blank answers among them, c(o) / w(o) the count and weight of
option o, and the *base*: c(yes) + c(no) for yes_no_abstain (abstentions are neither for
nor against), P − B for single and approval (blank answers are neither for nor against).

A malformed manifest, question, electorate or ballot makes these functions raise
ValueError; `answer_problem` and `ballot_problem` instead describe what is wrong with an
answer, for the verifier's per-entry report.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

METHODS = ("yes_no_abstain", "single", "approval")
RULES = (
    "simple_majority",
    "absolute_majority",
    "two_thirds",
    "three_quarters",
    "art278_ordinary",
    "art278_major",
)
REASONS = ("no_votes", "participation_not_met", "quorum_not_met", "tie", "majority", "no_majority")

_YES_NO_OPTIONS = ("yes", "no", "abstain")
_ART278 = ("art278_ordinary", "art278_major")

# Each rule's threshold as (numerator, denominator, strict): strict is "more than",
# otherwise "at least". Used only for explanations; the decisions below spell the table out.
_THRESHOLDS = {
    "simple_majority": (1, 2, True),
    "absolute_majority": (1, 2, True),
    "two_thirds": (2, 3, False),
    "three_quarters": (3, 4, False),
    "art278_ordinary": (1, 2, True),
    "art278_major": (3, 4, False),
}


def _is_int(value) -> bool:
    return type(value) is int  # bool is not an integer here


# --- shape checks ------------------------------------------------------------------------


class _Question:
    """A question of the manifest, checked once, with what the count needs."""

    __slots__ = ("id", "method", "options", "known", "max_choices", "kind", "quorum")

    def __init__(self, question) -> None:
        if not isinstance(question, dict):
            raise ValueError("a question must be an object")
        qid = question.get("id")
        if not isinstance(qid, str) or not qid:
            raise ValueError("a question needs a non-empty string id")
        where = f'question "{qid}"'
        method = question.get("method")
        if method not in METHODS:
            raise ValueError(f"{where}: unknown method {method!r}")
        options = question.get("options")
        if not isinstance(options, list) or not options:
            raise ValueError(f"{where}: options must be a non-empty list")
        ids = []
        for option in options:
            oid = option.get("id") if isinstance(option, dict) else None
            if not isinstance(oid, str) or not oid:
                raise ValueError(f"{where}: every option needs a non-empty string id")
            ids.append(oid)
        if len(set(ids)) != len(ids):
            raise ValueError(f"{where}: option ids must be unique")
        if method == "yes_no_abstain" and sorted(ids) != sorted(_YES_NO_OPTIONS):
            raise ValueError(f"{where}: yes_no_abstain options must be exactly yes, no, abstain")
        if method == "approval":
            max_choices = question.get("max_choices")
            if not _is_int(max_choices) or max_choices < 1:
                raise ValueError(f"{where}: max_choices must be a positive integer")
        else:
            max_choices = 1
        rule = question.get("rule")
        if not isinstance(rule, dict) or rule.get("kind") not in RULES:
            kind = rule.get("kind") if isinstance(rule, dict) else rule
            raise ValueError(f"{where}: unknown rule {kind!r}")
        quorum = rule.get("quorum")
        if quorum is not None:
            if (
                not isinstance(quorum, list)
                or len(quorum) != 2
                or not all(_is_int(x) for x in quorum)
                or quorum[1] < 1
                or not 0 <= quorum[0] <= quorum[1]
            ):
                raise ValueError(f"{where}: quorum must be null or [num, den] with 0 <= num <= den")
            quorum = (quorum[0], quorum[1])
        self.id = qid
        self.method = method
        self.options = tuple(ids)
        self.known = frozenset(ids)
        self.max_choices = max_choices
        self.kind = rule["kind"]
        # Section 6: the quorum applies to every rule but art278_*, whose participation
        # requirement takes its place.
        self.quorum = None if self.kind in _ART278 else quorum

    def answer_problem(self, answer) -> str | None:
        if not isinstance(answer, list):
            return "the answer must be a list of option ids"
        for choice in answer:
            if not isinstance(choice, str):
                return "option ids must be strings"
            if choice not in self.known:
                return f'unknown option "{choice}"'
        if len(set(answer)) != len(answer):
            duplicate = next(c for i, c in enumerate(answer) if c in answer[:i])
            return f'option "{duplicate}" chosen more than once'
        if any(answer[i] > answer[i + 1] for i in range(len(answer) - 1)):
            return "option ids must be sorted"
        if self.method == "yes_no_abstain":
            if not answer:
                return "a blank answer is not allowed for yes/no/abstain"
            if len(answer) > 1:
                return "exactly one option must be chosen"
        elif len(answer) > self.max_choices:
            if self.method == "single":
                return "at most one option may be chosen"
            return f"at most {self.max_choices} options may be chosen"
        return None


def _questions(manifest) -> list[_Question]:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("questions"), list):
        raise ValueError("the manifest needs a list of questions")
    questions = [_Question(q) for q in manifest["questions"]]
    if len({q.id for q in questions}) != len(questions):
        raise ValueError("question ids must be unique within the round")
    return questions


def _electorate(electorate) -> tuple[int, int]:
    if not isinstance(electorate, dict):
        raise ValueError("the electorate must be an object")
    voters, weight = electorate.get("voters"), electorate.get("weight")
    if not _is_int(voters) or voters < 0 or not _is_int(weight) or weight < 0:
        raise ValueError("electorate voters and weight must be non-negative integers")
    return voters, weight


def answer_problem(question: dict, answer) -> str | None:
    """None when `answer` (a list of option-id strings) is a valid answer to `question`
    (sorted, distinct, known options; exactly one for yes_no_abstain, at most one for
    single, at most max_choices for approval; [] is a blank answer, allowed except for
    yes_no_abstain); otherwise a short English reason. Raises ValueError when the question
    itself is malformed."""
    return _Question(question).answer_problem(answer)


def ballot_problem(manifest: dict, answers) -> str | None:
    """None when `answers` is an object with exactly one valid answer per manifest question;
    otherwise a short English reason. Raises ValueError when the manifest is malformed."""
    questions = _questions(manifest)
    if not isinstance(answers, dict):
        return "the answers must be an object"
    ids = [q.id for q in questions]
    for key in answers:
        if key not in ids:
            return f"answer to unknown question {key!r}"
    for question in questions:
        if question.id not in answers:
            return f'no answer to question "{question.id}"'
        problem = question.answer_problem(answers[question.id])
        if problem is not None:
            return f'question "{question.id}": {problem}'
    return None


# --- counting ----------------------------------------------------------------------------

# Ballots are first grouped by their exact answer (a tuple of option ids): a round has far
# fewer distinct answers than ballots, so each distinct answer is checked and spread over
# the options once. A group is [heads, weight, position of its first ballot].


def _check_weight(weight, position: int) -> None:
    if not _is_int(weight) or weight < 0:
        raise ValueError(f"ballot {position}: the weight must be a non-negative integer")


def _add(groups: dict, answer, weight: int, position: int, qid: str) -> None:
    if type(answer) is not list:
        raise ValueError(f'ballot {position}: question "{qid}": the answer must be a list')
    key = tuple(answer)
    try:
        group = groups[key]
    except KeyError:
        groups[key] = [1, weight, position]
    except TypeError:  # an unhashable element: certainly not an option id
        raise ValueError(
            f'ballot {position}: question "{qid}": option ids must be strings'
        ) from None
    else:
        group[0] += 1
        group[1] += weight


def _result(question: _Question, electorate: tuple[int, int], groups: dict) -> dict:
    voters, total_weight = electorate
    counts = dict.fromkeys(question.options, 0)
    weights = dict.fromkeys(question.options, 0)
    participants = participant_weight = blank = 0
    for key, (heads, weight, position) in groups.items():
        problem = question.answer_problem(list(key))
        if problem is not None:
            raise ValueError(f'ballot {position}: question "{question.id}": {problem}')
        # Every counted ballot takes part in every question, a blank answer included.
        participants += heads
        participant_weight += weight
        if not key:
            blank += heads
        for option in key:
            counts[option] += heads
            weights[option] += weight

    passed, winners, reason = _decide(
        question, voters, total_weight, counts, weights, participants, participant_weight, blank
    )
    return {
        "id": question.id,
        "counts": counts,
        "weights": weights,
        "participants": participants,
        "participant_weight": participant_weight,
        "blank": blank,
        "passed": passed,
        "winners": winners,
        "reason": reason,
    }


def _base(question: _Question, counts: dict, participants: int, blank: int) -> int:
    if question.method == "yes_no_abstain":
        return counts["yes"] + counts["no"]
    return participants - blank


def _participation(voters: int, total_weight: int, participants: int, weight: int) -> bool:
    """Art. 278: owners holding at least 2/3 of the private area and at least 2/3 of the
    owners took part (EW > 0, 3·PW ≥ 2·EW and 3·P ≥ 2·E). An electorate without area
    (EW = 0) never meets it."""
    return total_weight > 0 and 3 * weight >= 2 * total_weight and 3 * participants >= 2 * voters


def _decide(
    question, voters, total_weight, counts, weights, participants, participant_weight, blank
):
    """(passed, winners, reason) by section 6; `reason` is the first that applies."""
    kind = question.kind
    if participants == 0:
        return False, [], "no_votes"
    if kind in _ART278 and not _participation(
        voters, total_weight, participants, participant_weight
    ):
        return False, [], "participation_not_met"
    if question.quorum is not None:
        num, den = question.quorum
        if den * participants < num * voters:
            return False, [], "quorum_not_met"

    base = _base(question, counts, participants, blank)

    def carried(option: str) -> bool:
        c, w = counts[option], weights[option]
        if base == 0:
            # P > 0 but every answer is blank (or, for yes_no_abstain, abstain): the tested
            # options have c(o) = w(o) = 0, so the table below carries nothing either;
            # said once here, for clarity.
            return False
        if kind == "simple_majority":
            return 2 * c > base
        if kind == "absolute_majority":
            return 2 * c > voters
        if kind == "two_thirds":
            return 3 * c >= 2 * base and base > 0
        if kind == "three_quarters":
            return 4 * c >= 3 * base and base > 0
        # art278_*: participation was checked above. P and PW include the abstentions
        # and blank answers, which take part without agreeing.
        if kind == "art278_ordinary":
            return 2 * w > participant_weight and 2 * c > participants
        return 4 * w >= 3 * participant_weight and 4 * c >= 3 * participants

    if question.method == "yes_no_abstain":
        winners = ["yes"] if carried("yes") else []
    elif question.method == "single":
        top = max(counts.values())
        leaders = [o for o in question.options if counts[o] == top]
        if len(leaders) > 1 and top > 0:
            return False, [], "tie"
        winners = leaders if carried(leaders[0]) else []
    else:
        order = {o: i for i, o in enumerate(question.options)}
        winners = sorted(
            (o for o in question.options if carried(o)), key=lambda o: (-counts[o], order[o])
        )
    return bool(winners), winners, "majority" if winners else "no_majority"


def tally_question(question: dict, electorate: dict, ballots: list[tuple[list[str], int]]) -> dict:
    """The section-5 result of one question. `ballots`: (this question's answer, voter
    weight) for every counted ballot. Returns a dict with the keys id, counts, weights
    (every option, zeros included), participants, participant_weight, blank, passed,
    winners and reason. Raises ValueError for a malformed question, electorate or answer."""
    checked = _Question(question)
    figures = _electorate(electorate)
    groups: dict = {}
    for position, (answer, weight) in enumerate(ballots):
        _check_weight(weight, position)
        _add(groups, answer, weight, position, checked.id)
    return _result(checked, figures, groups)


def tally(manifest: dict, ballots: Iterable[tuple[dict, int]]) -> list[dict]:
    """Recount a round: one section-5 result per manifest question, in manifest order.
    `ballots`: (answers, weight) for every counted ballot, where answers maps each question
    id to its answer. The ballots are iterated once, so a generator will do. Raises
    ValueError for a malformed manifest or ballot (naming the ballot's position)."""
    questions = _questions(manifest)
    electorate = _electorate(manifest.get("electorate"))
    ids = frozenset(q.id for q in questions)
    per_question = [(q.id, {}) for q in questions]
    for position, (answers, weight) in enumerate(ballots):
        _check_weight(weight, position)
        if type(answers) is not dict or answers.keys() != ids:
            problem = ballot_problem(manifest, answers) or "the answers do not match"
            raise ValueError(f"ballot {position}: {problem}")
        for qid, groups in per_question:
            _add(groups, answers[qid], weight, position, qid)
    return [
        _result(q, electorate, groups)
        for q, (_, groups) in zip(questions, per_question, strict=True)
    ]


# --- explanation -------------------------------------------------------------------------


def _fraction(numerator: int, denominator: int) -> Fraction | None:
    return None if denominator == 0 else Fraction(numerator, denominator)


def rule_figures(question: dict, electorate: dict, result: dict) -> dict:
    """The exact fractions behind a result, for explaining it in plain words. Every value is
    a Fraction, or None where it does not apply or would divide by zero:

    - subject: the option the figures are about: "yes" for yes_no_abstain, otherwise the
      first winner, otherwise the option with the most votes (the first in manifest order
      when several share the most); None when no option has a vote.
    - support: c(subject) / base, where base is c(yes) + c(no) for yes_no_abstain and
      P − blank otherwise; for absolute_majority it is c(subject) / E, the fraction the
      rule tests.
    - support_weight: w(subject) / PW and support_owners: c(subject) / P (art278_* only;
      P and PW include blank answers and abstentions).
    - participation: P / E; participation_weight: PW / EW (P and PW: every counted
      ballot).
    - needed: the rule's threshold (1/2, 2/3 or 3/4) and needed_strict: True for "more
      than", False for "at least".
    - participation_needed: 2/3 for art278_*, the quorum for the other rules, or None.
    """
    checked = _Question(question)
    voters, total_weight = _electorate(electorate)
    counts, weights = result["counts"], result["weights"]
    participants, participant_weight = result["participants"], result["participant_weight"]
    kind = checked.kind
    art278 = kind in _ART278

    if checked.method == "yes_no_abstain":
        subject = "yes"
    elif result["winners"]:
        subject = result["winners"][0]
    else:
        top = max(counts[o] for o in checked.options)
        subject = next(o for o in checked.options if counts[o] == top) if top > 0 else None

    support = support_weight = support_owners = None
    if subject is not None:
        c, w = counts[subject], weights[subject]
        if kind == "absolute_majority":
            support = _fraction(c, voters)
        else:
            support = _fraction(c, _base(checked, counts, participants, result["blank"]))
        if art278:
            support_weight = _fraction(w, participant_weight)
            support_owners = _fraction(c, participants)

    num, den, strict = _THRESHOLDS[kind]
    if art278:
        participation_needed = Fraction(2, 3)
    elif checked.quorum is not None:
        participation_needed = Fraction(*checked.quorum)
    else:
        participation_needed = None
    return {
        "subject": subject,
        "support": support,
        "support_weight": support_weight,
        "support_owners": support_owners,
        "participation": _fraction(participants, voters),
        "participation_weight": _fraction(participant_weight, total_weight),
        "needed": Fraction(num, den),
        "needed_strict": strict,
        "participation_needed": participation_needed,
    }
