"""The standalone verifier against tampered boards (T43), receipts (T44) and fuzzed JSON
(T45); its command line and its worker processes.

The board of one closed round is built once with RoundWriter: five owners in a named round,
a re-vote, a revoked credential (new device) that voted before, a paper ballot entered by
the committee, blank answers, approval + single + yes/no questions, the yes/no one decided
by the art. 278 double majority with weights. Every test changes a deep copy of it.

Two kinds of tampering: an outsider's, who cannot sign with the round key (the chain and the
signatures give it away), and the server's, which holds the round key and the custodial
voters' keys, re-chains the board and signs a new head and result — then what gives it away
is what it cannot sign (the voters' own keys, the spec's rules) and the voters' receipts."""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto import verify as verifier
from crypto import writer
from crypto.board import (
    GENESIS,
    ballot_hash,
    chain_hash,
    payload_hash,
    public_key,
    round_hash,
    sign,
    signed_message,
)
from crypto.verify import Report, Unreadable, verify_board, verify_json
from crypto.writer import RoundWriter
from tests.crypto.text_checks import checked_in_full

ROOT = Path(__file__).resolve().parents[2]
ROUND_SEED = bytes(range(32))
SERVER_SEED = bytes(range(100, 132))  # a key the server could swap in
OPENED = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
CLOSED = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
FINAL = datetime(2026, 12, 15, 8, 0, tzinfo=UTC)
PAPER_CLERK = "Committee member Wang"


def manifest(round_id: int = 12) -> dict:
    def options(*ids):
        return [{"id": oid, "label": oid.capitalize()} for oid in ids]

    return {
        "version": 1,
        "round_id": round_id,
        "community": "Sunny Garden",
        "title": "Building 3: lift and garden",
        "explanation": "Three questions for the owners of building 3 — “vote by Dec 8”.",
        "scope": "Building 3",
        "opens_at": "2026-12-01T08:00:00Z",
        "closes_at": "2026-12-08T08:00:00Z",
        "secrecy": "named",
        "electorate": {"kind": "owners", "voters": 6, "weight": 62000},
        "questions": [
            {
                "id": "plants",
                "title": "Which plants (up to two)?",
                "method": "approval",
                "max_choices": 2,
                "options": options("roses", "bamboo", "herbs"),
                "rule": {"kind": "simple_majority", "quorum": [1, 2]},
                "proposal": 31,
            },
            {
                "id": "colour",
                "title": "Colour of the lift door",
                "method": "single",
                "max_choices": 1,
                "options": options("grey", "green", "red"),
                "rule": {"kind": "simple_majority", "quorum": None},
                "proposal": None,
            },
            {
                "id": "lift",
                "title": "Install the lift?",
                "method": "yes_no_abstain",
                "max_choices": 1,
                "options": options("yes", "no", "abstain"),
                "rule": {"kind": "art278_major", "quorum": None},
                "proposal": 7,
            },
        ],
    }


@dataclass
class Round:
    writer: RoundWriter
    board: dict
    receipts: dict[str, dict]  # label -> receipt
    seeds: dict[str, bytes]

    def at(self, label: str) -> int:
        """The entry of a labelled ballot."""
        return self.receipts[label]["n"]

    def copy(self) -> dict:
        return copy.deepcopy(self.board)


def build_round(round_id: int = 12, round_seed: bytes = ROUND_SEED, final: bool = True) -> Round:
    w = RoundWriter(manifest(round_id), round_seed)
    w.open(OPENED)
    seeds, receipts = {}, {}
    seeds["alice"] = w.register(12000, unit="3-101", custodial=False)
    seeds["bob"] = w.register(9500, unit="3-102")
    seeds["carol-old"] = w.register(11000, unit="3-201", custodial=False)
    seeds["dan"] = w.register(8000, unit="3-202")
    cast = w.cast
    receipts["alice-1"] = cast(
        seeds["alice"], {"plants": ["roses"], "colour": ["red"], "lift": ["no"]}
    )
    receipts["bob"] = cast(
        seeds["bob"], {"plants": ["roses", "herbs"], "colour": ["green"], "lift": ["yes"]}
    )
    receipts["carol-old"] = cast(
        seeds["carol-old"], {"plants": [], "colour": ["grey"], "lift": ["no"]}
    )
    receipts["alice-2"] = cast(
        seeds["alice"], {"plants": ["herbs", "roses"], "colour": ["green"], "lift": ["yes"]}
    )
    seeds["carol"] = w.register(11000, unit="3-201", custodial=False, revokes=seeds["carol-old"])
    receipts["carol"] = cast(
        seeds["carol"], {"plants": ["bamboo"], "colour": ["green"], "lift": ["yes"]}
    )
    receipts["dan-paper"] = cast(
        seeds["dan"],
        {"plants": ["roses"], "colour": ["grey"], "lift": ["yes"]},
        channel="paper",
        entered_by=PAPER_CLERK,
    )
    seeds["erin"] = w.register(10000, unit="3-301")
    receipts["erin"] = cast(seeds["erin"], {"plants": [], "colour": [], "lift": ["abstain"]})
    w.close(CLOSED)
    if final:
        w.finalize("final", FINAL, "no objection within the review period")
    return Round(w, copy.deepcopy(w.board()), receipts, seeds)


@cache
def the_round() -> Round:
    return build_round()


@cache
def other_round() -> Round:
    return build_round(round_id=13, round_seed=bytes(range(50, 82)))


@cache
def board_bytes() -> bytes:
    return json.dumps(the_round().board, separators=(",", ":")).encode()


def check(document, receipts=()) -> Report:
    report = verify_board(document, receipts, workers=1)
    assert report.ok == (not report.problems)
    no_last_resort(report)
    return report


