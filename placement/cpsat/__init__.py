"""The CP-SAT model of one epoch at pool level: variables, constraints and objective in their own
modules (as PyJobShop lays out its solvers), and `solve` tying them together.

Loaded on first use: OR-Tools' CP-SAT module imports pandas, 0.2 s of every process that imports the
engine (each `meridian plan`, each replay worker), and a plan small enough to prove without search
never calls it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from placement.cpsat.solve import CpsatResult, solve_pool_model

__all__ = ["CpsatResult", "solve_pool_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from placement.cpsat import solve

        return getattr(solve, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
