"""Writing a round's ballot board (docs/ballot-format.md) in memory.

One definition of every payload shape of the spec — the server builds its entries with the
constructors below — and `RoundWriter`, a complete in-memory board for tests, benchmarks and
as the reference for what the server writes:

    writer = RoundWriter(manifest_without_round_key, round_seed)
    writer.open(at)
    seed = writer.register(weight=1250)          # the credential's private key seed
    receipt = writer.cast(seed, {"q1": ["yes"]})
    statement = writer.close(at)                 # close + result entries, with the recount
    writer.finalize("final", at, "no objection") # optional
    document = writer.board()                    # the board JSON of section 3

PyNaCl, the standard library, crypto.board and crypto.tally only. Signing functions take
the 32-byte Ed25519 seed, or an already built `nacl.signing.SigningKey` (faster when one key
signs many values)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import datetime

from nacl.signing import SigningKey

from crypto import tally as tallying
from crypto.board import (
    FORMAT_VERSION,
    GENESIS,
    PERSON_BALLOT,
    PERSON_PAYLOAD,
    canonical,
    chain_hash,
    digest,
    round_hash,
    signed_message,
    timestamp,
)

BOARD_FORMAT = "yishi-board"
CHANNELS = ("online", "paper", "proxy")
OUTCOMES = ("final", "annulled")

Seed = bytes | SigningKey


def _key(seed: Seed) -> SigningKey:
    if isinstance(seed, SigningKey):
        return seed
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise ValueError("a signing seed is 32 bytes")
    return SigningKey(seed)


def _sign(seed: Seed, purpose: str, value) -> str:
    """The same signature as crypto.board.sign, with a reusable key."""
    return _key(seed).sign(signed_message(purpose, value)).signature.hex()


def _time(at: datetime | str) -> str:
    if isinstance(at, str):
        if timestamp(datetime.strptime(at, "%Y-%m-%dT%H:%M:%S%z")) != at:
            raise ValueError(f"not a board time: {at!r}")
        return at
    return timestamp(at)


def _is_int(value) -> bool:
    return type(value) is int


# ---------------------------------------------------------------- payloads (section 3)


def setup_payload(manifest: dict, round_seed: Seed) -> dict:
    """Entry 0: the manifest (with its round_key) and the round key's signature over it."""
    return {"manifest": manifest, "signature": _sign(round_seed, "manifest", manifest)}


def open_payload(at: datetime | str) -> dict:
    return {"opened_at": _time(at)}


def credential_payload(
    key_hex: str, weight: int, unit: str | None, custodial: bool, revokes: str | None
) -> dict:
    if not _is_int(weight) or weight < 0:
        raise ValueError("a credential's weight is a non-negative integer")
    if unit is not None and not isinstance(unit, str):
        raise ValueError("a credential's unit is a string or None")
    if not isinstance(custodial, bool):
        raise ValueError("custodial is True or False")
    return {
        "key": key_hex,
        "weight": weight,
        "unit": unit,
        "custodial": custodial,
        "revokes": revokes,
    }


def ballot_body(round_hash_hex: str, credential_hex: str, nonce_hex: str, answers) -> dict:
    """The object a credential key signs (purpose `ballot`). Answers are taken as given
    (each a sorted list of option ids): what the voter's browser signed must not be
    rearranged by the server."""
    return {
        "round": round_hash_hex,
        "credential": credential_hex,
        "nonce": nonce_hex,
        "answers": {question: list(choices) for question, choices in answers.items()},
    }


def ballot_payload(body: dict, signature_hex: str, channel: str, entered_by: str | None) -> dict:
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if (channel == "online") != (entered_by is None):
        raise ValueError("entered_by names the committee member for paper and proxy ballots only")
    if entered_by is not None and (not isinstance(entered_by, str) or not entered_by):
        raise ValueError("entered_by is a non-empty string")
    return {
        "ballot": body,
        "signature": signature_hex,
        "channel": channel,
        "entered_by": entered_by,
    }


def close_payload(at: datetime | str, ballots: int) -> dict:
    return {"closed_at": _time(at), "ballots": ballots}


def result_statement(
    round_hash_hex: str,
    close_n: int,
    close_hash_hex: str,
    credentials: int,
    counted: int,
    questions: list[dict],
) -> dict:
    return {
        "round": round_hash_hex,
        "board": {"n": close_n, "hash": close_hash_hex},
        "credentials": credentials,
        "counted": counted,
        "questions": list(questions),
    }


def result_payload(statement: dict, round_seed: Seed) -> dict:
    return {"result": statement, "signature": _sign(round_seed, "result", statement)}


def final_payload(outcome: str, at: datetime | str, reason: str) -> dict:
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    if not isinstance(reason, str):
        raise ValueError("the reason is a string")
    return {"outcome": outcome, "at": _time(at), "reason": reason}


# ---------------------------------------------------------------- receipts, head, document


