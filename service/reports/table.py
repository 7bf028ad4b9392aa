"""Plain-text tables for the terminal: the replay benchmark, the what-if comparison and the live pauses."""

from __future__ import annotations


def cell(value: float | None, fmt: str = "{:.0f}") -> str:
    """A number formatted for a table; '-' where there is none."""
    return "-" if value is None else fmt.format(value)


def render(rows: list[list[str]], first_left: bool = True, rule: bool = True) -> str:
    """Header row first; the first column left-aligned (unless not `first_left`), the rest right-aligned,
    a rule under the header (unless not `rule`)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 and first_left else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    if rule:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
