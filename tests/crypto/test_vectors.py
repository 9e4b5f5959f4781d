"""The committed test vectors (tests/crypto/vectors/) are what make_vectors.py writes today,
the verifier accepts them, an outsider's few lines of hashlib and PyNaCl reproduce their
intermediate values, and docs/ballot-format.md quotes the same values."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from crypto.verify import verify_file
from tests.crypto.vectors import make_vectors

HERE = make_vectors.HERE
SPEC = Path(__file__).resolve().parents[2] / "docs" / "ballot-format.md"


def test_the_committed_vectors_are_what_the_generator_writes():
    for name, content in make_vectors.build().items():
        assert (HERE / name).read_text(encoding="utf-8") == content, (
            f"{name} is out of date: run python -m tests.crypto.vectors.make_vectors"
        )


def test_the_verifier_accepts_the_vectors_and_their_receipts():
    report = verify_file(
        str(HERE / make_vectors.BOARD), [str(HERE / make_vectors.RECEIPTS)], workers=1
    )
    assert report.ok, report.problems
    assert report.summary["status"] == "final"
    assert (report.summary["ballots"], report.summary["counted"]) == (5, 3)


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _h(person: bytes, data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32, person=person).digest()


def test_an_outsider_reproduces_the_values_from_the_spec_alone():
    """Only the spec's formulas, hashlib and PyNaCl: no code of crypto/."""
    board = json.loads((HERE / make_vectors.BOARD).read_text())
    receipts = json.loads((HERE / make_vectors.RECEIPTS).read_text())
    entries = board["entries"]
    manifest = entries[0]["payload"]["manifest"]
    assert _h(b"yishi-round-v1", _canonical(manifest)).hex() == board["round"]
    assert SigningKey(bytes(range(32))).verify_key.encode().hex() == manifest["round_key"]
    round_key = VerifyKey(bytes.fromhex(manifest["round_key"]))
    round_key.verify(
        b"yishi-v1/manifest\n" + _canonical(manifest),
        bytes.fromhex(entries[0]["payload"]["signature"]),
    )
    previous = bytes(32)
    for n, entry in enumerate(entries):
        kind = entry["type"].encode()
        link = (
            previous
            + n.to_bytes(8, "big")
            + bytes([len(kind)])
            + kind
            + _h(b"yishi-payload-v1", _canonical(entry["payload"]))
        )
        previous = _h(b"yishi-chain-v1", link)
        assert previous.hex() == entry["hash"], n
        if entry["type"] == "ballot":
            body = entry["payload"]["ballot"]
            VerifyKey(bytes.fromhex(body["credential"])).verify(
                b"yishi-v1/ballot\n" + _canonical(body),
                bytes.fromhex(entry["payload"]["signature"]),
            )
    head = board["head"]
    assert (head["n"], head["hash"]) == (len(entries) - 1, entries[-1]["hash"])
    body = {k: head[k] for k in ("round", "n", "hash")}
    round_key.verify(b"yishi-v1/head\n" + _canonical(body), bytes.fromhex(head["signature"]))
    for receipt in receipts:
        entry = entries[receipt["n"]]
        assert _h(b"yishi-ballot-v1", _canonical(entry["payload"])).hex() == receipt["ballot"]
        assert entry["hash"] == receipt["head"]
        body = {k: receipt[k] for k in ("round", "n", "ballot", "head")}
        round_key.verify(
            b"yishi-v1/receipt\n" + _canonical(body), bytes.fromhex(receipt["signature"])
        )


def test_the_readme_and_the_spec_quote_the_same_values():
    w, receipts = make_vectors.build_round()
    values = make_vectors.intermediate_values(w, receipts)
    readme = (HERE / make_vectors.README).read_text(encoding="utf-8")
    spec = SPEC.read_text(encoding="utf-8")
    for name in ("round_hash", "hash_0", "hash_1", "ballot_hash", "ballot_chain_hash"):
        assert values[name] in readme, name
        assert values[name] in spec, f"docs/ballot-format.md lacks the current {name}"
    for name in ("manifest_canonical", "ballot_signature", "receipt_signature"):
        assert values[name] in readme, name
