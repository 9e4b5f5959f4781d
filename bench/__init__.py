"""Benchmarks. Each prints the data size it used and ends with one JSON line."""

from __future__ import annotations

import os
import time


def machine_speed(signatures: int = 3000) -> int:
    """Ed25519 verifications per second on one core (libsodium, through PyNaCl), measured
    now: the yardstick for the figures of a run on a shared machine, whose speed varies
    (the goals were set where this read about 18,000)."""
    from nacl.signing import SigningKey

    key = SigningKey(bytes(range(32)))
    signed = [key.sign(os.urandom(200)) for _ in range(signatures)]
    verify = key.verify_key.verify
    started = time.perf_counter()
    for message in signed:
        verify(message)
    return round(signatures / (time.perf_counter() - started))
