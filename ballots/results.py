"""Published results as pages, charts, CSV and JSON: a view-model over the signed result
statement, with each question's verdict explained in plain words."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from flask_babel import format_decimal, pgettext
from flask_babel import gettext as _

from ballots.forms import METHOD_LABELS, RULE_LABELS
from ballots.models import Round
from crypto import tally
from web.exports import csv_document

BAR_MAX = 300  # px: the longest bar of a chart


def percent(value: Fraction | None) -> str:
    if value is None:
        return "–"
    return format_decimal(Decimal(value.numerator * 100) / Decimal(value.denominator), "0.0") + "%"


def area(weight: int) -> str:
    return format_decimal(Decimal(weight) / 100, "#,##0.00")


def option_label(question: dict, option_id: str) -> str:
    if question["method"] == "yes_no_abstain":
        return {"yes": _("Yes"), "no": _("No"), "abstain": _("Abstain")}[option_id]
    for option in question["options"]:
        if option["id"] == option_id:
            return option["label"]
    return option_id


@dataclass(frozen=True)
class Row:
    option: str
    label: str
    count: int
    weight: int
    share: str  # of the base
    bar: int  # px
    won: bool


@dataclass(frozen=True)
class QuestionResult:
    key: str
    title: str
    method: str
    rule: str
    passed: bool
    reason: str
    verdict: str
    rows: list[Row]
    participants: int
    participant_weight: int
    blank: int
    weighted: bool


def _needed(strict: bool, needed: Fraction) -> str:
    words = {
        Fraction(1, 2): _("half"),
        Fraction(2, 3): _("two thirds"),
        Fraction(3, 4): _("three quarters"),
    }
    amount = words.get(needed, percent(needed))
    return _("more than %(x)s", x=amount) if strict else _("at least %(x)s", x=amount)


def verdict(question: dict, electorate: dict, result: dict) -> str:
    """E.g. "Passed: 71.2% of the participating area and 68.0% of the participating owners
    agreed; more than half was needed; 80.1% of the area and 76.5% of the owners took part;
    at least two thirds was needed"."""
    figures = tally.rule_figures(question, electorate, result)
    head = _("Passed") if result["passed"] else _("Not passed")
    reason = result["reason"]
    rule = question["rule"]["kind"]
    if reason == "no_votes":
        return _("Not passed: nobody voted on this question.")
    if reason == "tie":
        return _("No decision: two or more options received the most votes.")
    parts = []
    if rule in ("art278_ordinary", "art278_major"):
        if reason != "participation_not_met":
            parts.append(
                _(
                    "%(a)s of the participating area and %(b)s of the participating owners agreed",
                    a=percent(figures.get("support_weight")),
                    b=percent(figures.get("support_owners")),
                )
            )
            parts.append(
                _("%(x)s was needed", x=_needed(figures["needed_strict"], figures["needed"]))
            )
        parts.append(
            _(
                "%(a)s of the area and %(b)s of the owners took part",
                a=percent(figures.get("participation_weight")),
                b=percent(figures.get("participation")),
            )
        )
        parts.append(_("%(x)s was needed", x=_needed(False, Fraction(2, 3))))
    else:
        subject = figures.get("subject")
        if subject is not None and reason != "quorum_not_met":
            base = _("of all voters") if rule == "absolute_majority" else _("of the votes cast")
            parts.append(
                _(
                    "%(share)s %(base)s chose %(option)s",
                    share=percent(figures.get("support")),
                    base=base,
                    option=option_label(question, subject),
                )
            )
            parts.append(
                _("%(x)s was needed", x=_needed(figures["needed_strict"], figures["needed"]))
            )
        parts.append(_("%(x)s of the voters took part", x=percent(figures.get("participation"))))
        if figures.get("participation_needed") is not None:
            parts.append(
                _(
                    "the quorum was %(x)s",
                    x=percent(figures["participation_needed"]),
                )
            )
    # The punctuation is translated too: Chinese joins with "；" and ends with "。".
    details = pgettext("list separator", "; ").join(str(p) for p in parts)
    return _("%(head)s: %(details)s.", head=head, details=details)


def _share(question: dict, option_id: str, count: int, base: int) -> str:
    """An option's share of the votes cast; abstentions are not votes for or against."""
    if question["method"] == "yes_no_abstain" and option_id == "abstain":
        return "–"
    return percent(Fraction(count, base) if base else None)


def question_results(round_: Round, statement: dict) -> list[QuestionResult]:
    manifest = round_.manifest_data
    electorate = manifest["electorate"]
    weighted = electorate["weight"] > 0
    out = []
    for question, result in zip(manifest["questions"], statement["questions"], strict=True):
        if question["method"] == "yes_no_abstain":
            base = result["counts"]["yes"] + result["counts"]["no"]
        else:
            base = result["participants"] - result["blank"]
        top = max(result["counts"].values(), default=0) or 1
        rows = [
            Row(
                option=option["id"],
                label=option_label(question, option["id"]),
                count=result["counts"][option["id"]],
                weight=result["weights"][option["id"]],
                share=_share(question, option["id"], result["counts"][option["id"]], base),
                bar=round(BAR_MAX * result["counts"][option["id"]] / top),
                won=option["id"] in result["winners"],
            )
            for option in question["options"]
        ]
        out.append(
            QuestionResult(
                key=question["id"],
                title=question["title"],
                method=str(METHOD_LABELS[question["method"]]),
                rule=str(RULE_LABELS[question["rule"]["kind"]]),
                passed=result["passed"],
                reason=result["reason"],
                verdict=verdict(question, electorate, result),
                rows=rows,
                participants=result["participants"],
                participant_weight=result["participant_weight"],
                blank=result["blank"],
                weighted=weighted,
            )
        )
    return out


def results_csv(round_: Round, statement: dict) -> str:
    return csv_document(
        ["round", "question", "option", "votes", "area_m2", "winner", "verdict"],
        (
            [
                round_.title,
                result.title,
                row.label,
                row.count,
                str(Decimal(row.weight) / 100),
                "yes" if row.won else "no",
                result.verdict,
            ]
            for result in question_results(round_, statement)
            for row in result.rows
        ),
    )


def results_json(round_: Round, statement: dict, signature: str | None) -> dict:
    return {
        "round": {
            "id": round_.id,
            "title": round_.title,
            "status": round_.status,
            "round_hash": round_.round_hash,
            "round_key": round_.public_key,
        },
        "electorate": round_.manifest_data["electorate"],
        "result": statement,
        "signature": signature,
        "verdicts": {r.key: r.verdict for r in question_results(round_, statement)},
    }
