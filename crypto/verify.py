"""The standalone verifier of a round's ballot board (docs/ballot-format.md, section 7).

    python -m crypto.verify board.json [--receipt receipt.json ...] [--json] [--workers N]

prints every problem as `entry N: reason` (N is the entry's position in `entries`),
`board: reason` or `receipt FILE: reason`, then a summary; it exits 0 when the board (and
every receipt given) is valid, 1 when anything is wrong and 2 when an input cannot be read
as JSON at all. A receipt file holds one receipt object or a list of them.

From Python: `verify_board(document, receipts=(), workers=None) -> Report` for a parsed
document, `verify_json(text, ...)` and `verify_file(path, ...)` for JSON text (faster: the
parser proves that no value needs the float check, and finds duplicated keys).

PyNaCl, the standard library, crypto.board and crypto.tally only. The checks of single
entries (canonical encoding, payload and chain hash, Ed25519 signatures, answers) run in
forked worker processes over ranges of entries, each sending back only the problems it
found, while the parent walks the board in order (entry order, credentials, revocations,
nonces, counting, the recount). From JSON text the workers are forked before the parse:
they inherit the text, get the places of the entries as the parse finds them, and check a
credential or online ballot entry in the server's compact form on its text (which is then
its payload's canonical encoding, matched by one regular expression); any other entry
they parse and check in full. From a parsed board they inherit the parsed entries."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import multiprocessing
import os
import re
import sys
import threading
from array import array
from binascii import unhexlify
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from nacl.bindings import crypto_core_ed25519_is_valid_point, crypto_sign_open

from crypto import tally as tallying
from crypto.board import (
    ENTRY_TYPES,
    FORMAT_VERSION,
    GENESIS,
    PERSON_BALLOT,
    PERSON_PAYLOAD,
    PERSON_ROUND,
    EncodingError,
    canonical,
    chain_hash,
    digest,
    signed_message,
)

BOARD_FORMAT = "yishi-board"
CHANNELS = ("online", "paper", "proxy")
OUTCOMES = ("final", "annulled")
SECRECY = ("secret", "named")
ELECTORATES = ("residents", "owners", "households")
METHODS = tallying.METHODS
RULES = tallying.RULES
YES_NO_OPTIONS = ("yes", "no", "abstain")
PARALLEL_FROM = 2000  # entries; smaller boards are checked in-process
PARALLEL_TEXT = 1_000_000  # characters of JSON: workers are forked only for larger texts
CHUNKS_PER_WORKER = 24  # small spans: the workers finish together
MAX_DIGITS = 4000  # longer integers are reported, not converted (Python refuses > 4300)

DOCUMENT_KEYS = frozenset({"format", "version", "round", "entries", "head"})
ENTRY_KEYS = frozenset({"n", "type", "payload", "hash"})
HEAD_KEYS = frozenset({"round", "n", "hash", "signature"})
RECEIPT_KEYS = frozenset({"round", "n", "ballot", "head", "signature"})
MANIFEST_KEYS = frozenset(
    {
        "version",
        "round_id",
        "community",
        "title",
        "explanation",
        "scope",
        "opens_at",
        "closes_at",
        "secrecy",
        "electorate",
        "questions",
        "round_key",
    }
)
QUESTION_KEYS = frozenset({"id", "title", "method", "max_choices", "options", "rule", "proposal"})
PAYLOAD_KEYS = {
    "setup": frozenset({"manifest", "signature"}),
    "open": frozenset({"opened_at"}),
    "credential": frozenset({"key", "weight", "unit", "custodial", "revokes"}),
    "ballot": frozenset({"ballot", "signature", "channel", "entered_by"}),
    "close": frozenset({"closed_at", "ballots"}),
    "result": frozenset({"result", "signature"}),
    "final": frozenset({"outcome", "at", "reason"}),
}
assert set(PAYLOAD_KEYS) == set(ENTRY_TYPES)  # one payload shape per type of crypto.board
BALLOT_KEYS = frozenset({"round", "credential", "nonce", "answers"})
STATEMENT_KEYS = frozenset({"round", "board", "credentials", "counted", "questions"})

DUPLICATED_KEYS = "an object has the same key twice (JSON parsers disagree on it)"
BAD_BALLOT_SIGNATURE = "the ballot signature does not verify under its credential key"
CHAIN_BROKEN = (
    "the chain hash does not match: the entry was changed, or an entry before it was "
    "removed, inserted or moved"
)

_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_is_hex32, _is_hex64, _is_hex128 = _HEX32.fullmatch, _HEX64.fullmatch, _HEX128.fullmatch
# canonical() without its float check: the same json.dumps arguments, built once.
_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
).encode
_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")


# ---------------------------------------------------------------- the report


@dataclass(frozen=True)
class Problem:
    """`position`: the entry's index in `entries` (an int), "board", or "receipt NAME"."""

    position: int | str
    reason: str

    def __str__(self) -> str:
        where = f"entry {self.position}" if isinstance(self.position, int) else self.position
        return f"{where}: {self.reason}"


@dataclass
class Report:
    ok: bool
    problems: list[Problem] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def at(self, position: int | str) -> list[str]:
        """The reasons reported for one position."""
        return [p.reason for p in self.problems if p.position == position]

    def as_json(self) -> dict:
        return {
            "ok": self.ok,
            "problems": [{"position": p.position, "reason": p.reason} for p in self.problems],
            "summary": self.summary,
        }


class Unreadable(Exception):
    """An input that is not JSON at all (exit status 2)."""


# ---------------------------------------------------------------- small checks


def _is_int(value) -> bool:
    return type(value) is int  # not bool, not float


def _hex(pattern: re.Pattern, value) -> bool:
    return type(value) is str and pattern.fullmatch(value) is not None


