"""The audit log's primitives and its verifier: the hash chain of audit entries (the
ballot board's chain construction with audit-only BLAKE2b personalizations), the site
key, the signed daily head, and `verify_log`, which names the first altered, missing or
reordered entry.

Specified in docs/audit-format.md. PyNaCl, the standard library and crypto.board only.

    python -m crypto.audit audit.json --key <site public key hex>

checks an exported log (`flask audit export`) and exits 0 when it is intact, 1 if not."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from crypto.board import GENESIS, canonical, digest, from_secret, parse

PERSON_RECORD = b"yishi-arecord-v1"  # the canonical record of one entry
PERSON_LINK = b"yishi-alink-v1"  # a link of the audit chain
PERSON_SITE_KEY = b"yishi-sitekey-v1"  # the site key's seed, from the SECRET_KEY

HEAD_MESSAGE = b"yishi-v1/audit-head\n"
LOG_NAME = "yishi-audit"


def site_seed(secret: bytes | str) -> bytes:
    """The 32-byte Ed25519 seed of the site key, derived from the application's secret."""
    return from_secret(PERSON_SITE_KEY, secret, "site key")


def public_key(seed: bytes) -> str:
    return SigningKey(seed).verify_key.encode().hex()


def record(entry: dict) -> dict:
    """The hashed part of an entry: everything but `n`, `action` (both in the link),
    `prev` and `hash`."""
    return {
        "at": entry["at"],
        "community": entry["community"],
        "actor": entry["actor"],
        "subject": entry["subject"],
        "details": entry["details"],
    }


def link(previous: bytes, n: int, action: str, entry_record: dict) -> bytes:
    """hash_n = H(alink, prev ‖ uint64be(n) ‖ uint8(len(action)) ‖ action ‖ H(arecord,
    canonical(record))): the board's chain construction, audit personalizations."""
    name = action.encode("ascii")
    if not name or len(name) > 255:
        raise ValueError("an action is 1 to 255 ASCII characters")
    return digest(
        PERSON_LINK,
        previous
        + n.to_bytes(8, "big")
        + len(name).to_bytes(1, "big")
        + name
        + digest(PERSON_RECORD, canonical(entry_record)),
    )


def entry_hash(previous: bytes, entry: dict) -> bytes:
    return link(previous, entry["n"], entry["action"], record(entry))


def head_value(date: str, n: int, hash_hex: str) -> dict:
    return {"log": LOG_NAME, "date": date, "n": n, "hash": hash_hex}


def sign_head(seed: bytes, value: dict) -> str:
    return SigningKey(seed).sign(HEAD_MESSAGE + canonical(value)).signature.hex()


def verify_head(public_key_hex: str, value: dict, signature_hex: str) -> bool:
    try:
        key = VerifyKey(bytes.fromhex(public_key_hex))
        key.verify(HEAD_MESSAGE + canonical(value), bytes.fromhex(signature_hex))
    except (BadSignatureError, ValueError, TypeError, KeyError, RecursionError):
        return False
    return True


# ---------------------------------------------------------------- verifying


@dataclass(frozen=True)
class Problem:
    position: int  # the entry's n (where it should be in the chain)
    reason: str  # "altered", "missing", "reordered" or "bad signature"
    detail: str

    def __str__(self) -> str:
        return f"entry {self.position}: {self.reason} ({self.detail})"


@dataclass(frozen=True)
class Report:
    count: int
    head: str  # hex hash of the last entry (GENESIS in hex when empty)
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_log(
    entries: list[dict],
    head: dict | None = None,
    signatures: list[dict] = (),
    public_key_hex: str | None = None,
) -> Report:
    """Check a log given in order of `n`: each entry is {"n", "at", "community", "actor",
    "action", "subject", "details", "prev", "hash"}; `head` the stored {"n", "hash"} of the
    last entry; `signatures` the daily heads {"date", "n", "hash", "signature"}. Returns the
    first problem: chain order first, then the stored head, then the signatures."""
    stored = {}
    for position, entry in enumerate(entries):
        stored.setdefault(str(entry.get("hash")), position)
    previous = GENESIS
    for position, entry in enumerate(entries):
        n = entry.get("n")
        if not isinstance(n, int) or n < position:
            return _report(entries, position, "reordered", f"numbered {n!r}")
        if n > position:
            return _report(entries, position, "missing", f"the next entry is numbered {n}")
        if entry.get("prev") != previous.hex():
            before = stored.get(str(entry.get("prev")))
            if entry.get("prev") == GENESIS.hex():
                before = -1
            if before is not None and before != position - 1:
                where = f"entry {before}" if before >= 0 else "nothing: it is the first"
                return _report(entries, position, "reordered", f"it follows {where}")
            return _report(entries, position, "altered", "its link to the previous entry differs")
        try:
            computed = entry_hash(previous, entry)
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as error:
            return _report(entries, position, "altered", f"malformed: {error}")
        if computed.hex() != entry.get("hash"):
            return _report(entries, position, "altered", "its content does not match its hash")
        previous = computed
    count, last = len(entries), previous.hex()
    if head is not None:
        if head.get("n", -1) >= count:
            return Report(
                count, last, Problem(count, "missing", f"the head names entry {head['n']}")
            )
        if count and (head.get("n") != count - 1 or head.get("hash") != last):
            return Report(count, last, Problem(count - 1, "altered", "the stored head differs"))
    for signed in signatures:
        n, date = signed.get("n"), signed.get("date")
        if not isinstance(n, int) or n >= count:
            problem = Problem(count, "missing", f"the head signed on {date} names entry {n}")
            return Report(count, last, problem)
        value = head_value(str(date), n, str(signed.get("hash")))
        if public_key_hex is None or not verify_head(
            public_key_hex, value, str(signed.get("signature"))
        ):
            problem = Problem(n, "bad signature", f"the head signed on {date}")
            return Report(count, last, problem)
        if entries[n]["hash"] != signed.get("hash"):
            problem = Problem(n, "altered", f"it differs from the head signed on {date}")
            return Report(count, last, problem)
    return Report(count, last, None)


def _report(entries: list[dict], position: int, reason: str, detail: str) -> Report:
    return Report(len(entries), "", Problem(position, reason, detail))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify an exported Yishi audit log.")
    parser.add_argument("file", type=Path)
    parser.add_argument("--key", help="the site public key (hex); default: the file's")
    args = parser.parse_args(argv)
    try:
        document = parse(args.file.read_bytes())
    except (OSError, ValueError) as error:
        print(f"cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    report = verify_log(
        document.get("entries", []),
        document.get("head"),
        document.get("signatures", []),
        args.key or document.get("site_key"),
    )
    if report.ok:
        print(f"OK: {report.count} entries, head {report.head}")
        return 0
    print(report.problem)
    return 1


if __name__ == "__main__":
    sys.exit(main())
