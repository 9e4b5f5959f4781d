"""Password hashing with Argon2id (libsodium's crypto_pwhash, via nacl.pwhash).

The stored string is libsodium's own encoded form (`$argon2id$v=19$m=...,t=...,p=1$...`),
which carries its parameters, so a hash made at one cost verifies at any other."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from nacl import pwhash
from nacl.exceptions import InvalidkeyError


@dataclass(frozen=True)
class Cost:
    opslimit: int
    memlimit: int


# libsodium's "interactive" preset (about 64 MiB): what a login page should pay.
INTERACTIVE = Cost(pwhash.argon2id.OPSLIMIT_INTERACTIVE, pwhash.argon2id.MEMLIMIT_INTERACTIVE)
# The smallest allowed cost; only for test suites, which hash thousands of passwords.
MINIMAL = Cost(pwhash.argon2id.OPSLIMIT_MIN, pwhash.argon2id.MEMLIMIT_MIN)


def hash_password(password: str, cost: Cost = INTERACTIVE) -> str:
    encoded = pwhash.argon2id.str(
        password.encode("utf-8"), opslimit=cost.opslimit, memlimit=cost.memlimit
    )
    return encoded.decode("ascii")


def verify_password(stored: str, password: str) -> bool:
    if not stored or not stored.startswith("$argon2id$"):
        return False
    try:
        return pwhash.argon2id.verify(stored.encode("ascii"), password.encode("utf-8"))
    except InvalidkeyError:
        return False


def needs_rehash(stored: str, cost: Cost) -> bool:
    """True when the stored hash was made with different parameters than `cost`."""
    try:
        params = stored.split("$")[3]
        fields = dict(item.split("=") for item in params.split(","))
        return int(fields["m"]) * 1024 != cost.memlimit or int(fields["t"]) != cost.opslimit
    except (IndexError, KeyError, ValueError):
        return True


# A password no one can type, for comparing against when the account does not exist,
# so that unknown and known accounts take the same time to refuse.
@functools.lru_cache(maxsize=4)
def dummy_hash(cost: Cost) -> str:
    return hash_password("yishi-no-such-account", cost)