def receipt(
    round_hash_hex: str, n: int, ballot_hash_hex: str, head_hex: str, round_seed: Seed
) -> dict:
    """Section 4: what the voter keeps; signed by the round key (purpose `receipt`)."""
    body = {"round": round_hash_hex, "n": n, "ballot": ballot_hash_hex, "head": head_hex}
    return {**body, "signature": _sign(round_seed, "receipt", body)}


def head(round_hash_hex: str, n: int, hash_hex: str, round_seed: Seed) -> dict:
    """The signed head of the board: its last entry (purpose `head`)."""
    body = {"round": round_hash_hex, "n": n, "hash": hash_hex}
    return {**body, "signature": _sign(round_seed, "head", body)}


def document(round_hash_hex: str, entries: list[dict], head: dict) -> dict:
    """The board JSON of section 3."""
    return {
        "format": BOARD_FORMAT,
        "version": FORMAT_VERSION,
        "round": round_hash_hex,
        "entries": entries,
        "head": head,
    }


def document_text(board: dict) -> str:
    """The board document as the server publishes it: compact ASCII JSON (its entries keep
    their key order n, type, payload, hash; their payloads are canonical already)."""
    return json.dumps(board, ensure_ascii=True, separators=(",", ":"))


# ---------------------------------------------------------------- a whole round in memory


