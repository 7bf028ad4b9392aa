"""The contract's independent checker (`../shared/spec/plancheck.py`), loaded once for every test.

A user's clone has no `../shared`: `load()` then returns None and the tests that need the checker skip,
saying where they looked; the project's own verifier (`placement.verify`) still runs everywhere.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MERIDIAN_SHARED", REPO.parent / "shared"))
PLANCHECK = SHARED / "spec" / "plancheck.py"
TRACES = SHARED / "traces"
MISSING = f"the independent checker is not at {PLANCHECK}"

_module: ModuleType | None = None


def load() -> ModuleType | None:
    """The checker as a module, or None where `../shared` is absent."""
    global _module
    if _module is None and PLANCHECK.exists():
        spec = importlib.util.spec_from_file_location("meridian_shared_plancheck", PLANCHECK)
        assert spec and spec.loader, f"cannot load {PLANCHECK}"
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _module = mod
    return _module


def require() -> ModuleType:
    """The checker, or skip the calling test."""
    import pytest

    mod = load()
    if mod is None:
        pytest.skip(MISSING)
    return mod
