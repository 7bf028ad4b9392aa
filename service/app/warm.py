"""The previous plan's warm state per fleet, for answering the next request of that fleet warm.

Why: a control plane sends a planet fleet's request every epoch, about 1 % of its jobs changed; the engine
re-plans such a request from what the previous solve learned (`placement.replan`) in a fraction of the
full solve's time. The engine keeps nothing between calls, so the service holds the state, keyed by the
fleet's digest (two fleets never share one), in memory only and bounded: the `size` fleets used most
recently (LRU). A lost entry costs one full solve, never a wrong plan: the engine checks every state it
is handed against the request.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class WarmCache:
    """At most `size` fleets' warm states (0: none kept), least recently used dropped first. Thread-safe:
    solver threads read and write it."""

    def __init__(self, size: int):
        self.size = size
        self._lock = threading.Lock()
        self._states: OrderedDict[str, Any] = OrderedDict()

    def get(self, fleet: str) -> Any | None:
        with self._lock:
            state = self._states.get(fleet)
            if state is not None:
                self._states.move_to_end(fleet)
            return state

    def put(self, fleet: str, state: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._states[fleet] = state
            self._states.move_to_end(fleet)
            while len(self._states) > self.size:
                self._states.popitem(last=False)

    def drop(self, fleet: str) -> None:
        """Forget a fleet's state (its last plan learned nothing to start from)."""
        with self._lock:
            self._states.pop(fleet, None)

    def fleets(self) -> list[str]:
        """The fleets held, least recently used first."""
        with self._lock:
            return list(self._states)