def no_last_resort(report: Report) -> None:
    """The catch-alls that keep the verifier from raising were not needed: every check
    foresaw the shape it met."""
    for problem in report.problems:
        assert "cannot be" not in problem.reason, problem


def assert_reported(report: Report, position, *words: str) -> None:
    """Some problem at `position` mentions every one of `words`."""
    assert not report.ok
    reasons = report.at(position)
    assert any(all(w in r for w in words) for r in reasons), (position, words, report.problems)


def index_of(document: dict, kind: str) -> int:
    return next(i for i, e in enumerate(document["entries"]) if e["type"] == kind)


def rechain(document: dict, round_seed: bytes = ROUND_SEED, resign_result: bool = True) -> dict:
    """What a server holding the round key can do after changing entries: number them
    again, recompute every chain hash, sign the result again (naming the close entry as it
    is now) and sign a new head."""
    previous = GENESIS
    entries = document["entries"]
    round_hex = document["round"]
    close = None
    for i, entry in enumerate(entries):
        entry["n"] = i
        payload = entry["payload"]
        if entry["type"] == "close":
            close = entry
        if entry["type"] == "result" and resign_result and close is not None:
            statement = payload["result"]
            statement["board"] = {"n": close["n"], "hash": close["hash"]}
            payload["signature"] = sign(round_seed, "result", statement)
        value = chain_hash(previous, i, entry["type"], payload_hash(payload))
        entry["hash"] = value.hex()
        previous = value
    document["head"] = writer.head(round_hex, len(entries) - 1, entries[-1]["hash"], round_seed)
    return document


def ballot_entry(round_hex: str, seed: bytes, answers: dict, nonce: str = "ab" * 16) -> dict:
    body = writer.ballot_body(round_hex, public_key(seed), nonce, answers)
    payload = writer.ballot_payload(body, sign(seed, "ballot", body), "online", None)
    return {"n": 0, "type": "ballot", "payload": payload, "hash": "00" * 32}


def insert(document: dict, position: int, entry: dict) -> None:
    """An outsider's insertion: the entry gets its n and a chain hash that follows its
    predecessor, but nothing after it can be re-chained without the round key."""
    entries = document["entries"]
    entries.insert(position, entry)
    entry["n"] = position
    previous = bytes.fromhex(entries[position - 1]["hash"])
    entry["hash"] = chain_hash(
        previous, position, entry["type"], payload_hash(entry["payload"])
    ).hex()


# ---------------------------------------------------------------- the untouched board


def test_the_round_as_written_is_valid_with_all_its_receipts():
    r = the_round()
    report = check(r.copy(), list(r.receipts.items()))
    assert report.ok, report.problems
    summary = report.summary
    assert summary["status"] == "final" and summary["outcome"] == "final"
    assert summary["ballots"] == 7
    assert summary["credentials"] == 5  # carol's first credential was revoked
    assert summary["counted"] == 5  # alice's second ballot, not carol's first
    assert summary["questions"] == r.writer.statement["questions"]
    lift = summary["questions"][2]
    assert lift["counts"] == {"yes": 4, "no": 0, "abstain": 1}
    assert lift["weights"]["yes"] == 12000 + 9500 + 11000 + 8000
    paper = r.board["entries"][r.at("dan-paper")]["payload"]
    assert paper["channel"] == "paper" and paper["entered_by"] == PAPER_CLERK


def test_a_round_still_open_is_valid_and_says_so():
    w = RoundWriter(manifest(), ROUND_SEED)
    w.open(OPENED)
    w.cast(w.register(5000, unit="1-1"), {"plants": [], "colour": ["red"], "lift": ["no"]})
    report = check(copy.deepcopy(w.board()))
    assert report.ok, report.problems
    assert report.summary["status"] == "open"


# ---------------------------------------------------------------- T43: tampered boards


def test_a_changed_answer_breaks_the_voters_signature_and_the_chain():
    r = the_round()
    doc = r.copy()
    at = r.at("alice-2")
    doc["entries"][at]["payload"]["ballot"]["answers"]["lift"] = ["no"]
    report = check(doc)
    assert_reported(report, at, "signature does not verify")
    assert_reported(report, at, "chain hash")
    # The server re-chaining it does not help: alice's own key signed the ballot.
    report = check(rechain(doc))
    assert_reported(report, at, "signature does not verify")
    assert report.at(at + 1) == []


def test_a_deleted_entry_is_named_where_the_numbering_breaks():
    r = the_round()
    doc = r.copy()
    at = r.at("bob")
    del doc["entries"][at]
    report = check(doc)
    assert_reported(report, at, f"n is {at + 1}", "missing, inserted or moved")
    assert_reported(report, at, "chain hash")
    assert report.at(at + 1) == []  # reported once, where it happened
    # Re-chained by the server: the close entry's count of ballots gives it away, and
    # bob's receipt is no longer honoured.
    doc = r.copy()
    del doc["entries"][at]
    rechain(doc)
    report = check(doc, [("bob", r.receipts["bob"])])
    assert_reported(report, index_of(doc, "close"), "ballots is 7", "6 ballot entries")
    assert_reported(report, "receipt bob", "not the receipt's ballot")


def test_a_forged_ballot_of_an_unregistered_key_is_refused():
    r = the_round()
    doc = r.copy()
    at = r.at("erin")
    intruder = bytes(range(200, 232))
    forged = ballot_entry(doc["round"], intruder, {"plants": [], "colour": ["red"], "lift": ["no"]})
    insert(doc, at, forged)
    report = check(doc)
    assert_reported(report, at, "credential was not registered")
    assert_reported(report, at + 1, "chain hash")
    # Inserted by the server with a re-chained board and a new head and result.
    doc = r.copy()
    doc["entries"].insert(at, copy.deepcopy(forged))
    report = check(rechain(doc))
    assert_reported(report, at, "credential was not registered")
    assert_reported(report, index_of(doc, "close"), "ballots is 7", "8 ballot entries")


