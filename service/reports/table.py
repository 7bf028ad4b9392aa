"""Plain-text tables for the terminal: the replay benchmark and the what-if comparison."""

from __future__ import annotations


def cell(value: float | None, fmt: str = "{:.0f}") -> str:
    """A number formatted for a table; '-' where there is none."""
    return "-" if value is None else fmt.format(value)


def render(rows: list[list[str]]) -> str:
    """Header row first; the first column left-aligned, the rest right-aligned, a rule under the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
