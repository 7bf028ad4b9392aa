"""Bad-row handling shared by every trace loader: fail naming the line, or skip and count."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
OnBad = Literal["error", "skip"]


class TraceFormatError(ValueError):
    """A row (or header) a loader cannot read: names the file, the line and the offending value."""

    def __init__(self, path: str, line: int, message: str):
        self.path = path
        self.line = line
        self.message = message
        super().__init__(f"{path} line {line}: {message}")

    def __reduce__(self):
        # Rebuilt from its three parts, so it crosses a process pool intact (the default pickles only the text).
        return (type(self), (self.path, self.line, self.message))


@dataclass
class LoadResult(Generic[T]):
    """The rows a loader kept, and why it dropped the others (reason -> count, first examples)."""

    rows: list[T] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)   # "line N: message" for the first few skipped rows

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def skip(self, line: int, reason: str, detail: str = "") -> None:
        self.skipped[reason] += 1
        if len(self.examples) < 10:
            self.examples.append(f"line {line}: {detail or reason}")


def bad_row(result: LoadResult, on_bad: OnBad, path: str, line: int, reason: str, detail: str) -> None:
    """Either raise (the default: a user sees the first bad line) or count the row as skipped."""
    if on_bad == "error":
        raise TraceFormatError(path, line, detail)
    result.skip(line, reason, detail)