def test_a_ballot_of_a_registered_key_inserted_breaks_the_chain_after_it():
    r = the_round()
    doc = r.copy()
    at = r.at("erin")  # after bob's last ballot: it would replace bob's vote
    extra = ballot_entry(
        doc["round"], r.seeds["bob"], {"plants": [], "colour": ["red"], "lift": ["no"]}
    )
    insert(doc, at, extra)
    report = check(doc)
    # The inserted ballot itself is well formed; the board breaks right after it.
    assert report.at(at) == []
    assert_reported(report, at + 1, f"n is {at} but the entry is at position {at + 1}")
    assert_reported(report, at + 1, "chain hash")
    assert_reported(report, "board", "head names entry")
    # It changed which of bob's ballots counts: the published result no longer matches.
    assert_reported(report, index_of(doc, "result"), 'question "colour"', "recount gives")


def test_a_duplicated_ballot_reuses_its_nonce():
    r = the_round()
    at = r.at("bob")
    doc = r.copy()
    insert(doc, at + 1, copy.deepcopy(doc["entries"][at]))
    report = check(doc)
    assert_reported(report, at + 1, f"nonce was already used by entry {at}")
    doc = r.copy()
    doc["entries"].insert(at + 1, copy.deepcopy(doc["entries"][at]))
    report = check(rechain(doc))
    assert_reported(report, at + 1, f"nonce was already used by entry {at}")
    assert report.at(at) == []


def test_a_ballot_replayed_from_another_round_is_refused():
    r, other = the_round(), other_round()
    replayed = copy.deepcopy(other.board["entries"][other.at("bob")])
    doc = r.copy()
    at = r.at("erin")
    doc["entries"].insert(at, replayed)
    report = check(rechain(doc))
    assert_reported(report, at, "another round")
    assert_reported(report, at, "credential was not registered")
    assert not any("signature" in reason for reason in report.at(at))  # signed, elsewhere


def test_a_ballot_moved_to_another_round_hash_fails_its_signature():
    r, other = the_round(), other_round()
    doc = r.copy()
    at = r.at("carol")
    doc["entries"][at]["payload"]["ballot"]["round"] = other.board["round"]
    report = check(doc)
    assert_reported(report, at, "another round")
    assert_reported(report, at, "signature does not verify")
    assert_reported(report, at, "chain hash")


def test_a_changed_time_is_caught():
    r = the_round()
    doc = r.copy()
    close = index_of(doc, "close")
    doc["entries"][close]["payload"]["closed_at"] = "2026-12-09T08:00:00Z"
    report = check(doc)
    assert_reported(report, close, "chain hash")
    assert [p.position for p in report.problems] == [close]
    # The server re-chains a close dated before the opening: out of order.
    doc["entries"][close]["payload"]["closed_at"] = "2026-11-30T08:00:00Z"
    report = check(rechain(doc))
    assert_reported(report, close, "closed_at is before opened_at")
    doc = r.copy()
    doc["entries"][1]["payload"]["opened_at"] = "2026-12-01 08:00:00"
    report = check(rechain(doc))
    assert_reported(report, 1, "opened_at is not a time")


def test_a_new_round_key_changes_the_round_hash_that_every_ballot_signed():
    """The server swaps in a key of its own and signs everything again with it: manifest,
    chain, result, head. The voters' ballots still name the old round hash and cannot be
    re-signed without their keys."""
    r = the_round()
    doc = r.copy()
    setup = doc["entries"][0]["payload"]
    setup["manifest"]["round_key"] = public_key(SERVER_SEED)
    setup["signature"] = sign(SERVER_SEED, "manifest", setup["manifest"])
    new_round = round_hash(setup["manifest"]).hex()
    doc["round"] = new_round
    doc["entries"][index_of(doc, "result")]["payload"]["result"]["round"] = new_round
    report = check(rechain(doc, SERVER_SEED), list(r.receipts.items()))
    ballots = [i for i, e in enumerate(doc["entries"]) if e["type"] == "ballot"]
    for at in ballots:
        assert_reported(report, at, "another round")
    for label in r.receipts:
        assert_reported(report, f"receipt {label}", "signature does not verify")
    # ... and, as no ballot is valid, nothing counts: the result differs from the recount.
    result = index_of(doc, "result")
    assert_reported(report, result, "counted is 5 but the board has 0")
    assert {p.position for p in report.problems} == set(ballots) | {result} | {
        f"receipt {label}" for label in r.receipts
    }


def test_a_corrupted_signature_is_caught():
    r = the_round()
    doc = r.copy()
    at = r.at("dan-paper")
    payload = doc["entries"][at]["payload"]
    payload["signature"] = payload["signature"][:-1] + (
        "0" if payload["signature"][-1] != "0" else "1"
    )
    report = check(doc)
    assert_reported(report, at, "signature does not verify")
    doc = r.copy()
    doc["entries"][0]["payload"]["signature"] = "ab" * 64
    report = check(doc)
    assert_reported(report, 0, "manifest signature does not verify")


def test_a_changed_tally_number_is_caught_even_when_signed_again():
    r = the_round()
    doc = r.copy()
    result = index_of(doc, "result")
    doc["entries"][result]["payload"]["result"]["questions"][2]["counts"]["no"] = 3
    report = check(doc)
    assert_reported(report, result, "chain hash")
    assert_reported(report, result, "result signature does not verify")
    assert_reported(report, result, 'question "lift": counts is', "recount gives")
    report = check(rechain(doc))
    assert report.at(result) == [
        'question "lift": counts is {"abstain": 1, "no": 3, "yes": 4} but the recount gives '
        '{"yes": 4, "no": 0, "abstain": 1}'
    ]
    assert [p.position for p in report.problems] == [result]
    # The outcome too: "passed" flipped and signed again.
    doc = r.copy()
    lift = doc["entries"][result]["payload"]["result"]["questions"][2]
    lift["passed"] = not lift["passed"]
    report = check(rechain(doc))
    assert_reported(report, result, 'question "lift": passed is')
    doc = r.copy()
    doc["entries"][result]["payload"]["result"]["counted"] = 6
    assert_reported(check(rechain(doc)), result, "counted is 6 but the board has 5")


