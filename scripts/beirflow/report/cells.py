"""How a score is shown in every table beirflow writes (the leaderboard's and the report's): four
decimals, a dash where there is no run, and the best of a row in bold, ties included."""

from __future__ import annotations

from collections.abc import Sequence

MISSING = "–"


def best_flags(values: Sequence[float | None]) -> list[bool]:
    """Which values are their row's best at the four decimals shown (ties are all best)."""
    shown = [None if value is None else round(value, 4) for value in values]
    top = max((value for value in shown if value is not None), default=None)
    return [value is not None and value == top for value in shown]


def score_cells(values: Sequence[float | None], bold: tuple[str, str], suffixes: Sequence[str] | None = None) -> list[str]:
    """One row's cells: each score to four decimals (with its suffix, such as significance marks), the
    best wrapped in ``bold`` (``("**", "**")`` for Markdown, ``("<b>", "</b>")`` for HTML)."""
    texts = [
        MISSING if value is None else f"{value:.4f}{suffixes[index] if suffixes else ''}" for index, value in enumerate(values)
    ]
    return [f"{bold[0]}{text}{bold[1]}" if best else text for text, best in zip(texts, best_flags(values), strict=True)]
