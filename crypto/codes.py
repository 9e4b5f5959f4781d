"""One-time codes (household invitations): random, typeable, stored only as a hash."""

from __future__ import annotations

import secrets

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

# No 0/O, 1/I/L: codes are read aloud and typed by elderly residents.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
PERSON = b"yishi-invite-v1"  # BLAKE2b personalisation: at most 16 bytes


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalize_code(text: str) -> str:
    """Upper-case and drop spaces and dashes, as people type codes."""
    return "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())


def code_digest(code: str) -> str:
    """Hex BLAKE2b-256 of the normalized code, domain-separated."""
    normalized = normalize_code(code).encode("ascii", "ignore")
    return blake2b(normalized, digest_size=32, person=PERSON, encoder=RawEncoder).hex()