def test_reordered_entries_are_caught():
    r = the_round()
    first, second = r.at("alice-1"), r.at("alice-2")
    doc = r.copy()
    entries = doc["entries"]
    entries[first], entries[second] = entries[second], entries[first]
    report = check(doc)
    assert_reported(report, first, f"n is {second}")
    assert_reported(report, second, f"n is {first}")
    # Renumbered and re-chained by the server: alice's first ballot now counts, and her
    # receipts are not honoured.
    report = check(rechain(doc), [("a1", r.receipts["alice-1"]), ("a2", r.receipts["alice-2"])])
    assert_reported(report, index_of(doc, "result"), "recount gives")
    assert_reported(report, "receipt a1", "not the receipt's ballot")
    assert_reported(report, "receipt a2", "not the receipt's ballot")


def test_a_head_without_signature_is_refused():
    doc = the_round().copy()
    del doc["head"]["signature"]
    report = check(doc)
    assert_reported(report, "board", "head lacks signature")
    assert_reported(report, "board", "head signature does not verify")
    doc = the_round().copy()
    doc["head"]["n"] -= 1
    assert_reported(check(doc), "board", "head names entry")


def test_order_rules_of_the_entry_table():
    r = the_round()
    close = index_of(r.board, "close")
    # A ballot after the close, re-chained: out of place and not counted.
    doc = r.copy()
    late = copy.deepcopy(doc["entries"][r.at("bob")])
    late["payload"]["ballot"]["nonce"] = "cd" * 16
    late["payload"]["signature"] = sign(r.seeds["bob"], "ballot", late["payload"]["ballot"])
    doc["entries"].insert(close + 1, late)
    report = check(rechain(doc))
    assert_reported(report, close + 1, "ballot entry after the close entry")
    assert_reported(report, close + 2, "result entry that is not right after the close")
    # A second final entry.
    doc = r.copy()
    doc["entries"].append(copy.deepcopy(doc["entries"][-1]))
    report = check(rechain(doc))
    assert_reported(report, len(doc["entries"]) - 1, "final entry that does not follow")
    # A revoked credential's later ballot.
    doc = r.copy()
    old = r.seeds["carol-old"]
    body = writer.ballot_body(
        doc["round"], public_key(old), "ef" * 16, {"plants": [], "colour": ["red"], "lift": ["no"]}
    )
    entry = {
        "n": 0,
        "type": "ballot",
        "hash": "",
        "payload": writer.ballot_payload(body, sign(old, "ballot", body), "online", None),
    }
    doc["entries"].insert(close, entry)
    report = check(rechain(doc))
    assert_reported(report, close, "credential was revoked by entry")
    # A credential registered twice.
    doc = r.copy()
    twice = copy.deepcopy(doc["entries"][2])
    doc["entries"].insert(close, twice)
    report = check(rechain(doc))
    assert_reported(report, close, "already registered by entry 2")


def test_credentials_beyond_the_electorate_are_reported():
    w = RoundWriter(manifest(), ROUND_SEED)
    w.open(OPENED)
    for unit in range(6):
        w.register(10000, unit=f"9-{unit}")
    doc = copy.deepcopy(w.board())
    extra = copy.deepcopy(doc["entries"][-1])
    extra["payload"]["key"] = public_key(bytes(range(7, 39)))
    doc["entries"].append(extra)
    report = check(rechain(doc))
    assert_reported(report, len(doc["entries"]) - 1, "more unrevoked credentials", "6 voters")
    doc = copy.deepcopy(w.board())
    doc["entries"][-1]["payload"]["weight"] = 20000  # 70,000 > 62,000 in all
    report = check(rechain(doc))
    assert_reported(report, "board", "weigh 70000", "62000")


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        "board",
        {},
        {"format": "yishi-board", "version": 1, "round": "00", "entries": [], "head": {}},
        {
            "format": "yishi-board",
            "version": 1.0,
            "round": 5,
            "entries": [1, "x", None],
            "head": [],
        },
        {"format": "yishi-board", "version": True, "round": "", "entries": {"n": 0}, "head": None},
    ],
)
def test_documents_of_the_wrong_shape_are_reported_not_raised(document):
    report = check(document)
    assert not report.ok and any(p.position == "board" or p.position == 0 for p in report.problems)


HOSTILE_VALUES = [
    None,
    True,
    -1,
    10**80,
    2**64,
    1.5,
    float("nan"),
    "",
    "zz" * 32,
    "AB" * 32,
    "é",
    [],
    [[[[]]]],
    {},
    {"answers": {"q": [1, 2]}},
    ["yes", None],
    [{"a": 1}],
]


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=repr)
def test_hostile_values_anywhere_are_reported_not_raised(value):
    r = the_round()
    base = r.board
    paths = list(_paths(base))
    rng = random.Random(repr(value))
    for path in rng.sample(paths, 40):
        doc = copy.deepcopy(base)
        _set(doc, path, value)
        report = verify_board(doc, list(r.receipts.items()), workers=1)
        no_last_resort(report)
        if _get(base, path) == value and type(_get(base, path)) is type(value):
            continue
        assert not report.ok, path


# ---------------------------------------------------------------- T44: receipts


