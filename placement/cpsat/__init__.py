"""The CP-SAT model of one epoch at pool level: variables, constraints and objective in their own
modules (as PyJobShop lays out its solvers), and `solve` tying them together."""

from placement.cpsat.solve import CpsatResult, solve_pool_model

__all__ = ["CpsatResult", "solve_pool_model"]
