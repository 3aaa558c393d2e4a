"""The report's Markdown pieces: table rows, paragraphs, and how numbers are shown."""

from __future__ import annotations


def pct(x: float) -> str:
    return f"{x * 100:+.1f} %"


def fmt_pps(x: float) -> str:
    return f"{x:,.0f}"


def row(*cells: object) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def para(*parts: str) -> str:
    """One Markdown paragraph from source-sized pieces."""
    return " ".join(p.strip() for p in parts)