def test_every_receipt_is_honoured_by_exactly_one_entry():
    r = the_round()
    hashes = [
        ballot_hash(e["payload"]).hex() if e["type"] == "ballot" else None
        for e in r.board["entries"]
    ]
    for label, receipt in r.receipts.items():
        matches = [i for i, h in enumerate(hashes) if h == receipt["ballot"]]
        assert matches == [receipt["n"]], label
        assert r.board["entries"][receipt["n"]]["hash"] == receipt["head"]
        assert check(r.copy(), [(label, receipt)]).ok


@pytest.mark.parametrize("label", ["alice-1", "bob", "carol-old", "dan-paper", "erin"])
def test_a_receipt_fails_once_its_ballot_entry_is_changed(label):
    r = the_round()
    doc = r.copy()
    at = r.at(label)
    doc["entries"][at]["payload"]["channel"] = "proxy"
    doc["entries"][at]["payload"]["entered_by"] = PAPER_CLERK
    report = check(rechain(doc), list(r.receipts.items()))
    assert_reported(report, f"receipt {label}", f"entry {at} is not the receipt's ballot")
    for other, receipt in r.receipts.items():  # ballots before it are still honoured
        if receipt["n"] < at:
            assert report.at(f"receipt {other}") == [], other


def test_a_custodial_ballot_replaced_by_the_server_is_shown_only_by_the_receipt():
    """The server holds bob's key (a custodial credential) and the round key: it can
    replace bob's ballot with a valid one and sign everything again. The board verifies;
    bob's receipt does not."""
    r = the_round()
    doc = r.copy()
    at = r.at("bob")
    body = doc["entries"][at]["payload"]["ballot"]
    body["answers"]["lift"] = ["no"]
    doc["entries"][at]["payload"]["signature"] = sign(r.seeds["bob"], "ballot", body)
    rechain(doc)
    result = doc["entries"][index_of(doc, "result")]
    statement = result["payload"]["result"]
    # A recount that matches the changed ballot, signed with the round key.
    statement["questions"] = verify_board(doc, workers=1).summary["questions"]
    result["payload"]["signature"] = sign(ROUND_SEED, "result", statement)
    rechain(doc)
    assert check(doc).ok
    report = check(doc, list(r.receipts.items()))
    assert_reported(report, "receipt bob", f"entry {at} is not the receipt's ballot")
    # Every later receipt names a chain hash that the re-chained board no longer has.
    for label, receipt in r.receipts.items():
        if receipt["n"] > at:
            assert_reported(report, f"receipt {label}", "chain hash is not the receipt's head")
        elif receipt["n"] < at:
            assert report.at(f"receipt {label}") == []
    assert all(isinstance(p.position, str) for p in report.problems)


def test_receipts_that_prove_nothing_are_refused():
    r = the_round()
    good = r.receipts["bob"]
    forged = dict(good, n=good["n"] + 1)
    other = other_round().receipts["bob"]
    beyond = writer.receipt(r.board["round"], 999, good["ballot"], good["head"], ROUND_SEED)
    not_a_ballot = writer.receipt(r.board["round"], 2, good["ballot"], good["head"], ROUND_SEED)
    report = check(
        r.copy(),
        [
            ("forged", forged),
            ("other", other),
            ("beyond", beyond),
            ("cred", not_a_ballot),
            ("x", []),
        ],
    )
    assert_reported(report, "receipt forged", "signature does not verify")
    assert_reported(report, "receipt other", "another round")
    assert_reported(report, "receipt beyond", "no entry 999", "dropped")
    assert_reported(report, "receipt cred", "entry 2 is not a ballot entry")
    assert_reported(report, "receipt x", "not a JSON object")
    assert not any(isinstance(p.position, int) for p in report.problems)


# ---------------------------------------------------------------- T45: fuzzed JSON


def _verify_text(data: bytes) -> Report | None:
    """None when the text is not JSON (exit 2); never an exception."""
    try:
        report = verify_json(data, workers=1)
    except Unreadable:
        return None
    no_last_resort(report)
    return report


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=st.data())
def test_fuzz_any_changed_byte_is_never_valid(data):
    """The compact JSON has almost no insignificant byte: a change is unreadable JSON or a
    different value somewhere, which a hash, signature or rule catches. The exception is a
    change that leaves the parsed document the same (a hex digit of a \\uXXXX escape in
    upper case): that board is as valid as before."""
    text = board_bytes()
    position = data.draw(st.integers(0, len(text) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != text[position]))
    changed = text[:position] + bytes([byte]) + text[position + 1 :]
    report = _verify_text(changed)
    if _same_document(changed, text):
        assert report is not None and report.ok
    else:
        assert report is None or not report.ok


def test_an_escape_in_upper_case_is_the_same_board():
    text = board_bytes()
    escape = text.index(b"\\u201c")  # in the manifest's explanation
    changed = text[: escape + 5] + b"C" + text[escape + 6 :]
    assert changed != text and _same_document(changed, text)
    assert _verify_text(changed).ok


def _same_document(a: bytes, b: bytes) -> bool:
    try:
        first, second = json.loads(a), json.loads(b)
    except ValueError:
        return False
    return json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def _strings(text: str, pattern: str) -> list[tuple[int, int]]:
    import re

    return [m.span(1) for m in re.finditer(pattern, text)]


@FUZZ
@given(data=st.data())
def test_fuzz_a_changed_hash_signature_key_or_answer_is_never_valid(data):
    text = board_bytes().decode()
    spans = _strings(text, r'"([0-9a-f]{32,128})"') + _strings(
        text, r'"(yes|no|abstain|roses|bamboo|herbs|grey|green|red)"'
    )
    start, end = data.draw(st.sampled_from(spans))
    position = data.draw(st.integers(start, end - 1))
    char = data.draw(st.sampled_from("0123456789abcdefxyz").filter(lambda c: c != text[position]))
    report = _verify_text((text[:position] + char + text[position + 1 :]).encode())
    assert report is not None and not report.ok


