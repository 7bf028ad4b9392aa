"""The placement engine: `plan(request) -> response`, a pure function of a contract v1 request."""

from placement.plan import greedy_plan, plan
from placement.score import pause_for_action

__all__ = ["greedy_plan", "load_solver", "pause_for_action", "plan"]


def load_solver() -> None:
    """Import CP-SAT now. The engine loads it on its first CP-SAT solve (its module imports pandas, 0.2 s
    that a plan proved without search never needs); a caller whose clock is running when a plan starts
    (the service, `meridian plan` on a request that will search, the benchmark) loads it beforehand, so
    the import is never taken out of a plan's time limit."""
    import placement.cpsat.solve  # noqa: F401