class RoundWriter:
    """A round's board, written entry by entry with the checks the server makes.

    Every method raises ValueError for what the server would refuse (a ballot before the
    round opens, an unregistered or revoked credential, an invalid answer, a reused nonce,
    more credentials than voters, ...). Appending is O(1) per entry: building a board of
    200,000 ballots takes seconds, mostly Ed25519 signing."""

    def __init__(self, manifest_without_round_key: Mapping, round_seed: bytes) -> None:
        self._round_key = _key(round_seed)
        manifest = dict(manifest_without_round_key)
        manifest["round_key"] = self._round_key.verify_key.encode().hex()
        canonical(manifest)  # integers only, string keys
        tallying.tally(manifest, [])  # a manifest the recount understands
        self.manifest = manifest
        self.round_hash = round_hash(manifest).hex()
        self._voters = manifest["electorate"]["voters"]
        self._weight = manifest["electorate"]["weight"]
        self._named = manifest.get("secrecy") == "named"
        self.entries: list[dict] = []
        self._previous = GENESIS
        self._state = "setup"  # setup, open, closed, final
        self._keys: dict[bytes, tuple[SigningKey, str]] = {}  # seed -> (signing key, hex)
        self._live: dict[str, int] = {}  # unrevoked credential key -> weight
        self._revoked: set[str] = set()
        self._last: dict[str, dict] = {}  # credential key -> answers of its last ballot
        self._nonces: set[str] = set()
        self._checked: dict[tuple, str | None] = {}  # answers -> tally.ballot_problem
        self._live_weight = 0
        self.ballots = 0
        self.statement: dict | None = None
        self._append("setup", setup_payload(manifest, self._round_key))

    # -- the chain

    def _append(self, entry_type: str, payload: dict, encoded: bytes | None = None) -> dict:
        if encoded is None:
            encoded = canonical(payload)
        n = len(self.entries)
        value = chain_hash(self._previous, n, entry_type, digest(PERSON_PAYLOAD, encoded))
        # The payload as the server serves it: parsed from its stored canonical JSON, so
        # that its keys are in canonical (sorted) order in the board document too.
        payload = json.loads(encoded)
        entry = {"n": n, "type": entry_type, "payload": payload, "hash": value.hex()}
        self.entries.append(entry)
        self._previous = value
        return entry

    def _require(self, state: str, action: str) -> None:
        if self._state != state:
            raise ValueError(f"cannot {action}: the round is {self._state}")

    def _signing_key(self, seed: bytes) -> tuple[SigningKey, str]:
        try:
            return self._keys[seed]
        except KeyError:
            key = _key(seed)
            pair = self._keys[seed] = (key, key.verify_key.encode().hex())
            return pair

    # -- the round's steps

    def open(self, at: datetime | str) -> dict:
        self._require("setup", "open")
        self._state = "open"
        return self._append("open", open_payload(at))

    def register(
        self,
        weight: int,
        unit: str | None = None,
        custodial: bool = True,
        revokes: bytes | str | None = None,
        seed: bytes | None = None,
    ) -> bytes:
        """Register a credential; returns its private key seed (new unless `seed` is given).
        `revokes`: the seed or public key (hex) of the voter's credential it replaces."""
        self._require("open", "register a credential")
        if self._named and (not isinstance(unit, str) or not unit):
            raise ValueError("a named round's credentials name their unit")
        if not self._named and unit is not None:
            raise ValueError("a secret round's credentials name no unit")
        seed = secrets.token_bytes(32) if seed is None else seed
        _, key_hex = self._signing_key(seed)
        if key_hex in self._live or key_hex in self._revoked:
            raise ValueError("this key is already registered")
        replaced = None
        if revokes is not None:
            replaced = revokes if isinstance(revokes, str) else self._signing_key(revokes)[1]
            if replaced not in self._live:
                raise ValueError("revokes must name a live credential")
        payload = credential_payload(key_hex, weight, unit, custodial, replaced)
        live = len(self._live) + (replaced is None)
        live_weight = self._live_weight + weight - (self._live[replaced] if replaced else 0)
        if live > self._voters:
            raise ValueError("more credentials than eligible voters")
        if live_weight > self._weight:
            raise ValueError("credentials weigh more than the electorate")
        self._append("credential", payload)
        if replaced is not None:
            del self._live[replaced]
            self._revoked.add(replaced)
        self._live[key_hex] = weight
        self._live_weight = live_weight
        return seed

    def cast(
        self,
        seed: bytes,
        answers: Mapping,
        channel: str = "online",
        entered_by: str | None = None,
        nonce: str | None = None,
    ) -> dict:
        """Sign and append a ballot of the credential with this seed; returns the receipt.
        Each answer is sorted here, as the voter's client does before signing."""
        key, key_hex = self._signing_key(seed)
        body = ballot_body(
            self.round_hash,
            key_hex,
            secrets.token_hex(16) if nonce is None else nonce,
            {question: sorted(choices) for question, choices in answers.items()},
        )
        self._accept(body)
        # The answers passed the check, so the body is within the canonical subset.
        message = b"yishi-v1/ballot\n" + canonical(body, checked=False)
        signature = key.sign(message).signature.hex()
        return self._append_ballot(body, signature, channel, entered_by)

    def submit(
        self, body: dict, signature_hex: str, channel: str = "online", entered_by=None
    ) -> dict:
        """Append a ballot signed elsewhere (the voter's browser); returns the receipt. The
        signature itself is not checked here: the server checks it before calling."""
        self._accept(body)
        return self._append_ballot(body, signature_hex, channel, entered_by)

    def _accept(self, body: dict) -> None:
        self._require("open", "cast a ballot")
        if body["round"] != self.round_hash:
            raise ValueError("the ballot is for another round")
        if body["credential"] not in self._live:
            raise ValueError("the credential is not registered or was revoked")
        nonce = body["nonce"]
        if (
            not isinstance(nonce, str)
            or len(nonce) != 32
            or nonce.strip("0123456789abcdef")
            or nonce in self._nonces
        ):
            raise ValueError("the nonce is not 16 fresh bytes (32 lower-case hex)")
        answers = body["answers"]
        try:  # a round has few distinct answers: check each once
            key = tuple((q, tuple(a)) for q, a in answers.items() if type(a) is list)
            if len(key) != len(answers) or not all(type(c) is str for _, a in key for c in a):
                key = None
        except (AttributeError, TypeError):
            key = None
        problem = self._checked.get(key) if key is not None else None
        if problem is None and key not in self._checked:
            problem = tallying.ballot_problem(self.manifest, answers)
            if key is not None:
                self._checked[key] = problem
        if problem is not None:
            raise ValueError(problem)

    def _append_ballot(self, body: dict, signature_hex: str, channel: str, entered_by) -> dict:
        payload = ballot_payload(body, signature_hex, channel, entered_by)
        # body was checked by _accept, ballot_payload checked channel and entered_by.
        encoded = canonical(payload, checked=type(signature_hex) is not str)
        entry = self._append("ballot", payload, encoded)
        self._nonces.add(body["nonce"])
        self._last[body["credential"]] = body["answers"]
        self.ballots += 1
        return receipt(
            self.round_hash,
            entry["n"],
            digest(PERSON_BALLOT, encoded).hex(),
            entry["hash"],
            self._round_key,
        )

    def counted(self) -> list[tuple[dict, int]]:
        """(answers, weight) of the ballots that count: the last of every live credential."""
        return [
            (self._last[key], weight) for key, weight in self._live.items() if key in self._last
        ]

    def close(self, at: datetime | str) -> dict:
        """Append the close entry and the signed result (the recount of the counted
        ballots); returns the result statement."""
        self._require("open", "close")
        close = self._append("close", close_payload(at, self.ballots))
        counted = self.counted()
        questions = tallying.tally(self.manifest, counted)
        statement = result_statement(
            self.round_hash, close["n"], close["hash"], len(self._live), len(counted), questions
        )
        self._append("result", result_payload(statement, self._round_key))
        self._state = "closed"
        self.statement = statement
        return statement

    def finalize(self, outcome: str, at: datetime | str, reason: str) -> dict:
        self._require("closed", "finalize")
        self._state = "final"
        return self._append("final", final_payload(outcome, at, reason))

    # -- publishing

    @property
    def state(self) -> str:
        return self._state

    def head(self) -> dict:
        last = self.entries[-1]
        return head(self.round_hash, last["n"], last["hash"], self._round_key)

    def board(self) -> dict:
        """The board document. Its entry objects are this writer's own: copy the document
        (copy.deepcopy) before changing anything in it."""
        return document(self.round_hash, list(self.entries), self.head())