@FUZZ
@given(cut=st.integers(0, 10**9))
def test_fuzz_a_truncated_board_is_unreadable(cut):
    text = board_bytes()
    assert _verify_text(text[: cut % len(text)]) is None


def _shuffled(value, rng: random.Random):
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), indent=st.sampled_from([None, 0, 1, 2, "\t"]))
def test_fuzz_key_order_and_whitespace_do_not_matter(seed, indent):
    r = the_round()
    reordered = _shuffled(r.board, random.Random(seed))
    separators = (", ", ": ") if indent is None else (",", ":  ")
    report = _verify_text(json.dumps(reordered, indent=indent, separators=separators).encode())
    assert report is not None and report.ok, report.problems
    assert report.summary["questions"] == r.writer.statement["questions"]


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.sampled_from(
        ["", "00" * 32, "ab" * 64, "yes", "online", "ballot", "2026-12-01T08:00:00Z"]
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _get(value, path):
    for step in path:
        value = value[step]
    return value


def _set(document, path, value):
    if not path:
        return
    _get(document, path[:-1])[path[-1]] = value


@FUZZ
@given(data=st.data())
def test_fuzz_replaced_or_removed_values_are_reported_not_raised(data):
    """Any value of the document replaced by any JSON value (wrong types, huge and float
    numbers, hex-looking strings, nested junk) or any key removed: never an exception,
    never valid unless the value is unchanged."""
    r = the_round()
    paths = [p for p in _paths(r.board) if p]
    path = data.draw(st.sampled_from(paths))
    doc = copy.deepcopy(r.board)
    if data.draw(st.booleans()):
        new = data.draw(JSON_VALUES)
        _set(doc, path, new)
        old = _get(r.board, path)
        unchanged = json.dumps(old) == json.dumps(new) and type(old) is type(new)
    else:
        parent = _get(doc, path[:-1])
        del parent[path[-1]]
        unchanged = False
    report = verify_board(doc, list(r.receipts.items()), workers=1)
    no_last_resort(report)
    assert report.ok == unchanged, (path, report.problems)


# ---------------------------------------------------------------- the text of the board

# verify_json checks the credential and online ballot entries of a board in the server's
# compact form on their text (its payload text is the canonical encoding), without parsing
# them again; every other entry is parsed and checked in full. Both must say the same.


def _compact(document) -> bytes:
    return writer.document_text(document).encode()


def _same_reports(text: Report, parsed: Report) -> None:
    assert text.problems == parsed.problems
    assert repr(text.summary) == repr(parsed.summary)  # repr: a NaN in it equals its NaN
    assert text.ok == parsed.ok


def test_the_server_form_is_checked_on_its_text(monkeypatch):
    """Of the untouched board only the entries of other shapes (setup, open, the paper
    ballot, close, result, final) are parsed again by the entry checks."""
    r = the_round()
    report, fully = checked_in_full(_compact(r.board), monkeypatch)
    assert report.ok, report.problems
    others = [
        e["type"]
        for e in r.board["entries"]
        if e["type"] not in ("credential", "ballot") or e["payload"].get("channel") == "paper"
    ]
    assert fully == others and "ballot" in others  # the paper ballot


@FUZZ
@given(data=st.data())
def test_fuzz_the_text_checks_say_what_the_parsed_checks_say(data):
    """Any value replaced by any JSON value, or any key removed, in the server's form: the
    same problems (entry by entry, in the same words) and the same summary."""
    r = the_round()
    paths = [p for p in _paths(r.board) if p]
    doc = copy.deepcopy(r.board)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        try:
            if data.draw(st.booleans()):
                _set(doc, path, data.draw(JSON_VALUES))
            else:
                del _get(doc, path[:-1])[path[-1]]
        except (KeyError, IndexError, TypeError):  # gone with an earlier change
            continue
    data = _compact(doc)  # a float as NaN, Infinity or 1.5: parsed as a float, reported
    text = verify_json(data, list(r.receipts.items()), workers=1)
    parsed = verify_board(verifier.load_json(data), list(r.receipts.items()), workers=1)
    _same_reports(text, parsed)


@FUZZ
@given(data=st.data())
def test_fuzz_a_changed_character_in_the_server_form_is_judged_alike(data):
    """A character of an entry changed (quotes, escapes, digits, braces included): the
    text checks agree with the parsed checks whenever the result is still JSON."""
    text = board_bytes().decode()
    start = text.index('"entries":[') + 11
    position = data.draw(st.integers(start, len(text) - 200))
    char = data.draw(st.sampled_from('0123456789abcdefABCDEF"\\{}[],:u nt'))
    changed = text[:position] + char + text[position + 1 :]
    try:
        document = verifier.load_json(changed)
    except Unreadable:
        return
    _same_reports(verify_json(changed, workers=1), verify_board(document, workers=1))


def test_answers_out_of_canonical_order_in_the_text_are_the_same_answers():
    """Answer keys in another order (or one twice) in a ballot's text: the parsed ballot is
    what its voter signed, or what the last key says, whatever the text's order."""
    r = the_round()
    at = r.at("carol")
    entry = r.board["entries"][at]
    answers = entry["payload"]["ballot"]["answers"]
    text = board_bytes().decode()
    canonical_answers = json.dumps(answers, sort_keys=True, separators=(",", ":"))
    assert text.count(canonical_answers) >= 1
    place = text.index(canonical_answers, text.index(entry["hash"]) - 2000)
    reversed_answers = json.dumps(dict(reversed(sorted(answers.items()))), separators=(",", ":"))
    assert reversed_answers != canonical_answers
    changed = text[:place] + reversed_answers + text[place + len(canonical_answers) :]
    report = verify_json(changed, workers=1)
    assert report.ok, report.problems
    _same_reports(report, verify_board(json.loads(changed), workers=1))
    twice = canonical_answers[:-1] + ',"lift":["no"]}'
    changed = text[:place] + twice + text[place + len(canonical_answers) :]
    report = verify_json(changed, workers=1)
    assert_reported(report, "board", "same key twice")
    assert_reported(report, at, "signature does not verify")
    parsed = verify_board(json.loads(changed), workers=1)
    assert [p for p in report.problems if p.position != "board"] == parsed.problems


@settings(max_examples=300, deadline=None)
@given(value=st.text())
def test_every_string_is_matched_in_its_canonical_form(value):
    import re

    assert re.fullmatch(verifier._STRING, json.dumps(value))


_PIECES = st.sampled_from(
    [
        "a",
        " ",
        "~",
        "\\u0041",
        "\\u00e9",
        "\\u00E9",
        "\\u000a",
        "\\n",
        "\\u001f",
        "\\u007f",
        "\\ud800",
        "\\udc00",
        '\\"',
        "\\\\",
        "\\/",
        "\\b",
        "\\u0008",
        "\\u4e2d",
        "\\uffff",
    ]
)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=6))
def test_a_string_matched_as_canonical_is_its_own_canonical_encoding(pieces):
    import re

    raw = '"' + "".join(pieces) + '"'
    if re.fullmatch(verifier._STRING, raw):
        assert json.dumps(json.loads(raw)) == raw


