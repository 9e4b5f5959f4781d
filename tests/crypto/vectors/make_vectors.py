"""Write the test vectors of docs/ballot-format.md into this directory.

    python -m tests.crypto.vectors.make_vectors          # write the files
    python -m tests.crypto.vectors.make_vectors --check  # exit 1 if a file differs

Everything is fixed — the seeds of the round key and the voters' keys, the nonces, the
times — and Ed25519 signatures are deterministic, so the output is the same on every run:
`board-small.json` (a closed and final round: three owners, a re-vote, a replaced
credential, a paper ballot, a blank answer), `receipts-small.json` (the receipt of every
ballot) and `README.md` (the intermediate values, step by step). tests/crypto/test_vectors.py
regenerates them and compares."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from crypto.board import (
    GENESIS,
    PERSON_BALLOT,
    PERSON_CHAIN,
    PERSON_PAYLOAD,
    PERSON_ROUND,
    canonical,
    digest,
    public_key,
    signed_message,
)
from crypto.writer import RoundWriter

HERE = Path(__file__).resolve().parent
BOARD = "board-small.json"
RECEIPTS = "receipts-small.json"
README = "README.md"

ROUND_SEED = bytes(range(32))  # 000102…1f
SEEDS = {  # voter -> the 32-byte seed of a credential key
    "A": bytes([0xA1]) * 32,
    "B": bytes([0xB1]) * 32,
    "B2": bytes([0xB2]) * 32,  # B's new device: revokes B
    "C": bytes([0xC1]) * 32,  # custodial: a paper ballot entered by the committee
}
NONCES = [f"{k:032x}" for k in range(1, 6)]  # 000…01, 000…02, …

MANIFEST = {
    "version": 1,
    "round_id": 1,
    "community": "阳光花园 Sunny Garden",
    "title": "Lift for building 3",
    "explanation": "Owners of building 3 decide on the lift … and the garden. 𠮷",
    "scope": "Building 3",
    "opens_at": "2026-12-01T00:00:00Z",
    "closes_at": "2026-12-08T00:00:00Z",
    "secrecy": "named",
    "electorate": {"kind": "owners", "voters": 3, "weight": 30000},
    "questions": [
        {
            "id": "q1",
            "title": "Install the lift?",
            "method": "yes_no_abstain",
            "max_choices": 1,
            "options": [
                {"id": "yes", "label": "Yes"},
                {"id": "no", "label": "No"},
                {"id": "abstain", "label": "Abstain"},
            ],
            "rule": {"kind": "art278_major", "quorum": None},
            "proposal": 7,
        },
        {
            "id": "q2",
            "title": "Plants for the garden (up to two)",
            "method": "approval",
            "max_choices": 2,
            "options": [
                {"id": "a", "label": "Roses"},
                {"id": "b", "label": "Bamboo"},
                {"id": "c", "label": "Herbs"},
            ],
            "rule": {"kind": "simple_majority", "quorum": [1, 2]},
            "proposal": None,
        },
    ],
}


def at(day: int, hour: int = 8) -> datetime:
    return datetime(2026, 12, day, hour, 0, tzinfo=UTC)


def build_round() -> tuple[RoundWriter, list[dict]]:
    w = RoundWriter(MANIFEST, ROUND_SEED)
    w.open(at(1, 0))
    w.register(12000, unit="3-101", custodial=False, seed=SEEDS["A"])
    w.register(10000, unit="3-102", custodial=False, seed=SEEDS["B"])
    w.register(8000, unit="3-201", custodial=True, seed=SEEDS["C"])
    nonces = iter(NONCES)
    receipts = [
        w.cast(SEEDS["A"], {"q1": ["yes"], "q2": ["a", "c"]}, nonce=next(nonces)),
        w.cast(SEEDS["B"], {"q1": ["no"], "q2": ["b"]}, nonce=next(nonces)),
        w.cast(SEEDS["A"], {"q1": ["yes"], "q2": ["c"]}, nonce=next(nonces)),
    ]
    w.register(10000, unit="3-102", custodial=False, revokes=SEEDS["B"], seed=SEEDS["B2"])
    receipts.append(w.cast(SEEDS["B2"], {"q1": ["yes"], "q2": []}, nonce=next(nonces)))
    receipts.append(
        w.cast(
            SEEDS["C"],
            {"q1": ["abstain"], "q2": ["a"]},
            channel="paper",
            entered_by="Committee member Wang",
            nonce=next(nonces),
        )
    )
    w.close(at(8, 0))
    w.finalize("final", at(15), "no objection within seven days")
    return w, receipts


def _json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=True) + "\n"


def _chain_input(previous: bytes, n: int, kind: str, payload_digest: bytes) -> bytes:
    code = kind.encode("ascii")
    return previous + n.to_bytes(8, "big") + bytes([len(code)]) + code + payload_digest


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line]


def _person(person: bytes) -> str:
    return person.ljust(16, b"\0").hex()


def intermediate_values(w: RoundWriter, receipts: list[dict]) -> dict[str, str]:
    """The values README.md lists, by name (test_vectors.py looks some up in the spec)."""
    entries = w.entries
    v: dict[str, str] = {}
    v["round_seed"] = ROUND_SEED.hex()
    v["round_key"] = w.manifest["round_key"]
    v["manifest_canonical"] = canonical(w.manifest).decode("ascii")
    v["round_hash"] = w.round_hash
    previous = GENESIS
    for n in (0, 1):
        entry = entries[n]
        payload_digest = digest(PERSON_PAYLOAD, canonical(entry["payload"]))
        v[f"payload_hash_{n}"] = payload_digest.hex()
        v[f"chain_input_{n}"] = _chain_input(previous, n, entry["type"], payload_digest).hex()
        v[f"hash_{n}"] = entry["hash"]
        previous = bytes.fromhex(entry["hash"])
    v["open_canonical"] = canonical(entries[1]["payload"]).decode("ascii")
    v["manifest_signature"] = entries[0]["payload"]["signature"]
    first = receipts[0]
    n = first["n"]
    ballot = entries[n]
    body = ballot["payload"]["ballot"]
    v["ballot_n"] = str(n)
    v["voter_seed"] = SEEDS["A"].hex()
    v["voter_key"] = public_key(SEEDS["A"])
    v["ballot_signed_message"] = signed_message("ballot", body).decode("ascii")
    v["ballot_signature"] = ballot["payload"]["signature"]
    v["ballot_payload_canonical"] = canonical(ballot["payload"]).decode("ascii")
    payload_digest = digest(PERSON_PAYLOAD, canonical(ballot["payload"]))
    v["ballot_payload_hash"] = payload_digest.hex()
    v["ballot_hash"] = digest(PERSON_BALLOT, canonical(ballot["payload"])).hex()
    previous = bytes.fromhex(entries[n - 1]["hash"])
    v["ballot_chain_input"] = _chain_input(previous, n, "ballot", payload_digest).hex()
    v["ballot_chain_hash"] = ballot["hash"]
    receipt_body = {k: first[k] for k in ("round", "n", "ballot", "head")}
    v["receipt_signed_message"] = signed_message("receipt", receipt_body).decode("ascii")
    v["receipt_signature"] = first["signature"]
    head = w.head()
    head_body = {k: head[k] for k in ("round", "n", "hash")}
    v["head_signed_message"] = signed_message("head", head_body).decode("ascii")
    v["head_signature"] = head["signature"]
    return v


def readme(w: RoundWriter, receipts: list[dict]) -> str:
    v = intermediate_values(w, receipts)
    n = v["ballot_n"]
    voters = "\n".join(
        f"| {name} | `{seed.hex()}` | `{public_key(seed)}` |" for name, seed in SEEDS.items()
    )
    kinds = ", ".join(f"{i} {e['type']}" for i, e in enumerate(w.entries))
    kinds = "\n  ".join(_wrap(kinds, 86))
    return f"""# Test vectors: Yishi ballot format, version 1

