"""Bad-request errors that name the field path and the offending value."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# An offending value is echoed back whole up to this many characters of JSON, and cut there with its length
# beyond: a 5,000,000-character id made a 5 MB error body, which is no help to the one reading it.
MAX_VALUE_CHARS = 1_000


@dataclass(frozen=True)
class FieldError:
    """One reason a request is refused: where (a JSON path such as `jobs[3].replicas.min`),
    what was there, and why."""

    path: str
    value: Any
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(request)'}: {self.message} (got {_short(self.value)})"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "value": _bounded(self.value), "message": self.message}


class BadRequest(ValueError):
    """A request the contract refuses; raised before any planning, so nothing is half-done."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors[:20]) + (f"; and {len(errors) - 20} more" if len(errors) > 20 else ""))


def loc_to_path(loc: tuple[Any, ...]) -> str:
    """('jobs', 3, 'replicas', 'min') -> 'jobs[3].replicas.min'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _bounded(value: Any) -> Any:
    """The value as JSON holds it, or, past MAX_VALUE_CHARS of JSON, the start of its JSON text and its length."""
    value = _jsonable(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = json.dumps(value)
    return value if len(text) <= MAX_VALUE_CHARS else f"{text[:MAX_VALUE_CHARS]}... ({len(text):,} characters)"


def _short(value: Any) -> str:
    text = json.dumps(_jsonable(value))
    return text if len(text) <= 80 else text[:77] + "..."
