"""Which entries the verifier checks on the board's text, and which it parses again."""

from __future__ import annotations

from crypto import verify as verifier


def checked_in_full(data: bytes, monkeypatch) -> tuple[verifier.Report, list[str]]:
    """verify_json's report on `data` (in this process) and the types of the entries it
    parsed again for the full checks, in board order: those not in the server's form of a
    credential or an online ballot."""
    again = []
    real = verifier._guarded

    def spy(entry, *args):
        again.append(entry["type"])
        return real(entry, *args)

    monkeypatch.setattr(verifier, "_guarded", spy)
    return verifier.verify_json(data, workers=1), again
