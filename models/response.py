"""The plan response of contract v1, as pydantic types."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from models.request import Placement

Status = Literal["optimal", "feasible", "fallback", "infeasible"]
ActionKind = Literal["start", "preempt", "resize", "move", "migrate"]


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job: str
    cluster: str
    accelerator: str
    nodes: dict[str, int]

    def placement(self) -> Placement:
        return Placement(cluster=self.cluster, accelerator=self.accelerator, nodes=dict(self.nodes))


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)
    job: str
    kind: ActionKind
    from_: Placement | None = Field(alias="from")
    to: Placement | None


class Unplaced(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job: str
    reason: str
    code: str = Field(
        description="extension: machine-readable reason (quota, no_capacity, no_link, migration_budget, "
        "outbid, too_large, not_worth_restart, infeasible)"
    )


class Breakdown(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float
    disruption: float
    spread: float


class ReplanStats(BaseModel):
    """Extension: what a warm re-plan (placement/replan.py) started from and what changed since."""

    model_config = ConfigDict(extra="forbid")
    arrivals: int = Field(description="jobs not in the previous request")
    completions: int = Field(description="jobs of the previous request no longer present")
    changed: int = Field(description="jobs in both whose attributes or running state differ from what the previous plan left")
    share: float = Field(description="(arrivals + completions + changed) / jobs of the previous request")
    kept: int = Field(description="jobs whose previous placement was carried over as it was")
    chain: int = Field(description="warm re-plans since the last full solve, this one included")


class SolverStats(BaseModel):
    """Extension: how the plan was found, for operators and benchmarks."""

    model_config = ConfigDict(extra="forbid")
    engine: str = Field(description="which stage produced the plan: greedy, lp_rounding, rens (the whole-node-cut integer "
                        "model within its LP's integral part), cpsat, node_milp, whole_node_mip (that model solved "
                        "beside the search), replan")
    cpsat_status: str | None = None
    bound_method: str = Field(description="lp, lagrangian, quota_knapsack, pool_knapsack, cpsat, whole_node_mip or node_milp: "
                                          "which proof gave `bound`")
    jobs: int
    options: int
    cpsat_variables: int = 0
    phases_s: dict[str, float] = Field(default_factory=dict)
    replan: ReplanStats | None = Field(None, description="set when a warm re-plan answered (engine `replan`)")


class PlanResponse(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)
    plan_id: str | None = None
    status: Status
    objective: float | None
    bound: float | None
    gap: float | None
    breakdown: Breakdown | None
    solve_s: float
    assignments: list[Assignment] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    unplaced: list[Unplaced] = Field(default_factory=list)
    stats: SolverStats | None = None


M = TypeVar("M", bound=BaseModel)


def built(cls: type[M], values: dict[str, Any]) -> M:
    """`cls.model_construct(**values)` where `values` gives every field of `cls` by its name, in field
    order, already valid: the same instance, without model_construct's walk over the fields (aliases,
    defaults), which a warm re-plan paid thousands of times per answer (one reason per waiting job, one
    assignment per moved job). Trusted values only, as model_construct."""
    m = cls.__new__(cls)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", set(values))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m
