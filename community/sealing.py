"""The site's storage key, from its configuration, and sealing secrets at rest with it
(crypto/sealed.py; docs/operations.md, "Secrets at rest").

The key is the one in the file YISHI_KEY_FILE names when it is set, else the one derived
from SECRET_KEY. It is read or derived once per process and secret."""

from __future__ import annotations

import json
import logging
from functools import lru_cache

from flask import current_app

from crypto import sealed

logger = logging.getLogger("yishi.security")

KEY_FILE = "YISHI_KEY_FILE"


class StorageKeyError(RuntimeError):
    """The site cannot open a secret it keeps: its key is missing or is not the one the
    secret was sealed with. An operator's problem, with what to do about it."""


def key_file() -> str | None:
    return current_app.config.get(KEY_FILE) or None


def key_source() -> str:
    """Where the storage key comes from: "YISHI_KEY_FILE" or "SECRET_KEY"."""
    return KEY_FILE if key_file() else "SECRET_KEY"


def storage_key() -> bytes:
    path = key_file()
    if path:
        return _file_key(path)
    return _derived_key(current_app.config["SECRET_KEY"])


@lru_cache(maxsize=4)
def _derived_key(secret: str | bytes) -> bytes:
    return sealed.derive_key(secret)


@lru_cache(maxsize=4)
def _file_key(path: str) -> bytes:
    try:
        key = sealed.read_key_file(path)
    except sealed.KeyFileError as error:
        raise StorageKeyError(f"YISHI_KEY_FILE: {error}.") from error
    if sealed.loose_permissions(path):
        detail = "YISHI_KEY_FILE can be read or written by others than its owner: chmod 600 it"
        logger.warning(json.dumps({"event": "key_file_permissions", "detail": detail}))
    return key


def seal(plaintext: bytes, context: str) -> str:
    return sealed.seal(storage_key(), plaintext, context)


def unseal(value: str, context: str) -> bytes:
    try:
        return sealed.unseal(storage_key(), value, context)
    except sealed.SealError as error:
        if not sealed.is_sealed(value):
            raise StorageKeyError(
                f"{context.split(':')[0]} holds a value that is not sealed: run "
                "`flask db upgrade` to seal the secrets stored before revision "
                "0008_sealed_secrets."
            ) from error
        raise StorageKeyError(
            f"A sealed secret ({context.split(':')[0]}) does not open with this site's "
            f"storage key (from {key_source()}, key id {sealed.key_id(storage_key())}): "
            "SECRET_KEY or YISHI_KEY_FILE is not the one it was sealed with (restore the "
            "original one; see docs/operations.md, 'Secrets at rest'), or the value was "
            "altered or moved from another row."
        ) from error
