"""The ballot board's primitives: canonical encoding, domain-separated BLAKE2b hashes,
Ed25519 signatures with a purpose prefix, and the hash chain of board entries.

Everything here is specified in docs/ballot-format.md; that text, not this code, is the
reference an outside verifier is written from. PyNaCl and the standard library only."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

FORMAT_VERSION = 1

# BLAKE2b personalization strings (at most 16 bytes each): one per use.
PERSON_ROUND = b"yishi-round-v1"
PERSON_PAYLOAD = b"yishi-payload-v1"
PERSON_CHAIN = b"yishi-chain-v1"
PERSON_BALLOT = b"yishi-ballot-v1"

# Ed25519 signatures are over b"yishi-v1/" + purpose + b"\n" + canonical(value).
PURPOSES = frozenset({"manifest", "ballot", "receipt", "result", "head"})

GENESIS = bytes(32)  # the "previous hash" of entry 0

ENTRY_TYPES = ("setup", "open", "credential", "ballot", "close", "result", "final")


class EncodingError(ValueError):
    """A value outside the canonical subset (floats, non-string keys, ...)."""


def _check(value, path: str = "$") -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError(f"{path}: object keys must be strings")
            _check(item, f"{path}.{key}")
        return
    raise EncodingError(f"{path}: {type(value).__name__} is not allowed (integers only, no floats)")


def canonical(value, checked: bool = True) -> bytes:
    """JSON with sorted keys, no whitespace, ASCII only (\\uXXXX escapes), no floats."""
    if checked:
        _check(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _no_floats(text: str):
    raise EncodingError(f"number {text!r} is not an integer")


def parse(data: bytes | str):
    """Parse JSON as the board format allows it: integers only, no NaN/Infinity."""
    return json.loads(data, parse_float=_no_floats, parse_constant=_no_floats)


def digest(person: bytes, data: bytes) -> bytes:
    """BLAKE2b-256 of `data` personalized with `person`."""
    start = _STARTED.get(person)
    if start is None:
        start = _STARTED[person] = hashlib.blake2b(digest_size=32, person=person)
    h = start.copy()  # a third faster than setting the parameters up again
    h.update(data)
    return h.digest()


_STARTED: dict[bytes, hashlib.blake2b] = {}  # personalization -> a hash of nothing yet


def from_secret(person: bytes, secret: bytes | str, what: str) -> bytes:
    """A 32-byte key derived from the application's secret (UTF-8), for one use named by
    the personalization `person`."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not secret:
        raise ValueError(f"an empty secret gives no {what}")
    return digest(person, secret)


def round_hash(manifest: dict) -> bytes:
    return digest(PERSON_ROUND, canonical(manifest))


def payload_hash(payload: dict) -> bytes:
    return digest(PERSON_PAYLOAD, canonical(payload))


def ballot_hash(payload: dict) -> bytes:
    """The hash a voter's receipt names: over the whole ballot entry payload."""
    return digest(PERSON_BALLOT, canonical(payload))


def chain_hash(previous: bytes, n: int, entry_type: str, payload_digest: bytes) -> bytes:
    """hash_n = BLAKE2b-256(prev ‖ uint64be(n) ‖ uint8(len(type)) ‖ type ‖ payload hash)."""
    kind = _TYPE_BYTES.get(entry_type)
    if kind is None:
        kind = entry_type.encode("ascii")
        kind = len(kind).to_bytes(1, "big") + kind
    return digest(PERSON_CHAIN, previous + n.to_bytes(8, "big") + kind + payload_digest)


# uint8(len(type)) ‖ type, for each entry type
_TYPE_BYTES = {kind: bytes([len(kind)]) + kind.encode("ascii") for kind in ENTRY_TYPES}


def signed_message(purpose: str, value) -> bytes:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown signature purpose {purpose!r}")
    return b"yishi-v1/" + purpose.encode("ascii") + b"\n" + canonical(value)


def sign(seed: bytes, purpose: str, value) -> str:
    """Sign `value` for `purpose` with the Ed25519 key of this 32-byte seed; hex signature."""
    return SigningKey(seed).sign(signed_message(purpose, value)).signature.hex()


def verify(public_key_hex: str, purpose: str, value, signature_hex: str) -> bool:
    try:
        key = VerifyKey(bytes.fromhex(public_key_hex))
        key.verify(signed_message(purpose, value), bytes.fromhex(signature_hex))
    except (BadSignatureError, ValueError, TypeError, RecursionError):
        return False
    return True


def new_seed() -> bytes:
    return bytes(SigningKey.generate())


def public_key(seed: bytes) -> str:
    return SigningKey(seed).verify_key.encode().hex()


def timestamp(moment: datetime) -> str:
    """Times on the board: UTC, whole seconds, `2026-12-01T08:00:00Z`."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Entry:
    n: int
    type: str
    payload: dict
    hash: str  # hex of chain_hash(previous, n, type, payload_hash(payload))

    def as_json(self) -> dict:
        return {"n": self.n, "type": self.type, "payload": self.payload, "hash": self.hash}


def next_entry(previous_hash: bytes, n: int, entry_type: str, payload: dict) -> Entry:
    if entry_type not in ENTRY_TYPES:
        raise ValueError(f"unknown entry type {entry_type!r}")
    value = chain_hash(previous_hash, n, entry_type, payload_hash(payload))
    return Entry(n, entry_type, payload, value.hex())
