"""Downloads that people open in spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable


def spreadsheet_safe(value) -> str:
    """A CSV cell that a spreadsheet would run as a formula is quoted (RELIABILITY T42)."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def csv_document(header: list[str], rows: Iterable[Iterable]) -> str:
    """CSV text with every cell made spreadsheet-safe."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(header)
    for row in rows:
        out.writerow([spreadsheet_safe(cell) for cell in row])
    return buffer.getvalue()
