"""Secrets at rest: the storage key and the sealed text format of the seeds the database
keeps (a round key's seed, a custodial credential's seed). PyNaCl and the standard
library only; keys are passed in.

The storage key is 32 bytes, either
- derived from the application's SECRET_KEY: BLAKE2b-256 with the personalization
  `yishi-store-v1` over its UTF-8 bytes (as crypto/audit.py derives the site key, with
  another personalization), or
- read from a key file (YISHI_KEY_FILE): 32 random bytes, written as 64 hex digits
  (surrounding whitespace ignored) or as exactly 32 raw bytes; used as the key itself.

A sealed value is the text `s1:` + base64(nonce ‖ ciphertext): XChaCha20-Poly1305
(libsodium's AEAD, `nacl.secret.Aead`) with a random 24-byte nonce, and as associated data
the place the value belongs to (e.g. `rounds.key_seed:<the round's public key>`), so a
value copied into another row or column does not open there. Anything else (64 hex
digits written before sealing existed) is recognisably not sealed."""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.secret import Aead

from crypto.board import digest, from_secret

PREFIX = "s1:"
PERSON_STORE = b"yishi-store-v1"  # the storage key, from the SECRET_KEY
PERSON_KEY_ID = b"yishi-keyid-v1"  # a storage key's public fingerprint
KEY_SIZE = Aead.KEY_SIZE  # 32
NONCE_SIZE = Aead.NONCE_SIZE  # 24


class SealError(ValueError):
    """A value that does not open: another key, another place, or damaged."""


class KeyFileError(ValueError):
    """A key file that cannot be read or does not hold a 32-byte key."""


def derive_key(secret: bytes | str) -> bytes:
    """The 32-byte storage key derived from the application's secret."""
    return from_secret(PERSON_STORE, secret, "storage key")


def read_key_file(path: str | os.PathLike) -> bytes:
    """The key in a key file: exactly 32 raw bytes, or 64 hex digits."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise KeyFileError(f"cannot read the key file {path}: {error.strerror}") from error
    if len(data) == KEY_SIZE:
        return data
    text = data.strip()
    if len(text) == 2 * KEY_SIZE:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise KeyFileError(
        f"the key file {path} must hold 32 random bytes, as 64 hex digits or 32 raw bytes"
    )


def loose_permissions(path: str | os.PathLike) -> bool:
    """Whether others than the file's owner may read or write it."""
    return bool(stat.S_IMODE(os.stat(path).st_mode) & 0o077)


def storage_key(secret: bytes | str | None, key_file: str | os.PathLike | None = None) -> bytes:
    """The key file's key when one is named, else the key derived from `secret`."""
    if key_file:
        return read_key_file(key_file)
    return derive_key(secret or b"")


def key_id(key: bytes) -> str:
    """A short public fingerprint of a storage key (it tells keys apart, reveals nothing)."""
    return digest(PERSON_KEY_ID, key)[:8].hex()


def is_sealed(value: str | None) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def seal(key: bytes, plaintext: bytes, context: str) -> str:
    """`plaintext` sealed for the place named by `context` (ASCII)."""
    sealed = Aead(key).encrypt(plaintext, context.encode("ascii"))
    return PREFIX + base64.b64encode(bytes(sealed)).decode("ascii")


def unseal(key: bytes, value: str, context: str) -> bytes:
    """The plaintext of a sealed value; SealError when it is not sealed, was sealed with
    another key or for another place, or was altered."""
    if not is_sealed(value):
        raise SealError("the value is not sealed")
    try:
        raw = base64.b64decode(value[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as error:
        raise SealError("the sealed value is damaged") from error
    if len(raw) < NONCE_SIZE + Aead.MACBYTES:
        raise SealError("the sealed value is too short")
    try:
        return Aead(key).decrypt(raw, context.encode("ascii"))
    except CryptoError as error:
        raise SealError("the sealed value does not open with this key in this place") from error
