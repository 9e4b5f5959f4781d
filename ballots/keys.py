"""The secrets of a round, sealed at rest with the site's storage key (community/sealing.py):
the round key's seed (`Round.key_seed`) and the seeds of custodial credentials
(`Credential.seed`). Nothing else reads or writes those two columns. Each seed is sealed
for its column and the public key of its row, so a sealed seed copied into another row
(or the other column) does not open there."""

from __future__ import annotations

from ballots.models import Credential, Round
from community import sealing
from crypto import board


def round_place(public_key: str) -> str:
    return f"rounds.key_seed:{public_key}"


def credential_place(public_key: str) -> str:
    return f"round_credentials.seed:{public_key}"


def new_round_key() -> tuple[str, str]:
    """A new round key: its seed sealed for `Round.key_seed`, and its public key."""
    seed = board.new_seed()
    public_key = board.public_key(seed)
    return seal_round_seed(seed, public_key), public_key


def seal_round_seed(seed: bytes, public_key: str) -> str:
    return sealing.seal(seed, round_place(public_key))


def _legacy(value: str | None, public_key: str) -> bytes | None:
    """A seed written in the clear (before revision 0008, or by a worker of the previous
    version still running during an upgrade) that is the seed of this row's public key."""
    if not value or len(value) != 64:
        return None
    try:
        seed = bytes.fromhex(value)
    except ValueError:
        return None
    return seed if board.public_key(seed) == public_key else None


def round_seed(round_: Round) -> bytes:
    """The round key's seed; `sealing.StorageKeyError` when this site cannot open it."""
    legacy = _legacy(round_.key_seed, round_.public_key)
    if legacy is not None:
        return legacy
    return sealing.unseal(round_.key_seed, round_place(round_.public_key))


def seal_credential_seed(seed: bytes, public_key: str) -> str:
    return sealing.seal(seed, credential_place(public_key))


def credential_seed(credential: Credential) -> bytes:
    """A custodial credential's seed; `sealing.StorageKeyError` when it cannot be opened."""
    if credential.seed is None:
        raise ValueError("the server does not hold this credential's key")
    legacy = _legacy(credential.seed, credential.public_key)
    if legacy is not None:
        return legacy
    return sealing.unseal(credential.seed, credential_place(credential.public_key))
