"""Published results as a resident reads them after the close: counts, turnout, the verdict
in plain words, the chart, the CSV and JSON downloads and the printable notice; and nothing
of it before the close, for anybody."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import timedelta
from decimal import Decimal

import time_machine

from ballots.forms import RULE_LABELS
from tests.ballots.conftest import T0, T1, close, yes_no

AFTER = T1 + timedelta(hours=1)
DURING = T0 + timedelta(hours=2)


def english(label) -> str:
    from flask_babel import force_locale

    with force_locale("en"):
        return str(label)


def at(moment):
    return time_machine.travel(moment, tick=False)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def vote(cast, estate, round_, answers: list):
    """answers[i] for the committee member (i = 0) and the owners 1–4; None: no ballot."""
    people = [estate.committee, *estate.voters]
    for person, answer in zip(people, answers, strict=True):
        if answer is not None:
            cast(person, round_, {"q1": answer if isinstance(answer, list) else [answer]})


def closed_page(login_as, user, round_) -> str:
    with at(AFTER):
        response = login_as(user).get(f"/r/{round_.id}")
    assert response.status_code == 200, response.status_code
    return text(response)


def downloads(login_as, user, round_):
    with at(AFTER):
        client = login_as(user)
        return {
            name: client.get(f"/r/{round_.id}/{name}")
            for name in ("results.csv", "results.json", "notice")
        }


def row(label: str, votes: int, share: str, area: str | None = None) -> re.Pattern:
    """A row of a result table: label (maybe "carried"), votes, share[, area]."""
    cells = rf"<td>{votes}</td><td>{re.escape(share)}</td>"
    if area is not None:
        cells += rf"<td>{re.escape(area)}</td>"
    return re.compile(
        rf'<th scope="row">{re.escape(label)}(?: <span class="badge">carried</span>)?</th>{cells}'
    )


def test_a_simple_majority_passes(db, estate, make_round, cast, login_as):
    round_ = make_round()
    vote(cast, estate, round_, [None, "yes", "yes", "no", "abstain"])
    close(db, round_)
    page = closed_page(login_as, estate.voters[0], round_)
    assert "Preliminary result" in page
    assert "Turnout: 4 of 5 voters (80.0%)." in page
    assert (
        "Passed: 66.7% of the votes cast chose Yes; more than half was needed; "
        "80.0% of the voters took part."
    ) in page
    assert 'class="verdict verdict--passed"' in page
    # Residents vote one each; their private areas are shown beside the counts.
    assert row("Yes", 2, "66.7%", "180.50").search(page)
    assert '<th scope="row">Yes <span class="badge">carried</span></th>' in page
    assert row("No", 1, "33.3%", "120.00").search(page)
    assert re.search(r'<th scope="row">Abstain</th><td>1</td>', page)
    assert "Took part: 4 · area 360.75 m²" in page
    chart = re.search(r'<svg class="chart" role="img"(.*?)</svg>', page, re.S)
    assert chart, "an SVG bar chart"
    assert 'aria-label="Bar chart of the votes for question 1"' in chart.group(0)
    bars = re.findall(r'<rect x="120" y="\d+" width="(\d+)"', chart.group(0))
    assert bars == ["300", "150", "150"]
    assert "Objections can be raised until" in page
    for link in ("results.csv", "results.json", "board.json"):
        assert f"/r/{round_.id}/{link}" in page


def test_an_art278_major_matter_passes_with_area_and_owners(db, estate, make_round, cast, login_as):
    round_ = make_round([yes_no("Install the lift?", rule="art278_major")], electorate="owners")
    # Areas: committee 90, owners 80, 100.50, 120, 60.25 m² (total 450.75).
    vote(cast, estate, round_, ["yes", "no", "yes", "yes", None])
    close(db, round_)
    page = closed_page(login_as, estate.voters[3], round_)
    # Agreed: 310.50 of 390.50 m² (79.5%), 3 of 4 owners (75.0%); took part: 390.50 of
    # 450.75 m² (86.6%), 4 of 5 owners (80.0%).
    assert (
        "Passed: 79.5% of the participating area and 75.0% of the participating owners "
        "agreed; at least three quarters was needed; 86.6% of the area and 80.0% of the "
        "owners took part; at least two thirds was needed."
    ) in page
    assert row("Yes", 3, "75.0%", "310.50").search(page)
    assert row("No", 1, "25.0%", "80.00").search(page)
    assert "Took part: 4 · area 390.50 m²" in page
    assert english(RULE_LABELS["art278_major"]) in page


def test_an_art278_matter_fails_on_participation(db, estate, make_round, cast, login_as):
    round_ = make_round([yes_no("Install the lift?", rule="art278_ordinary")], electorate="owners")
    vote(cast, estate, round_, ["yes", "yes", None, None, None])
    close(db, round_)
    page = closed_page(login_as, estate.voters[3], round_)
    # Took part: 170 of 450.75 m² (37.7%) and 2 of 5 owners (40.0%).
    assert (
        "Not passed: 37.7% of the area and 40.0% of the owners took part; "
        "at least two thirds was needed."
    ) in page
    assert "agreed" not in page
    assert 'class="verdict verdict--failed"' in page


QUORUM_FAILED = "Not passed: 40.0% of the voters took part; the quorum was 80.0%."


def test_a_quorum_failure_in_the_downloads_and_the_notice(db, estate, make_round, cast, login_as):
    round_ = make_round([yes_no(quorum_percent=Decimal("80"))])
    vote(cast, estate, round_, ["yes", "yes", None, None, None])
    close(db, round_)
    got = downloads(login_as, estate.voters[3], round_)
    assert json.loads(got["results.json"].get_data())["verdicts"] == {"q1": QUORUM_FAILED}
    assert QUORUM_FAILED in got["results.csv"].get_data(as_text=True)
    assert QUORUM_FAILED in text(got["notice"])
    assert round_.result_data["questions"][0]["reason"] == "quorum_not_met"


def test_a_quorum_failure_on_the_results_page(db, estate, make_round, cast, login_as):
    round_ = make_round([yes_no(quorum_percent=Decimal("80"))])
    vote(cast, estate, round_, ["yes", "yes", None, None, None])
    close(db, round_)
    assert QUORUM_FAILED in closed_page(login_as, estate.voters[3], round_)


def test_a_tie_is_no_decision(db, estate, make_round, cast, login_as):
    from ballots.services import QuestionDraft

    round_ = make_round(
        [QuestionDraft(title="Which colour?", method="single", options=["Green", "Blue", "Grey"])]
    )
    vote(cast, estate, round_, [None, "o1", "o2", [], None])
    close(db, round_)
    page = closed_page(login_as, estate.voters[0], round_)
    assert "No decision: two or more options received the most votes." in page
    assert "carried" not in page
    assert row("Green", 1, "50.0%").search(page) and row("Blue", 1, "50.0%").search(page)
    assert row("Grey", 0, "0.0%").search(page)
    assert "Took part: 3" in page and "blank: 1" in page


def test_the_csv_escapes_formulas(db, estate, make_round, cast, login_as):
    from ballots.services import QuestionDraft

    labels = ['=HYPERLINK("https://evil.example","Click")', "+SUM(A1:A9)", "@cmd", "Plain"]
    round_ = make_round([QuestionDraft(title="Which one?", method="single", options=labels)])
    vote(cast, estate, round_, ["o1", "o1", "o1", "o4", None])
    close(db, round_)
    response = downloads(login_as, estate.voters[0], round_)["results.csv"]
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    body = response.get_data(as_text=True)
    assert body.startswith("\ufeff"), "a BOM, so that spreadsheets read UTF-8"
    rows = list(csv.reader(io.StringIO(body[1:])))
    assert rows[0] == ["round", "question", "option", "votes", "area_m2", "winner", "verdict"]
    assert len(rows) == 1 + len(labels)
    assert [r[2] for r in rows[1:]] == ["'" + label for label in labels[:3]] + ["Plain"]
    assert [r[3] for r in rows[1:]] == ["3", "0", "0", "1"]
    assert [r[5] for r in rows[1:]] == ["yes", "no", "no", "no"]
    assert {(r[0], r[1]) for r in rows[1:]} == {("Spring decisions", "Which one?")}
    assert rows[1][6].startswith("Passed: 75.0% of the votes cast chose")
    for cells in rows[1:]:
        assert not any(cell[:1] in "=+-@" for cell in cells if cell), cells


def test_the_json_is_the_signed_statement(db, estate, make_round, cast, login_as):
    from crypto import board

    round_ = make_round([yes_no(), yes_no("Plant trees?", rule="two_thirds")])
    for voter, answers in zip(
        estate.voters, (["yes", "yes"], ["yes", "no"], ["no", "yes"]), strict=False
    ):
        cast(voter, round_, {"q1": [answers[0]], "q2": [answers[1]]})
    close(db, round_)
    response = downloads(login_as, estate.voters[0], round_)["results.json"]
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = json.loads(response.get_data())
    statement = document["result"]
    assert statement == round_.result_data
    assert board.verify(round_.public_key, "result", statement, document["signature"])
    assert not board.verify(
        round_.public_key, "result", dict(statement, counted=9), document["signature"]
    )
    assert document["round"]["round_hash"] == round_.round_hash
    assert document["round"]["round_key"] == round_.public_key
    assert document["round"]["status"] == "closed"
    assert document["electorate"] == {"kind": "residents", "voters": 5, "weight": 45075}
    assert document["verdicts"] == {
        "q1": "Passed: 66.7% of the votes cast chose Yes; more than half was needed; "
        "60.0% of the voters took part.",
        "q2": "Passed: 66.7% of the votes cast chose Yes; at least two thirds was needed; "
        "60.0% of the voters took part.",
    }
    assert [q["counts"]["yes"] for q in statement["questions"]] == [2, 2]


def test_the_printable_notice_shows_the_result_and_a_qr_code(
    db, estate, make_round, cast, login_as
):
    from ballots import services

    round_ = make_round()
    vote(cast, estate, round_, [None, "yes", "yes", "no", "abstain"])
    close(db, round_)
    page = text(downloads(login_as, estate.voters[0], round_)["notice"])
    assert "Sunny Garden · Spring decisions" in page
    assert "Preliminary result" in page
    assert "Turnout: 4 of 5 voters (80.0%)." in page
    assert "Passed: 66.7% of the votes cast chose Yes" in page
    assert "Yes: 2 (180.50 m²) · No: 1 (120.00 m²) · Abstain: 1 (60.25 m²)" in page
    assert 'src="data:image/svg+xml;base64,' in page
    assert f"/r/{round_.id}/verify" in page
    assert services.finalize_round(round_.id, T1 + timedelta(days=7))
    db.session.commit()
    with at(T1 + timedelta(days=8)):
        client = login_as(estate.voters[0])
        assert "Final result" in text(client.get(f"/r/{round_.id}/notice"))
        assert "Final result" in text(client.get(f"/r/{round_.id}"))


def test_no_result_before_the_close_for_anybody(db, estate, make_round, cast, login_as):
    scheduled = make_round(opened=False, opens_at=T0 + timedelta(days=1), closes_at=T1)
    round_ = make_round()
    vote(cast, estate, round_, [None, "yes", "no", None, None])
    with at(DURING):
        for user in (estate.voters[0], estate.committee):
            client = login_as(user)
            for which in (round_, scheduled):
                for name in ("results.csv", "results.json", "board.json"):
                    response = client.get(f"/r/{which.id}/{name}")
                    assert response.status_code == 403, (user.display_name, which.id, name)
                    expected = (
                        "The board is published when the round closes."
                        if name == "board.json"
                        else "Results are published when the round closes. "
                        "Nobody can see them before."
                    )
                    assert expected in text(response)
            notice = text(client.get(f"/r/{round_.id}/notice"))
            assert "Vote notice" in notice and "Preliminary result" not in notice
            assert "Yes:" not in notice