# ---------------------------------------------------------------- the command line


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crypto.verify", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_command_exit_codes(tmp_path):
    r = the_round()
    good = tmp_path / "board.json"
    good.write_text(json.dumps(r.board, indent=1))
    receipt = tmp_path / "receipts.json"
    receipt.write_text(json.dumps(list(r.receipts.values())))
    done = run_cli(str(good), "--receipt", str(receipt))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VALID" in done.stdout and "Traceback" not in done.stderr

    doc = r.copy()
    at = r.at("carol")
    doc["entries"][at]["payload"]["ballot"]["answers"]["lift"] = ["no"]
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(doc))
    done = run_cli(str(bad), "--json")
    assert done.returncode == 1
    figures = json.loads(done.stdout)
    assert figures["ok"] is False
    assert {p["position"] for p in figures["problems"]} >= {at}
    done = run_cli(str(bad))
    assert (
        done.returncode == 1 and f"entry {at}: the ballot signature does not verify" in done.stdout
    )

    for name, content in [("junk.json", "{not json"), ("cut.json", good.read_text()[:500])]:
        path = tmp_path / name
        path.write_text(content)
        done = run_cli(str(path))
        assert done.returncode == 2, name
        assert done.stderr.startswith("board: not JSON") and "Traceback" not in done.stderr
    done = run_cli(str(tmp_path / "missing.json"))
    assert done.returncode == 2 and "cannot read" in done.stderr
    done = run_cli(str(good), "--receipt", str(tmp_path / "junk.json"))
    assert done.returncode == 2 and done.stderr.startswith("receipt ")
    floats = tmp_path / "floats.json"
    floats.write_text(good.read_text().replace('"weight": 12000', '"weight": 12000.0'))
    done = run_cli(str(floats))
    assert done.returncode == 1 and "float" in done.stdout


@pytest.mark.parametrize("ending", [",}", " , }", ",,}", ',"head":1,}'])
def test_a_comma_without_a_key_after_it_is_not_json(ending):
    text = board_bytes().decode()
    assert _verify_text((text[:-1] + ending).encode()) is None


def test_duplicated_keys_and_huge_numbers_are_reported():
    text = board_bytes().decode()
    duplicated = text.replace('"channel":"paper"', '"channel":"online","channel":"paper"', 1)
    report = _verify_text(duplicated.encode())
    assert_reported(report, "board", "same key twice")
    huge = text.replace('"weight":9500', '"weight":' + "9" * 5000, 1)
    report = _verify_text(huge.encode())
    assert report is not None and not report.ok
    nested = "[" * 100_000 + "]" * 100_000
    assert _verify_text(nested.encode()) is None


# ---------------------------------------------------------------- worker processes


@cache
def large_round() -> RoundWriter:
    m = manifest()
    m["electorate"] = {"kind": "owners", "voters": 2700, "weight": 2700 * 10000}
    w = RoundWriter(m, ROUND_SEED)
    w.open(OPENED)
    rng = random.Random(7)
    seeds = [w.register(rng.randint(5000, 10000), unit=f"u{i}") for i in range(2700)]
    for i in range(3000):
        seed = seeds[i] if i < len(seeds) else rng.choice(seeds)
        w.cast(
            seed,
            {
                "plants": rng.sample(["roses", "bamboo", "herbs"], rng.randint(0, 2)),
                "colour": rng.sample(["grey", "green", "red"], rng.randint(0, 1)),
                "lift": [rng.choice(["yes", "no", "abstain"])],
            },
        )
    w.close(CLOSED)
    return w


def test_worker_processes_give_the_same_report(monkeypatch):
    pools = []

    def spy(*args, **kwargs):
        pools.append(args)
        return real(*args, **kwargs)

    real = verifier.ProcessPoolExecutor
    monkeypatch.setattr(verifier, "ProcessPoolExecutor", spy)
    w = large_round()
    doc = copy.deepcopy(w.board())
    one, two = verify_board(doc, workers=1), verify_board(doc, workers=2)
    assert pools == [(2,)]  # only workers=2 forked
    assert one.ok and two.ok, one.problems[:3]
    assert one.summary == two.summary
    assert one.summary["ballots"] == 3000 and one.summary["counted"] == 2700
    # Problems in different workers' ranges come back complete and in order.
    entries = doc["entries"]
    entries[10]["payload"]["weight"] += 1
    entries[3000]["payload"]["ballot"]["answers"]["lift"] = ["maybe"]
    entries[-3]["payload"]["signature"] = "00" * 64
    one, two = verify_board(doc, workers=1), verify_board(doc, workers=2)
    assert not one.ok
    assert one.problems == two.problems
    assert {p.position for p in one.problems} >= {10, 3000, len(entries) - 3}