def _time(value) -> datetime | None:
    """A board time `YYYY-MM-DDTHH:MM:SSZ` as a naive UTC datetime, or None."""
    if type(value) is not str:
        return None
    match = _TIME.fullmatch(value)
    if match is None:
        return None
    try:
        return datetime(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def _keys(value: dict, expected: frozenset, what: str) -> list[str]:
    if value.keys() == expected:
        return []
    problems = []
    missing = sorted(expected - value.keys())
    extra = sorted(json.dumps(key) for key in value.keys() - expected)
    if missing:
        problems.append(f"{what} lacks {', '.join(missing)}")
    if extra:
        problems.append(f"{what} has unexpected {', '.join(extra)}")
    return problems


def _signature_ok(key: bytes, purpose: str, value, signature_hex: str) -> bool:
    try:
        crypto_sign_open(bytes.fromhex(signature_hex) + signed_message(purpose, value), key)
    except Exception:  # BadSignatureError, or a value outside the canonical subset
        return False
    return True


def _signed_bytes_ok(key: bytes, message: bytes, signature_hex: str) -> bool:
    try:
        crypto_sign_open(bytes.fromhex(signature_hex) + message, key)
    except Exception:
        return False
    return True


def _valid_point(key_hex: str) -> bool:
    try:
        return bool(crypto_core_ed25519_is_valid_point(bytes.fromhex(key_hex)))
    except Exception:
        return False


def manifest_problems(manifest) -> list[str]:
    """What is wrong with a round manifest (section 2); [] when nothing is."""
    if type(manifest) is not dict:
        return ["the manifest is not an object"]
    problems = _keys(manifest, MANIFEST_KEYS, "the manifest")
    get = manifest.get
    if get("version") != FORMAT_VERSION or not _is_int(get("version")):
        problems.append(f"manifest version must be {FORMAT_VERSION}")
    if not _is_int(get("round_id")):
        problems.append("round_id must be an integer")
    for name in ("community", "title", "explanation", "scope"):
        if type(get(name)) is not str:
            problems.append(f"manifest {name} must be a string")
    opens, closes = _time(get("opens_at")), _time(get("closes_at"))
    if opens is None or closes is None:
        problems.append("opens_at and closes_at must be times YYYY-MM-DDTHH:MM:SSZ")
    elif closes < opens:
        problems.append("closes_at is before opens_at")
    if get("secrecy") not in SECRECY:
        problems.append("secrecy must be secret or named")
    electorate = get("electorate")
    if type(electorate) is not dict:
        problems.append("the electorate is not an object")
    else:
        problems += _keys(electorate, frozenset({"kind", "voters", "weight"}), "the electorate")
        if electorate.get("kind") not in ELECTORATES:
            problems.append("electorate kind must be residents, owners or households")
        for name in ("voters", "weight"):
            value = electorate.get(name)
            if not _is_int(value) or value < 0:
                problems.append(f"electorate {name} must be a non-negative integer")
    if not _hex(_HEX64, get("round_key")):
        problems.append("round_key must be 64 lower-case hex characters")
    questions = get("questions")
    if type(questions) is not list or not questions:
        problems.append("questions must be a non-empty list")
        return problems
    for index, question in enumerate(questions):
        problems += [f"question {index + 1}: {p}" for p in _question_problems(question)]
    ids = [q.get("id") for q in questions if type(q) is dict]
    if len(ids) == len(questions) and len(set(map(str, ids))) != len(ids):
        problems.append("question ids must be unique within the round")
    if not problems:
        try:
            tallying.tally(manifest, [])
        except Exception as exc:
            problems.append(f"the recount refuses the manifest: {exc}")
    return problems


def _question_problems(question) -> list[str]:
    if type(question) is not dict:
        return ["not an object"]
    problems = _keys(question, QUESTION_KEYS, "it")
    qid, method = question.get("id"), question.get("method")
    if type(qid) is not str or not qid:
        problems.append("its id must be a non-empty string")
    if type(question.get("title")) is not str:
        problems.append("its title must be a string")
    if method not in METHODS:
        problems.append("method must be yes_no_abstain, single or approval")
    max_choices = question.get("max_choices")
    if method == "approval":
        if not _is_int(max_choices) or max_choices < 1:
            problems.append("max_choices must be a positive integer")
    elif max_choices != 1 or not _is_int(max_choices):
        problems.append("max_choices must be 1 for this method")
    options = question.get("options")
    if type(options) is not list or not options:
        problems.append("options must be a non-empty list")
    else:
        ids = []
        for option in options:
            if type(option) is not dict or option.keys() != {"id", "label"}:
                problems.append("every option is an object with exactly id and label")
                break
            oid = option["id"]
            if type(oid) is not str or not oid or not oid.isascii():
                problems.append("option ids must be non-empty ASCII strings")
                break
            if type(option["label"]) is not str:
                problems.append("option labels must be strings")
                break
            ids.append(oid)
        else:
            if len(set(ids)) != len(ids):
                problems.append("option ids must be unique")
            if method == "yes_no_abstain" and sorted(ids) != sorted(YES_NO_OPTIONS):
                problems.append("yes_no_abstain options must be exactly yes, no and abstain")
    rule = question.get("rule")
    if type(rule) is not dict:
        problems.append("the rule is not an object")
    else:
        problems += _keys(rule, frozenset({"kind", "quorum"}), "the rule")
        if rule.get("kind") not in RULES:
            problems.append("unknown rule kind")
        quorum = rule.get("quorum")
        if quorum is not None and not (
            type(quorum) is list
            and len(quorum) == 2
            and all(_is_int(x) for x in quorum)
            and quorum[1] >= 1
            and 0 <= quorum[0] <= quorum[1]
        ):
            problems.append("quorum must be null or [num, den] with 0 <= num <= den, den > 0")
    proposal = question.get("proposal")
    if proposal is not None and not _is_int(proposal):
        problems.append("proposal must be an integer or null")
    return problems


# ---------------------------------------------------------------- checks of one entry


class _Context:
    """What the check of a single entry needs: fixed before the workers fork."""

    def __init__(self, round_hex, round_key, manifest, named, checked) -> None:
        self.round_hex: str | None = round_hex
        self.round_key: bytes | None = round_key
        self.manifest: dict | None = manifest  # None when the manifest is unusable
        self.named: bool = named
        self.checked: bool = checked  # False: parsed from JSON without floats
        self.answers: dict = {}  # cache: answers as tuples -> problem
        self.text_answers: dict = {}  # cache: answers as text -> problem
        # A whole credential or online ballot entry as the server writes it (keys n, type,
        # payload, hash in this order, no spaces, a well-formed canonical payload): such an
        # entry passes every check of its shape. Groups: 1 n, 2 a ballot payload, 3-6 its
        # ballot, answers, credential and signature, 7 a credential payload, 8 the hash.
        ok = type(round_hex) is str and _is_hex64(round_hex)
        ballot = _BALLOT_SHAPE.replace("ROUND", round_hex if ok else "(?!)")  # (?!): none
        self.entry_text = re.compile(
            r'\{"n":(0|[1-9][0-9]{0,19}),"type":"(?:ballot","payload":('
            + ballot
            + r')|credential","payload":('
            + _CREDENTIAL_SHAPE.replace("UNIT", _UNIT if named else "null")
            + r')),"hash":"([0-9a-f]{64})"\}'
        )


# Canonical JSON (sorted keys, no whitespace, ASCII) of the payloads that need no check but
# the answers, the signature and the chain: see _check_text. A string is matched only in
# its canonical form (json.dumps with ensure_ascii: printable ASCII as is, the short escapes
# for " \\ \b \f \n \r \t, a \\u escape of four lower-case hex digits for any other
# character), so that the text of a board that matches is the canonical encoding of what it
# parses to.
_CHAR = (
    r'[ !#-\[\]-~]|\\(?:["\\bfnrt]|u(?:00(?:0[0-7bef]|1[0-9a-f]|7f|[89a-f][0-9a-f])'
    r"|0[1-9a-f][0-9a-f]{2}|[1-9a-f][0-9a-f]{3}))"
)
_STRING = f'"(?:{_CHAR})*+"'
_UNIT = f'"(?:{_CHAR})++"'  # not empty
_ANSWER_LIST = rf"\[(?:{_STRING}(?:,{_STRING})*+)?\]"
_ANSWERS = rf"\{{(?:{_STRING}:{_ANSWER_LIST}(?:,{_STRING}:{_ANSWER_LIST})*+)?\}}"
_BALLOT_SHAPE = (
    r'\{"ballot":(\{"answers":(' + _ANSWERS + r'),"credential":"([0-9a-f]{64})",'
    r'"nonce":"[0-9a-f]{32}","round":"ROUND"\}),"channel":"online","entered_by":null,'
    r'"signature":"([0-9a-f]{128})"\}'
)
_CREDENTIAL_SHAPE = (
    r'\{"custodial":(?:true|false),"key":"[0-9a-f]{64}","revokes":(?:null|"[0-9a-f]{64}"),'
    r'"unit":UNIT,"weight":(?:0|[1-9][0-9]*+)\}'
)


def _answers_problem(ctx: _Context, answers) -> str | None:
    if ctx.manifest is None:
        return None  # reported once, at entry 0
    # Equal keys mean equal answers for the check: strings compare only with strings, and
    # where a non-string stands (1, True, 1.0 compare equal) the answer is wrong alike.
    key = _answers_key(answers)
    if key is not None:
        try:
            return ctx.answers[key]
        except (KeyError, TypeError):  # TypeError: unhashable, e.g. a list in a list
            pass
    problem = _answers_verdict(ctx, answers)
    if key is not None and len(ctx.answers) < 100_000:
        with contextlib.suppress(TypeError):
            ctx.answers[key] = problem
    return problem


def _answers_verdict(ctx: _Context, answers) -> str | None:
    try:
        return tallying.ballot_problem(ctx.manifest, answers)
    except Exception as exc:
        return f"cannot be checked ({exc})"


def _answers_key(answers) -> tuple | None:
    if type(answers) is not dict:
        return None
    key = []
    for question, answer in answers.items():
        if type(answer) is not list:
            return None
        key.append(question)
        key.append(tuple(answer))
    return tuple(key)


def _check_open(payload: dict, ctx: _Context, encoded) -> list[str]:
    if _time(payload.get("opened_at")) is None:
        return ["opened_at is not a time YYYY-MM-DDTHH:MM:SSZ"]
    return []


def _check_credential(payload: dict, ctx: _Context, encoded) -> list[str]:
    problems = []
    key, weight, unit = payload.get("key"), payload.get("weight"), payload.get("unit")
    if type(key) is not str or _is_hex64(key) is None:
        problems.append("the credential key is not 64 lower-case hex characters")
    if type(weight) is not int or weight < 0:
        problems.append("the weight must be a non-negative integer")
    if ctx.named:
        if type(unit) is not str or not unit:
            problems.append("a named round's credential must name its unit")
    elif unit is not None:
        problems.append("a secret round's credential must not name a unit")
    if type(payload.get("custodial")) is not bool:
        problems.append("custodial must be true or false")
    revokes = payload.get("revokes")
    if revokes is not None and (type(revokes) is not str or _is_hex64(revokes) is None):
        problems.append("revokes must be null or a public key (64 lower-case hex)")
    return problems


def _check_ballot(payload: dict, ctx: _Context, encoded) -> list[str]:
    problems = []
    get = payload.get
    channel, entered_by, signature = get("channel"), get("entered_by"), get("signature")
    if channel == "online":
        if entered_by is not None:
            problems.append("an online ballot has no entered_by")
    elif channel not in CHANNELS:
        problems.append("channel must be online, paper or proxy")
    elif type(entered_by) is not str or not entered_by:
        problems.append(f"a {channel} ballot must name who entered it (entered_by)")
    if type(signature) is not str or _is_hex128(signature) is None:
        problems.append("the signature is not 128 lower-case hex characters")
        signature = None
    body = get("ballot")
    if type(body) is not dict:
        return [*problems, "the ballot is not an object"]
    if body.keys() != BALLOT_KEYS:
        problems += _keys(body, BALLOT_KEYS, "the ballot")
    get = body.get
    credential, nonce = get("credential"), get("nonce")
    if get("round") != ctx.round_hex:
        problems.append("the ballot is for another round (its round is not the round hash)")
    if type(credential) is not str or _is_hex64(credential) is None:
        problems.append("the ballot's credential is not 64 lower-case hex characters")
        credential = None
    if type(nonce) is not str or _is_hex32(nonce) is None:
        problems.append("the nonce is not 32 lower-case hex characters")
    if "answers" in body:
        problem = _answers_problem(ctx, body["answers"])
        if problem is not None:
            problems.append(f"answers: {problem}")
    if credential is not None and signature is not None and encoded is not None:
        if payload.keys() == PAYLOAD_KEYS["ballot"]:
            # canonical(payload) is {"ballot":<canonical(body)>,"channel":...}: inside a
            # string a quote is always escaped, so the last ,"channel": ends the body.
            message = _BALLOT_PREFIX + encoded[10 : encoded.rindex(b',"channel":')]
        else:
            message = signed_message("ballot", body)
        if not _signed_bytes_ok(bytes.fromhex(credential), message, signature):
            problems.append(BAD_BALLOT_SIGNATURE)
    return problems


_BALLOT_PREFIX = b"yishi-v1/ballot\n"


def _check_close(payload: dict, ctx: _Context, encoded) -> list[str]:
    problems = []
    if _time(payload.get("closed_at")) is None:
        problems.append("closed_at is not a time YYYY-MM-DDTHH:MM:SSZ")
    ballots = payload.get("ballots")
    if not _is_int(ballots) or ballots < 0:
        problems.append("ballots must be a non-negative integer")
    return problems


def _check_result(payload: dict, ctx: _Context, encoded) -> list[str]:
    signature = payload.get("signature")
    if not _hex(_HEX128, signature):
        return ["the result signature is not 128 lower-case hex characters"]
    if (
        ctx.round_key is None
        or encoded is None
        or not _signature_ok(ctx.round_key, "result", payload.get("result"), signature)
    ):
        return ["the result signature does not verify under the round key"]
    return []


def _check_final(payload: dict, ctx: _Context, encoded) -> list[str]:
    problems = []
    if payload.get("outcome") not in OUTCOMES:
        problems.append("outcome must be final or annulled")
    if _time(payload.get("at")) is None:
        problems.append("at is not a time YYYY-MM-DDTHH:MM:SSZ")
    if type(payload.get("reason")) is not str:
        problems.append("reason must be a string")
    return problems


_CHECKS = {
    "open": _check_open,
    "credential": _check_credential,
    "ballot": _check_ballot,
    "close": _check_close,
    "result": _check_result,
    "final": _check_final,
}


def _hash_of(entry) -> object:
    """An entry's stated hash as parsed (any value, or None), for its successor's check."""
    return entry.get("hash") if type(entry) is dict else None


def _hash_before(entries: list, start: int) -> str | None:
    """The stated hash of entry start - 1 for a worker, None where there is no hash string
    (the same to the checks as any other value, and small to send)."""
    before = _hash_of(entries[start - 1]) if start else None
    return before if type(before) is str else None


def _check_one(entry, i: int, before, ctx: _Context) -> list[str]:
    """Everything about entry i that needs no other entry but `before`, its predecessor's
    stated hash (unused for entry 0)."""
    if type(entry) is not dict:
        return ["the entry is not an object"]
    problems = [] if entry.keys() == ENTRY_KEYS else _keys(entry, ENTRY_KEYS, "the entry")
    get = entry.get
    kind, payload, stated, n = get("type"), get("payload"), get("hash"), get("n")
    expected = PAYLOAD_KEYS.get(kind) if type(kind) is str else None
    if expected is None:
        problems.append(f"unknown entry type {str(kind)[:40]!r}")
    stated_ok = type(stated) is str and _is_hex64(stated) is not None
    if not stated_ok:
        problems.append("the hash is not 64 lower-case hex characters")
    if type(payload) is not dict:
        return [*problems, "the payload is not an object"]
    encoded = None
    try:
        # Without floats in the parsed JSON the subset check is moot: encode right away.
        encoded = canonical(payload) if ctx.checked else _encode(payload).encode("ascii")
    except (EncodingError, ValueError, TypeError) as exc:
        problems.append(f"the payload is outside the canonical JSON subset: {exc}")
    except RecursionError:
        problems.append("the payload is nested too deeply")
    if expected is not None:
        if payload.keys() != expected:
            problems += _keys(payload, expected, f"the {kind} payload")
        check = _CHECKS.get(kind)
        if check is not None:
            found = check(payload, ctx, encoded)
            if found:
                problems += found
        numbered = type(n) is int and 0 <= n < 2**64
        if (
            encoded is not None
            and stated_ok
            and numbered
            and not _chained(i, before, n, kind, encoded, stated)
        ):
            problems.append(CHAIN_BROKEN)
    return problems


def _chained(i: int, before, n: int, kind: str, encoded: bytes, stated: str) -> bool:
    """Whether the stated hash of entry i follows from `before`, its predecessor's (True
    when the predecessor's own hash is malformed: that is reported at the predecessor)."""
    if i == 0:
        previous = GENESIS
    else:
        if type(before) is not str or _is_hex64(before) is None:
            return True
        previous = bytes.fromhex(before)
    return chain_hash(previous, n, kind, digest(PERSON_PAYLOAD, encoded)).hex() == stated


def _ballot_problems(groups: tuple, ctx: _Context) -> list[str] | None:
    """The answers and the signature of a ballot entry that matched ctx.entry_text: `groups`
    are the texts of its ballot, answers, credential and signature. None when its answers
    are not in canonical form (their keys out of order, or twice), for the full checks."""
    problems = []
    body, answers, credential, signature = groups
    problem = ctx.text_answers.get(answers, _UNKNOWN)
    if problem is _UNKNOWN:
        value = json.loads(answers)
        if _encode(value) != answers:
            problem = _NOT_CANONICAL
        elif ctx.manifest is not None:
            problem = _answers_verdict(ctx, value)
        else:
            problem = None  # reported once, at entry 0
        if len(ctx.text_answers) < 100_000:
            ctx.text_answers[answers] = problem
    if problem is _NOT_CANONICAL:
        return None
    if problem is not None:
        problems.append(f"answers: {problem}")
    message = _BALLOT_PREFIX + body.encode("ascii")
    try:
        crypto_sign_open(unhexlify(signature) + message, unhexlify(credential))
    except Exception:  # BadSignatureError, or a key that is not a point
        problems.append(BAD_BALLOT_SIGNATURE)
    return problems


_NOT_CANONICAL = object()
_UNKNOWN = object()


def _guarded(entry, i: int, before, ctx: _Context) -> list[str]:
    try:
        return _check_one(entry, i, before, ctx)
    except Exception as exc:  # never give up on a board because of one entry
        return [f"cannot be checked: {type(exc).__name__}: {str(exc)[:200]}"]


def _check_span(entries: list, ctx: _Context, start: int, stop: int) -> list[tuple[int, str]]:
    found = []
    before = _hash_of(entries[start - 1]) if start else None
    for i in range(start, stop):
        entry = entries[i]
        found.extend((i, reason) for reason in _guarded(entry, i, before, ctx))
        before = _hash_of(entry)
    return found


def _check_text(text: str, first: int, offsets, before, ctx: _Context) -> list[tuple]:
    """The problems _check_span finds in the entries first, first + 1, ..., the JSON text
    of each being text[offsets[2k]:offsets[2k + 1]]; `before` is the stated hash of entry
    first - 1. A credential or online ballot entry as the server writes it (ctx.entry_text)
    is checked on its text: that text is the payload's canonical encoding, nothing needs
    parsing or encoding again. Any other entry is parsed and given the full checks, and
    the problem ("board", DUPLICATED_KEYS) is found once if one has an object with the
    same key twice: the scan of the entries does not look for that (_scan)."""
    found = []
    match = ctx.entry_text.fullmatch
    previous = None  # the bytes of `before`, once known
    duplicated = False
    for k in range(0, len(offsets), 2):
        i = first + k // 2
        start, end = offsets[k], offsets[k + 1]
        reasons = None
        entry = match(text, start, end)
        if entry is not None and (n := int(entry[1])) < 2**64:
            if entry.start(2) >= 0:
                kind, payload = "ballot", entry.span(2)
                reasons = _ballot_problems(entry.group(3, 4, 5, 6), ctx)
            else:
                kind, payload, reasons = "credential", entry.span(7), []
        if reasons is not None:
            stated = entry[8]
            if i == 0:
                previous = GENESIS
            elif previous is None and type(before) is str and _is_hex64(before):
                previous = bytes.fromhex(before)
            if previous is not None:
                encoded = text[payload[0] : payload[1]].encode("ascii")
                value = chain_hash(previous, n, kind, digest(PERSON_PAYLOAD, encoded))
                if value.hex() != stated:
                    reasons.append(CHAIN_BROKEN)
                    value = bytes.fromhex(stated)
            else:
                value = bytes.fromhex(stated)
            before, previous = stated, value
        else:
            parsed, flags = None, _Parsed()
            try:
                parsed = load_json(text[start:end], flags)
            except Unreadable as exc:  # cannot be: the whole text was parsed
                reasons = [f"cannot be checked: {exc}"]
            else:
                reasons = _guarded(parsed, i, before, ctx)
            if flags.duplicates and not duplicated:
                found.append(("board", DUPLICATED_KEYS))  # the scan did not look for them
                duplicated = True
            before, previous = _hash_of(parsed), None
        if reasons:
            found.extend((i, reason) for reason in reasons)
    return found


_FORKED: tuple[list, _Context] | None = None  # what forked workers inherit
_FORKED_TEXT: str | None = None  # the board's text, for workers forked before the parse
_FORKING = threading.Lock()  # held while _FORKED or _FORKED_TEXT is set and workers fork


def _forked_span(span: tuple[int, int]) -> list[tuple[int, str]]:
    entries, ctx = _FORKED
    return _check_span(entries, ctx, *span)


def _forked_text(first: int, offsets, before, ctx: _Context) -> list[tuple[int, str]]:
    return _check_text(_FORKED_TEXT, first, offsets, before, ctx)


class _Done:
    def __init__(self, found: list) -> None:
        self.found = found

    def result(self) -> list[tuple[int, str]]:
        return self.found

    def close(self) -> None:
        pass


class _Pending:
    """The workers' problems, to be waited for; close() ends the workers in any case."""

    def __init__(self, pool: ProcessPoolExecutor, futures: list, redo: Callable) -> None:
        self.pool, self.futures, self.redo = pool, futures, redo  # redo: all, here

    def result(self) -> list[tuple[int, str]]:
        found = []
        try:
            for future in self.futures:
                found.extend(future.result())
        except Exception:  # a worker died (killed, out of memory): check here instead
            found = self.redo()
        finally:
            self.close()
        return found

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _spans(entries: list, chunks: int) -> list[tuple[int, int]]:
    """Ranges of about equal work: a ballot (an Ed25519 verification) costs about ten
    other entries."""
    costs = [10 if type(e) is dict and e.get("type") == "ballot" else 1 for e in entries]
    share = max(1, sum(costs) // chunks)
    spans, start, load = [], 0, 0
    for i, cost in enumerate(costs):
        load += cost
        if load >= share:
            spans.append((start, i + 1))
            start, load = i + 1, 0
    if start < len(entries):
        spans.append((start, len(entries)))
    return spans


def _entry_problems(entries: list, ctx: _Context, workers: int, text=None) -> _Done | _Pending:
    """Start the single-entry checks: in forked worker processes, or done here for one
    worker or a small board (or where fork does not exist). `text`: a _Text of the board's
    JSON, its entries' places and its workers when there are (then the checks read the
    text, and the workers need nothing of the parsed board)."""
    total = len(entries)
    if text is not None and len(text.offsets) == 2 * total:
        redo = partial(_check_text, text.text, 0, text.offsets, None, ctx)
        if not text.late and text.sent == total:  # all handed to the workers already
            return _Pending(text.pool, text.futures, redo)
        if text.pool is None or total < PARALLEL_FROM:
            return _Done(redo())
        futures = []
        try:
            for start, stop in _spans(entries, workers * CHUNKS_PER_WORKER):
                offsets = text.offsets[2 * start : 2 * stop]
                before = _hash_before(entries, start)
                futures.append(text.pool.submit(_forked_text, start, offsets, before, ctx))
        except Exception:  # a worker died (the pool is broken): check here
            return _Done(redo())
        return _Pending(text.pool, futures, redo)
    if (
        workers <= 1
        or total < PARALLEL_FROM
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        return _Done(_check_span(entries, ctx, 0, total))
    global _FORKED
    spans = _spans(entries, workers * CHUNKS_PER_WORKER)
    # The children's collector then leaves the inherited objects (and their pages) alone;
    # not when the caller froze objects of its own, which unfreeze() would thaw.
    freeze = gc.get_freeze_count() == 0
    pool = None
    with _FORKING:
        _FORKED = (entries, ctx)
        if freeze:
            gc.freeze()
        try:
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
            futures = [pool.submit(_forked_span, span) for span in spans]  # forks them all
        except Exception:  # no processes here (a daemonic process, a limit): check here
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            return _Done(_check_span(entries, ctx, 0, total))
        finally:
            _FORKED = None
            if freeze:
                gc.unfreeze()
    return _Pending(pool, futures, partial(_check_span, entries, ctx, 0, total))


# ---------------------------------------------------------------- the board in order


class _Walk:
    """The parent's pass over the board in order, then the counting and the recount."""

    def __init__(self, document: dict, receipts, workers: int, checked: bool, text=None) -> None:
        self.document = document
        self.text = text
        self.receipts = receipts
        self.workers = workers
        self.checked = checked
        self.problems: list[Problem] = []
        self.bad: set[int] = set()
        self.summary: dict = {}
        self.manifest: dict | None = None
        self.round_hex: str | None = None

    def report(self, position: int | str, reason: str, spoils: bool = True) -> None:
        """`spoils`: the entry itself is invalid, so it registers or counts nothing. A broken
        chain or numbering is a problem of the board, not of the entry: a recount of the
        entries as they are shows what a removed or inserted entry changed."""
        self.problems.append(Problem(position, reason))
        if spoils and isinstance(position, int):
            self.bad.add(position)

    # -- the document and entry 0

    def run(self) -> Report:
        document = self.document
        if type(document) is not dict:
            self.report("board", "the board is not a JSON object")
            return self.finish()
        for reason in _keys(document, DOCUMENT_KEYS, "the board"):
            self.report("board", reason)
        if document.get("format") != BOARD_FORMAT:
            self.report("board", f'format must be "{BOARD_FORMAT}"')
        if document.get("version") != FORMAT_VERSION or not _is_int(document.get("version")):
            self.report("board", f"version must be {FORMAT_VERSION}")
        entries = document.get("entries")
        if type(entries) is not list or not entries:
            self.report("board", "entries must be a non-empty list")
            return self.finish()
        self.entries = entries
        ctx = self.setup(entries[0])
        pending = _entry_problems(entries, ctx, self.workers, self.text)
        try:
            self.walk(entries, ctx)
            # Meanwhile, count as if the workers found nothing wrong; again if they did.
            state = self.recount(entries)
            found = pending.result()
        finally:
            pending.close()
        spoiled = False
        for i, reason in found:
            if type(i) is not int:  # of the board: from each worker that saw it
                if Problem(i, reason) not in self.problems:
                    self.report(i, reason)
                continue
            spoils = reason != CHAIN_BROKEN
            self.report(i, reason, spoils=spoils)
            spoiled = spoiled or spoils
        if spoiled or state is None:
            state = self.recount(entries)
        self.problems.sort(key=_order)
        self.count(entries, ctx, state)
        self.check_head(entries, ctx)
        for name, receipt in self.receipts:
            self.check_receipt(name, receipt, entries, ctx)
        return self.finish()

    def setup(self, entry) -> _Context:
        """Entry 0: the manifest, its signature and the round hash."""
        document = self.document
        stated_round = document.get("round")
        if not _hex(_HEX64, stated_round):
            self.report("board", "round is not 64 lower-case hex characters")
            stated_round = None
        payload = entry.get("payload") if type(entry) is dict else None
        manifest = payload.get("manifest") if type(payload) is dict else None
        if type(entry) is not dict or entry.get("type") != "setup" or type(manifest) is not dict:
            self.report(0, "entry 0 must be the setup entry with the manifest")
            self.round_hex = stated_round
            return _Context(stated_round, None, None, False, self.checked)
        problems = manifest_problems(manifest)
        for reason in problems:
            self.report(0, f"manifest: {reason}")
        round_key = manifest.get("round_key")
        round_key = bytes.fromhex(round_key) if _hex(_HEX64, round_key) else None
        try:
            computed = digest(PERSON_ROUND, canonical(manifest)).hex()
        except (EncodingError, ValueError, TypeError, RecursionError):
            computed = None  # the check of entry 0 reports the encoding
        if computed is not None and stated_round is not None and computed != stated_round:
            self.report("board", "round is not the round hash of the manifest in entry 0")
        signature = payload.get("signature")
        if round_key is None or not _valid_point(manifest["round_key"]):
            self.report(0, "the round key is not a valid Ed25519 public key")
            round_key = None
        elif not _hex(_HEX128, signature) or not _signature_ok(
            round_key, "manifest", manifest, signature
        ):
            self.report(0, "the manifest signature does not verify under the round key")
        self.manifest = None if problems else manifest
        self.round_hex = computed or stated_round
        named = manifest.get("secrecy") == "named"
        return _Context(self.round_hex, round_key, self.manifest, named, self.checked)

    # -- order, credentials, ballots

    def walk(self, entries: list, ctx: _Context) -> None:
        """Entry order, numbering, credentials, revocations, nonces, the close's count. The
        entries' own shapes are the workers' to report: here a malformed value is skipped."""
        report, bad = self.report, self.bad
        stage = "start"  # then setup, open, closed, result, final
        offset = 0
        registered: dict[str, int] = {}  # credential key -> its entry
        revoked: dict[str, int] = {}  # credential key -> the entry that revoked it
        weights: dict[str, int] = {}
        nonces: dict[str, int] = {}  # nonce -> its first entry
        last: dict[str, int] = {}  # credential key -> its last accepted ballot
        accepted: list[int] = []  # ballots by a registered, unrevoked credential
        voters = None
        if self.manifest is not None:
            voters = self.manifest["electorate"]["voters"]
        live = 0
        ballot_entries = 0
        self.close_at = self.result_at = self.final_at = None
        times = {}
        empty: dict = {}
        for i, entry in enumerate(entries):
            try:
                if type(entry) is not dict:
                    bad.add(i)
                    continue
                get = entry.get
                n = get("n")
                if n != i or type(n) is not int:
                    if type(n) is not int:
                        report(i, "n is not an integer")
                    elif n - i != offset:
                        report(
                            i,
                            f"n is {n} but the entry is at position {i}: entries are missing, "
                            "inserted or moved",
                            spoils=False,
                        )
                        offset = n - i
                else:
                    offset = 0
                kind, payload = get("type"), get("payload")
                if type(payload) is not dict:
                    payload = empty
                if stage == "open" and kind == "ballot":
                    ballot_entries += 1
                    body = payload.get("ballot")
                    if type(body) is not dict:
                        continue
                    key, nonce = body.get("credential"), body.get("nonce")
                    if type(nonce) is str:
                        first = nonces.setdefault(nonce, i)
                        if first != i:
                            report(i, f"the nonce was already used by entry {first}")
                    if type(key) is not str:
                        continue
                    if key not in registered:
                        report(i, "the ballot's credential was not registered before it")
                    elif key in revoked:
                        report(i, f"the ballot's credential was revoked by entry {revoked[key]}")
                    else:
                        last[key] = i
                        accepted.append(i)
                    continue
                if stage == "open" and kind == "credential":
                    key, replaced = payload.get("key"), payload.get("revokes")
                    if type(key) is not str or (replaced is not None and type(replaced) is not str):
                        bad.add(i)  # the entry's own check says why
                        continue
                    if key in registered:
                        report(i, f"the key was already registered by entry {registered[key]}")
                        continue
                    if replaced is not None:
                        if replaced not in registered:
                            report(i, "revokes a key that no earlier credential registered")
                            continue
                        if replaced in revoked:
                            report(
                                i,
                                f"revokes a credential that entry {revoked[replaced]} already "
                                "revoked",
                            )
                            continue
                        revoked[replaced] = i
                    else:
                        live += 1
                        if live == (voters or 0) + 1 and voters is not None:
                            report(
                                i,
                                f"more unrevoked credentials than the electorate's {voters} voters",
                            )
                    registered[key] = i
                    weight = payload.get("weight")
                    weights[key] = weight if type(weight) is int else 0
                    continue
                if kind == "setup":
                    if i != 0:
                        report(i, "a setup entry after entry 0")
                    else:
                        stage = "setup"
                    continue
                if i == 1 and kind != "open":
                    report(i, "entry 1 must be the open entry")
                if kind == "open":
                    if i != 1:
                        report(i, "an open entry elsewhere than at entry 1")
                    else:
                        stage = "open"
                        times["opened_at"] = _time(payload.get("opened_at"))
                elif kind in ("credential", "ballot"):
                    if kind == "ballot" and self.close_at is None:
                        ballot_entries += 1
                    before = stage in ("start", "setup")
                    where = "before the open entry" if before else "after the close entry"
                    report(i, f"a {kind} entry {where}")
                elif kind == "close":
                    if stage != "open":
                        before = stage in ("start", "setup")
                        where = "before the open entry" if before else "after the board was closed"
                        report(i, f"a close entry {where}")
                        continue
                    stage = "closed"
                    self.close_at = i
                    times["closed_at"] = _time(payload.get("closed_at"))
                    stated = payload.get("ballots")
                    if _is_int(stated) and stated != ballot_entries:
                        report(
                            i,
                            f"ballots is {stated} but the board has {ballot_entries} ballot "
                            "entries before the close",
                        )
                elif kind == "result":
                    if stage != "closed" or self.close_at != i - 1:
                        report(i, "a result entry that is not right after the close entry")
                        continue
                    stage = "result"
                    self.result_at = i
                elif kind == "final":
                    if stage != "result":
                        report(i, "a final entry that does not follow the result")
                        continue
                    stage = "final"
                    self.final_at = i
                    times["at"] = _time(payload.get("at"))
            except Exception as exc:  # a shape the checks above did not foresee
                report(i, f"cannot be checked in order: {type(exc).__name__}")
        if stage == "closed":
            report(self.close_at, "the close entry is not followed by the result entry")
        # Times never go backwards: opened_at <= closed_at <= at.
        moments = [(name, times.get(name)) for name in ("opened_at", "closed_at", "at")]
        moments = [(name, moment) for name, moment in moments if moment is not None]
        for (earlier, first), (later, second) in zip(moments, moments[1:], strict=False):
            if second < first:
                where = self.close_at if later == "closed_at" else self.final_at
                report(where, f"{later} is before {earlier}")
        self.registered, self.revoked, self.weights = registered, revoked, weights
        self.last, self.accepted = last, accepted
        self.ballot_entries, self.stage = ballot_entries, stage

    # -- which ballots count, the recount and the result

    def recount(self, entries: list) -> tuple | None:
        """(live keys, counted ballots, key -> counted entry, recount or error text) for the
        entries known to be invalid so far; None when that cannot be worked out yet."""
        bad, last, weights = self.bad, self.last, self.weights
        try:
            live = [
                key
                for key, at in self.registered.items()
                if key not in self.revoked and at not in bad
            ]
            # The last ballot of each credential, unless that entry itself is invalid: then
            # the one before it (only a broken board gets here: a slow search will do).
            good = last
            if any(i in bad for i in last.values()):
                good = {}
                for i in self.accepted:
                    if i not in bad:
                        good[entries[i]["payload"]["ballot"]["credential"]] = i
            counted = []
            for key in live:
                i = good.get(key)
                if i is not None:
                    counted.append((entries[i]["payload"]["ballot"]["answers"], weights[key]))
        except (KeyError, TypeError):  # a malformed ballot the workers will report
            return None
        questions: list | str | None = None
        if self.manifest is not None:
            try:
                questions = tallying.tally(self.manifest, counted)
            except Exception as exc:
                questions = f"the recount failed: {exc}"
        return live, counted, good, questions

    def count(self, entries: list, ctx: _Context, state) -> None:
        if state is None:
            self.report("board", "the counted ballots cannot be worked out")
            state = [], [], {}, None
        live, counted, good, questions = state
        weights = self.weights
        if isinstance(questions, str):
            self.report("board", questions)
            questions = None
        # A key that signed a ballot which verified is a valid point (libsodium's verify
        # refuses non-canonical and small-order keys); the others are checked here.
        for key, at in self.registered.items():
            if at not in self.bad and key not in good and not _valid_point(key):
                self.report(at, "the credential key is not a valid Ed25519 public key")
        weight_limit = None if self.manifest is None else self.manifest["electorate"]["weight"]
        total_weight = sum(weights[key] for key in live)
        if weight_limit is not None and total_weight > weight_limit:
            self.report(
                self.close_at if self.close_at is not None else "board",
                f"the unrevoked credentials weigh {total_weight}, more than the electorate's "
                f"{weight_limit}",
            )
        self.summary = {
            "round": ctx.round_hex,
            "status": {"start": "invalid", "result": "closed"}.get(self.stage, self.stage),
            "entries": len(entries),
            "ballots": self.ballot_entries,
            "credentials": len(live),
            "credential_weight": total_weight,
            "counted": len(counted),
            "questions": questions,
        }
        if self.final_at is not None:
            self.summary["outcome"] = _payload(entries[self.final_at]).get("outcome")
        if self.result_at is not None:
            self.check_result(entries, len(live), len(counted), questions)

    def check_result(self, entries, credentials: int, counted: int, questions) -> None:
        at = self.result_at
        statement = _payload(entries[at]).get("result")
        if type(statement) is not dict:
            self.report(at, "the result statement is not an object")
            return
        for reason in _keys(statement, STATEMENT_KEYS, "the result statement"):
            self.report(at, reason)
        if statement.get("round") != self.round_hex:
            self.report(at, "the result is for another round")
        close = entries[self.close_at]
        named = statement.get("board")
        expected = {"n": close.get("n"), "hash": close.get("hash")}
        if type(named) is not dict or named != expected or not _is_int(named.get("n")):
            self.report(at, f"the result's board does not name the close entry {self.close_at}")
        for name, value in (("credentials", credentials), ("counted", counted)):
            stated = statement.get(name)
            if stated != value or not _is_int(stated):
                self.report(at, f"{name} is {_short(stated)} but the board has {value}")
        if questions is None:
            return
        published = statement.get("questions")
        if type(published) is not list or len(published) != len(questions):
            self.report(at, "the result does not have one entry per question of the manifest")
            return
        for mine, theirs in zip(questions, published, strict=True):
            if theirs == mine and _same_types(theirs, mine):
                continue
            if type(theirs) is not dict:
                self.report(at, f'question "{mine["id"]}": the result is not an object')
                continue
            for name in sorted(set(mine) | set(theirs)):
                if name not in mine:
                    self.report(at, f'question "{mine["id"]}": unexpected {name}')
                elif theirs.get(name) != mine[name] or not _same_types(
                    theirs.get(name), mine[name]
                ):
                    self.report(
                        at,
                        f'question "{mine["id"]}": {name} is {_short(theirs.get(name))} but '
                        f"the recount gives {_short(mine[name])}",
                    )

    # -- the head and receipts

    def check_head(self, entries: list, ctx: _Context) -> None:
        head = self.document.get("head")
        if type(head) is not dict:
            self.report("board", "the head is not an object")
            return
        for reason in _keys(head, HEAD_KEYS, "the head"):
            self.report("board", reason)
        last = len(entries) - 1
        last_hash = entries[last].get("hash") if type(entries[last]) is dict else None
        if head.get("round") != self.round_hex:
            self.report("board", "the head is for another round")
        if head.get("n") != last or not _is_int(head.get("n")):
            self.report(
                "board", f"the head names entry {_short(head.get('n'))}, the last is {last}"
            )
        if head.get("hash") != last_hash:
            self.report("board", "the head's hash is not the hash of the last entry")
        signature = head.get("signature")
        body = {k: head.get(k) for k in ("round", "n", "hash")}
        if (
            ctx.round_key is None
            or not _hex(_HEX128, signature)
            or not _signature_ok(ctx.round_key, "head", body, signature)
        ):
            self.report("board", "the head signature does not verify under the round key")

    def check_receipt(self, name: str, receipt, entries: list, ctx: _Context) -> None:
        where = f"receipt {name}"
        if type(receipt) is not dict:
            self.report(where, "the receipt is not a JSON object")
            return
        for reason in _keys(receipt, RECEIPT_KEYS, "the receipt"):
            self.report(where, reason)
        body = {k: receipt.get(k) for k in ("round", "n", "ballot", "head")}
        signature = receipt.get("signature")
        if (
            ctx.round_key is None
            or not _hex(_HEX128, signature)
            or not _signature_ok(ctx.round_key, "receipt", body, signature)
        ):
            self.report(where, "the receipt signature does not verify under the round key")
        if body["round"] != self.round_hex:
            self.report(where, "the receipt is for another round")
            return
        n = body["n"]
        if not _is_int(n) or not 0 <= n < len(entries):
            self.report(where, f"the board has no entry {_short(n)}: the ballot was dropped")
            return
        entry = entries[n]
        if type(entry) is not dict or entry.get("type") != "ballot":
            self.report(where, f"entry {n} is not a ballot entry: the ballot was dropped or moved")
            return
        try:
            value = digest(PERSON_BALLOT, canonical(entry.get("payload"))).hex()
        except Exception:
            value = None
        if value != body["ballot"]:
            self.report(where, f"entry {n} is not the receipt's ballot: it was changed or moved")
        if entry.get("hash") != body["head"]:
            self.report(where, f"entry {n}'s chain hash is not the receipt's head")

    def finish(self) -> Report:
        self.problems.sort(key=_order)
        return Report(ok=not self.problems, problems=self.problems, summary=self.summary)


def _payload(entry: dict) -> dict:
    payload = entry.get("payload")
    return payload if type(payload) is dict else {}


def _order(problem: Problem):
    position = problem.position
    if isinstance(position, int):
        return (1, position, "")
    return (0 if position == "board" else 2, 0, position)


def _same_types(a, b) -> bool:
    """Equal values of the same JSON types (1 == True in Python, not on a board)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return all(_same_types(a[k], b[k]) for k in a)
    if type(a) is list:
        return all(_same_types(x, y) for x, y in zip(a, b, strict=False))
    return True


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=True, default=repr) if value is not None else "null"
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------- the API


def _receipt_pairs(receipts) -> list[tuple[str, object]]:
    pairs = []
    for index, item in enumerate(receipts, 1):
        if type(item) is tuple and len(item) == 2 and isinstance(item[0], str):
            pairs.append(item)
        else:
            pairs.append((f"#{index}", item))
    return pairs


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def verify_board(document, receipts: Iterable = (), workers: int | None = None) -> Report:
    """Check a parsed board (and receipts: dicts, or (name, dict) pairs) against section 7.
    `workers`: processes for the single-entry checks (default: the CPUs available; 1, or a
    board under 2,000 entries, checks in this process)."""
    return _verify(document, receipts, workers, checked=True)


def _workers(workers: int | None) -> int:
    return _default_workers() if workers is None else max(1, int(workers))


def _verify(document, receipts, workers, checked: bool, text=None) -> Report:
    workers = _workers(workers)
    collecting = gc.isenabled()
    gc.disable()  # a board is a million small objects that never form cycles
    try:
        walk = _Walk(document, _receipt_pairs(receipts), workers, checked, text)
        try:
            return walk.run()
        except Exception as exc:  # a last resort: the board is not valid, no traceback
            walk.report("board", f"cannot be verified: {type(exc).__name__}: {str(exc)[:200]}")
            return walk.finish()
    finally:
        if collecting:
            gc.enable()


class _Parsed:
    floats = False
    duplicates = False


def load_json(data: bytes | str, parsed: _Parsed | None = None):
    """Parse JSON as the board format reads it: a float becomes a Python float (which the
    checks then report), an integer of more than 4,000 digits a float too; `parsed` records
    both and objects with a duplicated key (the last value is kept, as Python does).
    Raises Unreadable for anything that is not JSON."""
    parsed = parsed or _Parsed()
    hooks, on_int = _hooks(parsed)
    collecting = gc.isenabled()
    gc.disable()
    try:
        try:
            value = json.loads(data, **hooks)
        except ValueError as exc:
            if "integer string conversion" not in str(exc):
                raise
            value = json.loads(data, parse_int=on_int, **hooks)
    except (ValueError, RecursionError, TypeError) as exc:
        raise Unreadable(f"not JSON: {str(exc)[:200]}") from None
    finally:
        if collecting:
            gc.enable()
    return value


def _decoder(parsed: _Parsed, pairs: bool = True) -> json.JSONDecoder:
    """pairs=False: without the check for duplicated keys (a third faster), for the entries
    of the board's text, whose checks look for them (_check_text)."""
    hooks = _hooks(parsed)[0]
    if not pairs:
        del hooks["object_pairs_hook"]
    return json.JSONDecoder(**hooks)


def _hooks(parsed: _Parsed) -> tuple[dict, Callable]:
    """The parser's hooks that record in `parsed` what load_json says it records."""

    def on_float(text: str) -> float:
        parsed.floats = True
        return float("nan")  # any float is reported; its value does not matter

    def on_pairs(pairs: list) -> dict:
        value = dict(pairs)
        if len(value) != len(pairs):
            parsed.duplicates = True
        return value

    def on_int(text: str):
        if len(text) > MAX_DIGITS:
            parsed.floats = True
            return float("inf")
        return int(text)

    return {
        "parse_float": on_float,
        "parse_constant": on_float,
        "object_pairs_hook": on_pairs,
    }, on_int


def _read(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        return Path(path).read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from None


class _Text:
    """The board's JSON text, where each entry's text lies in it (offsets: start and end of
    entry 0, of entry 1, ...), and the worker processes forked before it was parsed, to
    which the scan hands the entries as it goes."""

    def __init__(self, text: str, pool: ProcessPoolExecutor | None, workers: int) -> None:
        self.text, self.pool = text, pool
        self.offsets = array("q")
        self.futures: list = []
        self.sent = 0  # entries handed to the workers
        self.ctx: _Context | None = None  # theirs, from entry 0
        self.late = pool is None  # True: the workers get the entries after the walk's setup
        self.share = max(1, len(text) // (workers * CHUNKS_PER_WORKER))  # characters

    def send(self, entries: list) -> None:
        """Hand the entries parsed since the last call to the workers. Their context comes
        from entry 0 alone (as the walk's setup makes it) and assumes floats may be
        anywhere, which changes nothing but the speed of the entries that are not in the
        server's form; where entry 0 gives no round hash, the workers wait for the walk."""
        if self.late:
            return
        start, stop = self.sent, len(entries)
        if start == stop:
            return
        if self.ctx is None:
            self.ctx = _Walk({}, (), 1, checked=True).setup(entries[0])
            if self.ctx.round_hex is None:
                self.late = True
                return
        offsets, before = self.offsets[2 * start : 2 * stop], _hash_before(entries, start)
        try:
            future = self.pool.submit(_forked_text, start, offsets, before, self.ctx)
        except Exception:  # a worker died (the pool is broken): everything is checked here
            self.pool, self.late = None, True
            return
        self.futures.append(future)
        self.sent = stop


_WHITESPACE = re.compile(r"[ \t\n\r]*").match


def _scan(text: str, parsed: _Parsed, places: _Text) -> dict | None:
    """Parse a board document as load_json does, noting where each entry's text lies (into
    `places`); None for any text that is not an object with one list of entries, or that
    load_json would parse another way (then load_json takes it, and says what is wrong).
    A key twice in an entry is left to the entry checks, which parse such an entry again."""
    scan = _decoder(parsed).scan_once
    scan_entries = _decoder(parsed, pairs=False).scan_once
    document = {}
    try:
        i = _WHITESPACE(text, 0).end()
        if text[i : i + 1] != "{":
            return None
        i = _WHITESPACE(text, i + 1).end()
        while text[i : i + 1] == '"':
            key, i = scan(text, i)
            i = _WHITESPACE(text, i).end()
            if text[i : i + 1] != ":" or key in document:
                return None
            i = _WHITESPACE(text, i + 1).end()
            if key == "entries" and text[i : i + 1] == "[":
                value, i = _scan_entries(text, i, scan_entries, places)
            else:
                value, i = scan(text, i)
            document[key] = value
            i = _WHITESPACE(text, i).end()
            if text[i : i + 1] != ",":
                break
            i = _WHITESPACE(text, i + 1).end()
            if text[i : i + 1] != '"':  # a comma, then no key: not JSON
                return None
        if text[i : i + 1] != "}" or _WHITESPACE(text, i + 1).end() != len(text):
            return None
    except (ValueError, StopIteration, RecursionError):
        return None
    return document if "entries" in document else None


def _scan_entries(text: str, i: int, scan, places: _Text) -> tuple[list, int]:
    entries = []
    append, place, share = entries.append, places.offsets.append, places.share
    handed = i  # where the entries handed to the workers end
    i = _WHITESPACE(text, i + 1).end()
    if text[i : i + 1] == "]":
        return entries, i + 1
    while True:
        value, end = scan(text, i)
        append(value)
        place(i)
        place(end)
        if end - handed >= share:
            places.send(entries)
            handed = end
        if text.startswith(",{", end):  # the server's compact form
            i = end + 1
            continue
        i = _WHITESPACE(text, end).end()
        if text[i : i + 1] == "]":
            places.send(entries)
            return entries, i + 1
        if text[i : i + 1] != ",":
            raise ValueError("expected , or ]")
        i = _WHITESPACE(text, i + 1).end()


def _start_workers(text: str, workers: int) -> ProcessPoolExecutor | None:
    """Worker processes forked now, before the board is parsed: they inherit its text and
    little else, and they never touch (so never copy) the parent's parsed board."""
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    global _FORKED_TEXT
    pool = None
    with _FORKING:  # another thread's board must not be the one these workers inherit
        _FORKED_TEXT = text
        try:
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
            pool.submit(int).result()  # forks every worker
        except Exception:  # no processes here: a daemonic process, a limit
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            return None
        finally:
            _FORKED_TEXT = None
    return pool


def _as_text(data: bytes | str) -> str | None:
    if isinstance(data, str):
        return data
    if not isinstance(data, (bytes, bytearray)):
        return None  # load_json says what is wrong
    try:
        return data.decode(json.detect_encoding(data), "surrogatepass")
    except (UnicodeDecodeError, LookupError):
        return None  # load_json says what is wrong


def verify_json(
    data: bytes | str,
    receipts: Iterable = (),
    workers: int | None = None,
    keep: list | None = None,
) -> Report:
    """Parse and verify a board given as JSON text; raises Unreadable when it is not JSON.
    `receipts` as for verify_board, `keep` as for verify_file."""
    workers = _workers(workers)
    collecting = gc.isenabled()
    gc.disable()  # also between parsing and checking: one collection costs a third of a second
    text = pool = None
    try:
        value = _as_text(data)
        if value is not None:
            if len(value) >= PARALLEL_TEXT:
                pool = _start_workers(value, workers)
            text = _Text(value, pool, workers)
            parsed = _Parsed()
            document = _scan(value, parsed, text)
        if value is None or document is None:
            if pool is not None:  # what the early workers were given is moot
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
            text, parsed = None, _Parsed()
            document = load_json(data, parsed)
        report = _verify(document, receipts, workers, checked=parsed.floats, text=text)
        if keep is not None:
            keep.append(document)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if collecting:
            gc.enable()
    duplicated = Problem("board", DUPLICATED_KEYS)  # found by the parse or the entry checks
    if parsed.duplicates or duplicated in report.problems:
        report.problems = [duplicated] + [p for p in report.problems if p != duplicated]
        report.ok = False
    return report


def verify_file(
    path: str, receipts: Iterable[str] = (), workers: int | None = None, keep: list | None = None
) -> Report:
    """Read and verify a board file (- for standard input) with receipt files, each holding
    a receipt or a list of receipts; raises Unreadable. `keep`: a list that is given the
    parsed board, for a caller that ends the process without freeing it."""
    pairs = []
    for name in receipts:
        try:
            value = load_json(_read(name))
        except Unreadable as exc:
            raise Unreadable(f"receipt {name}: {exc}") from None
        if type(value) is list:
            pairs += [(f"{name}[{i}]", item) for i, item in enumerate(value)]
        else:
            pairs.append((name, value))
    return verify_json(_read(path), pairs, workers, keep)


# ---------------------------------------------------------------- the command


def _print_summary(report: Report, out) -> None:
    summary = report.summary
    if not summary:
        return
    print(
        f"round {summary['round']}: {summary['status']}, {summary['entries']} entries, "
        f"{summary['ballots']} ballots, {summary['credentials']} unrevoked credentials, "
        f"{summary['counted']} counted",
        file=out,
    )
    for question in summary.get("questions") or ():
        counts = ", ".join(f"{k} {v}" for k, v in question["counts"].items())
        winners = ", ".join(question["winners"]) or "none"
        print(
            f"  {question['id']}: {counts}; blank {question['blank']}; "
            f"{'passed' if question['passed'] else 'not passed'} ({question['reason']}), "
            f"winners: {winners}",
            file=out,
        )


def main(argv: list[str] | None = None, keep: list | None = None) -> int:
    """The command; `keep` as for verify_file."""
    parser = argparse.ArgumentParser(
        prog="python -m crypto.verify", description="Verify a Yishi ballot board."
    )
    parser.add_argument("board", help="the board JSON file (- for standard input)")
    parser.add_argument(
        "--receipt", action="append", default=[], metavar="FILE", help="a receipt to check"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--workers", type=int, help="worker processes (default: CPUs)")
    args = parser.parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # a key like "\ud800" is printed, not raised
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    try:
        report = verify_file(args.board, args.receipt, args.workers, keep)
    except Unreadable as exc:
        text = str(exc)
        where = text if text.startswith("receipt ") else f"board: {text}"
        if args.json:
            print(json.dumps({"ok": False, "unreadable": where}))
        else:
            print(where, file=sys.stderr)
        return 2
    except Exception as exc:  # never a traceback
        print(f"board: cannot be verified: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.json:
            print(json.dumps(report.as_json()))
        else:
            for problem in report.problems:
                print(problem)
            _print_summary(report, sys.stdout)
            print("VALID" if report.ok else f"NOT VALID: {len(report.problems)} problem(s)")
        sys.stdout.flush()
    except BrokenPipeError:  # python -m crypto.verify board.json | head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0 if report.ok else 1


if __name__ == "__main__":
    # The parsed board is a million objects that form no cycles: no collection looks at
    # them (one would take most of a second), and the operating system takes their memory
    # back at once instead of freeing them one by one (a second more).
    gc.disable()
    kept: list = []
    status = main(keep=kept)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)
