"""Shared by the page tests and the browser tests: a request whose plan leaves jobs waiting, for a reason
each, and the references a served HTML page makes."""

from __future__ import annotations

import re
from typing import Any

from tests.support.service import example_request

WAITING = {"giant-sweep": "too_small", "vision-extra": "quota"}


def waiting_request() -> dict[str, Any]:
    """The README's example plus two jobs that must wait: one larger than any V100 pool (too_small), one
    over its tenant's standard quota (quota)."""
    req = example_request()
    req["jobs"].append({"id": "giant-sweep", "tenant": "vc-speech", "tier": "basic",
                        "replicas": {"min": 64, "max": 64}, "speed": {"V100": 0.3}, "checkpoint_gb": 1})
    req["jobs"].append({"id": "vision-extra", "tenant": "vc-vision", "tier": "standard",
                        "replicas": {"min": 8, "max": 8}, "speed": {"V100": 0.3, "A100": 0.6}, "checkpoint_gb": 1})
    req["policy"]["time_limit_s"] = 1        # the engine may use all of it: keep the tests quick
    return req


_REF = re.compile(r"""\b(?:src|href|action)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


def references(html: str) -> list[str]:
    """Every src, href and action value in `html`."""
    return _REF.findall(html)