Written by `python -m tests.crypto.vectors.make_vectors` (do not edit by hand);
`tests/crypto/test_vectors.py` writes them again and checks that nothing changed and that
the verifier accepts them. Nothing is random: the key seeds, the nonces and the times are
fixed, and Ed25519 signatures (RFC 8032) are deterministic. See docs/ballot-format.md.

- `{BOARD}`: the board of a closed and final round (section 3), with the entries
  {kinds}.
  Three owners in a `named` round; A votes twice (the second ballot counts), B's credential
  is replaced by B2 (a new device) after B voted, so B's ballot does not count; C's paper
  ballot is entered by the committee (custodial key); B2 leaves question q2 blank.
- `{RECEIPTS}`: the receipt of each of the five ballots (section 4), in board order.

Check your implementation with: `python -m crypto.verify tests/crypto/vectors/{BOARD}
--receipt tests/crypto/vectors/{RECEIPTS}` (exit 0), then against the values below.

## Keys

An Ed25519 key is given by its 32-byte seed (RFC 8032 "private key"); the public key is
derived from it.

| key | seed | public key |
|---|---|---|
| round key | `{v["round_seed"]}` | `{v["round_key"]}` |
{voters}

## 1. The manifest and the round hash

The canonical manifest ({len(v["manifest_canonical"])} bytes, ASCII; note the `\\uXXXX`
escapes, lower-case, with a surrogate pair for U+20BB7):

