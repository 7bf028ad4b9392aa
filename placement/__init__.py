"""The placement engine: `plan(request) -> response`, a pure function of a contract v1 request."""

from placement.plan import greedy_plan, plan
from placement.score import pause_for_action

__all__ = ["greedy_plan", "pause_for_action", "plan"]
