"""The cyclic garbage collector, paused while a large request is parsed or planned.

Why: a planet-size request is millions of objects that live until the plan returns, and the
collector walks them again and again while they are built (measured on a loaded machine: 1.75 s
of an 8.5 s greedy plan; half of parsing a 5 MB request). Parsing and planning free their garbage
by reference counting (dicts, lists, arrays, no cycles of note), so above a size the collector is
paused and resumes when the work ends. Only work that found it running resumes it: a caller's own
`gc.disable()` stays, and concurrent plans at worst resume it for each other early."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused(large: bool) -> Iterator[None]:
    """Pause the cyclic collector for the block when `large` (and it is running)."""
    if not large or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