def test_workers_forked_before_the_parse_give_the_same_report(monkeypatch):
    """verify_json forks its workers before it parses and hands them the entries' text as
    the parse goes; they find what the parsed checks find, wherever it is. Where entry 0
    gives no round hash, they get the entries after the walk's setup instead."""
    started = []
    real = verifier._start_workers

    def spy(text, workers):
        pool = real(text, workers)
        started.append(pool is not None)
        return pool

    monkeypatch.setattr(verifier, "_start_workers", spy)
    w = large_round()
    doc = copy.deepcopy(w.board())
    data = _compact(doc)
    assert len(data) > verifier.PARALLEL_TEXT
    two = verify_json(data, workers=2)
    assert started == [True]
    assert two.ok, two.problems[:3]
    _same_reports(two, verify_board(doc, workers=1))
    entries = doc["entries"]
    entries[10]["payload"]["weight"] += 1
    entries[3000]["payload"]["ballot"]["answers"]["lift"] = ["maybe"]
    entries[4000]["payload"]["ballot"]["nonce"] = "zz"
    entries[-3]["payload"]["signature"] = "00" * 64
    two = verify_json(_compact(doc), workers=2)
    _same_reports(two, verify_board(doc, workers=1))
    assert {p.position for p in two.problems} >= {10, 3000, 4000, len(entries) - 3}
    entries[0]["payload"]["manifest"] = "gone"  # no round hash from entry 0: the late path
    two = verify_json(_compact(doc), workers=2)
    assert not two.ok
    _same_reports(two, verify_board(doc, workers=1))
    # A key twice, in entries that different workers check: reported once, as in-process.
    text = _compact(w.board()).decode()
    for credential in (text.rindex('"custodial":'), text.index('"custodial":', 10_000)):
        text = text[:credential] + '"custodial":7,' + text[credential:]
    two, one = verify_json(text, workers=2), verify_json(text, workers=1)
    assert two.problems == one.problems and two.summary == one.summary
    assert [p.reason for p in two.problems].count(verifier.DUPLICATED_KEYS) == 1
    assert two.problems[0] == verifier.Problem("board", verifier.DUPLICATED_KEYS)


def test_a_worker_killed_during_the_parse_leaves_the_checks_to_the_parent(monkeypatch):
    import os
    import signal
    import time

    real = verifier._start_workers

    def start_and_kill(text, workers):
        pool = real(text, workers)
        victim = next(iter(pool._processes.values()))
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(10)
        for _ in range(100):  # the pool notices the death on its own thread
            if pool._broken:
                break
            time.sleep(0.05)
        return pool

    monkeypatch.setattr(verifier, "_start_workers", start_and_kill)
    doc = copy.deepcopy(large_round().board())
    doc["entries"][3000]["payload"]["ballot"]["answers"]["lift"] = ["maybe"]
    report = verify_json(_compact(doc), workers=2)
    no_last_resort(report)
    _same_reports(report, verify_board(doc, workers=1))
    assert 3000 in {p.position for p in report.problems}


def test_small_boards_are_checked_in_process(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("no worker processes for a small board")

    monkeypatch.setattr(verifier, "ProcessPoolExecutor", refuse)
    assert verify_board(the_round().copy(), workers=2).ok


def test_the_fast_ballot_message_is_the_signed_message():
    """The verifier takes canonical(ballot) out of canonical(payload); check that it is."""
    from crypto.board import canonical

    for entry in large_round().entries[:200] + the_round().board["entries"]:
        if entry["type"] != "ballot":
            continue
        encoded = canonical(entry["payload"])
        cut = encoded[10 : encoded.rindex(b',"channel":')]
        assert verifier._BALLOT_PREFIX + cut == signed_message("ballot", entry["payload"]["ballot"])


# ---------------------------------------------------------------- the writer refuses


def test_the_writer_refuses_what_the_server_would():
    w = RoundWriter(manifest(), ROUND_SEED)
    with pytest.raises(ValueError, match="round is setup"):
        w.register(100, unit="1")
    w.open(OPENED)
    old = w.register(100, unit="1")
    new = w.register(100, unit="1", revokes=old)
    with pytest.raises(ValueError, match="revoked"):
        w.cast(old, {"plants": [], "colour": [], "lift": ["yes"]})
    with pytest.raises(ValueError, match="blank"):
        w.cast(new, {"plants": [], "colour": [], "lift": []})
    w.cast(new, {"plants": [], "colour": [], "lift": ["yes"]}, nonce="11" * 16)
    with pytest.raises(ValueError, match="nonce"):
        w.cast(new, {"plants": [], "colour": [], "lift": ["no"]}, nonce="11" * 16)
    with pytest.raises(ValueError, match="secret round|named round"):
        w.register(100)
    with pytest.raises(ValueError, match="entered_by"):
        w.cast(new, {"plants": [], "colour": [], "lift": ["no"]}, channel="paper")
    w.close(CLOSED)
    with pytest.raises(ValueError, match="closed"):
        w.cast(new, {"plants": [], "colour": [], "lift": ["no"]})


def test_the_benchmark_ends_with_its_json_line(capsys):
    from bench import verify as bench

    bench.main(["--ballots", "300", "--workers", "1"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    figures = json.loads(last)
    assert figures["ballots"] == 300 and figures["entries"] == 2 + 270 + 300 + 2
    assert figures["seconds"] > 0 and figures["ballots_per_s"] > 0
    assert figures["runs"][0]["ok"] is True and figures["runs"][0]["counted"] == 270
