"""The CP-SAT model of one epoch at pool level: variables, constraints and objective in their own
modules (as PyJobShop lays out its solvers), and `solve` tying them together.

Loaded on first use: OR-Tools' CP-SAT module imports pandas, 0.2 s of every process that imports the
engine (each `meridian plan`, each replay worker), and a plan small enough to prove without search
never calls it."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from placement.cpsat.solve import CpsatResult, solve_pool_model

__all__ = ["CpsatResult", "load", "load_s", "solve_pool_model"]


def load_s(estimate_s: float) -> float:
    """What a CP-SAT stage must add to what it needs before it starts: `estimate_s` (the import, measured
    0.39-0.52 s on the 2-core machine) until the module is loaded, nothing once it is. A plan that imports
    it inside its limit (`meridian plan` on a small request) would otherwise start a stage with 0.05 s left
    and return 0.1-0.5 s past the limit (0.3 s requests of 20 jobs: solve_s 0.29-0.44 s)."""
    return 0.0 if "placement.cpsat.solve" in sys.modules else estimate_s


def load() -> None:
    """Import the CP-SAT module now, so the time it takes is spent before a stage sizes its budget."""
    importlib.import_module("placement.cpsat.solve")


def __getattr__(name: str) -> Any:
    if name in __all__:
        from placement.cpsat import solve

        return getattr(solve, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