```
{v["manifest_canonical"]}
```

The BLAKE2b personalizations, as 16 bytes in hex (the ASCII name, zero-padded):

| person | 16 bytes |
|---|---|
| `yishi-round-v1` | `{_person(PERSON_ROUND)}` |
| `yishi-payload-v1` | `{_person(PERSON_PAYLOAD)}` |
| `yishi-chain-v1` | `{_person(PERSON_CHAIN)}` |
| `yishi-ballot-v1` | `{_person(PERSON_BALLOT)}` |

round hash = BLAKE2b-256(person `yishi-round-v1`, canonical manifest):

    {v["round_hash"]}

The manifest signature in entry 0 (round key, purpose `manifest`: the signed bytes are
`yishi-v1/manifest` + a newline byte 0x0a + the canonical manifest):

    {v["manifest_signature"]}

## 2. The first links of the chain

Entry 0 (`setup`): payload hash = BLAKE2b-256(person `yishi-payload-v1`, canonical payload)

    {v["payload_hash_0"]}

chain input = 32 zero bytes ‖ uint64_be(0) ‖ uint8(5) ‖ "setup" ‖ payload hash (hex):

    {v["chain_input_0"]}

hash_0 = BLAKE2b-256(person `yishi-chain-v1`, chain input):

    {v["hash_0"]}

Entry 1 (`open`): canonical payload `{v["open_canonical"]}`, payload hash

    {v["payload_hash_1"]}

chain input = hash_0 ‖ uint64_be(1) ‖ uint8(4) ‖ "open" ‖ payload hash:

    {v["chain_input_1"]}

hash_1:

    {v["hash_1"]}

## 3. A ballot (entry {n}, voter A)

Voter A's key: seed `{v["voter_seed"]}`,
public key `{v["voter_key"]}`.

The signed message (purpose `ballot`: `yishi-v1/ballot`, a newline, the canonical ballot
object), shown as text — the line break is the single byte 0x0a:

```
{v["ballot_signed_message"]}
```

Its Ed25519 signature by A's key:

    {v["ballot_signature"]}

The canonical payload of entry {n}:

```
{v["ballot_payload_canonical"]}
```

payload hash (person `yishi-payload-v1`):

    {v["ballot_payload_hash"]}

ballot hash, the `ballot` of the receipt (person `yishi-ballot-v1`, same bytes):

    {v["ballot_hash"]}

chain input = hash_{int(n) - 1} ‖ uint64_be({n}) ‖ uint8(6) ‖ "ballot" ‖ payload hash:

    {v["ballot_chain_input"]}

hash_{n}:

    {v["ballot_chain_hash"]}

## 4. Its receipt and the head

The receipt's signed message (round key, purpose `receipt`):

```
{v["receipt_signed_message"]}
```

signature:

    {v["receipt_signature"]}

The head's signed message (round key, purpose `head`) and signature:

```
{v["head_signed_message"]}
```

    {v["head_signature"]}
"""


def build() -> dict[str, str]:
    """File name -> content."""
    w, receipts = build_round()
    return {
        BOARD: _json(w.board()),
        RECEIPTS: _json(receipts),
        README: readme(w, receipts),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.crypto.vectors.make_vectors")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    changed = []
    for name, content in build().items():
        path = HERE / name
        if path.exists() and path.read_text(encoding="utf-8") == content:
            continue
        changed.append(name)
        if not args.check:
            path.write_text(content, encoding="utf-8")
    for name in changed:
        print(f"{'differs' if args.check else 'wrote'}: {HERE / name}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
