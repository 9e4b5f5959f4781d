"""Server-rendered bar charts: the geometry here, the SVG in templates/_charts.html."""

from __future__ import annotations

from dataclasses import dataclass

BAR_MAX = 300  # px of the longest bar


@dataclass
class Bar:
    label: str
    value: int
    length: int  # px
    highlight: bool = False


def bars(items, highlight=None) -> list[Bar]:
    """`items`: (label, value) pairs; the longest bar is BAR_MAX px, a zero bar 0 px."""
    items = [(str(label), int(value)) for label, value in items]
    top = max((value for _label, value in items), default=0) or 1
    return [
        Bar(
            label, value, round(BAR_MAX * value / top), highlight is not None and label == highlight
        )
        for label, value in items
    ]
