"""The plan request of contract v1 (shared/spec/placement-v1.md), as pydantic types.

Field-level rules (signs, finiteness, ranges) live on the fields, so pydantic reports them
with their path; rules that relate fields to each other live in `models.validate`.
An explicit JSON `null` on a field with a default means "the default", as the contract's
checker reads it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Tier = Literal["premium", "standard", "basic"]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
TIERS: tuple[Tier, ...] = ("premium", "standard", "basic")


class ContractModel(BaseModel):
    """Strict JSON types, no unknown fields, no NaN or infinity, and null means default."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=False)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            fields = cls.model_fields
            drop = [
                k
                for k, v in data.items()
                if v is None and k in fields and fields[k].default is not None and not fields[k].is_required()
            ]
            if drop:
                data = {k: v for k, v in data.items() if k not in drop}
        return data


class Region(ContractModel):
    name: str = Field(min_length=1)
    storage_gbps: float = Field(2.0, gt=0, description="GB/s to checkpoint storage")


class Link(ContractModel):
    a: str
    b: str
    gbps: float = Field(gt=0, description="symmetric GB/s between the two regions")


class NodeGroup(ContractModel):
    prefix: str = Field(min_length=1)
    count: int = Field(ge=0)
    accelerator: str = Field(min_length=1)
    devices: int = Field(ge=1)


class Cluster(ContractModel):
    name: str = Field(min_length=1)
    region: str
    node_groups: list[NodeGroup] = Field(default_factory=list)


class Fleet(ContractModel):
    regions: list[Region] = Field(min_length=1)
    links: list[Link] = Field(default_factory=list)
    clusters: list[Cluster] = Field(default_factory=list)
    down_nodes: list[str] = Field(default_factory=list)


class Replicas(ContractModel):
    min: int = Field(ge=1)
    max: int = Field(ge=1)


class Placement(ContractModel):
    """Where a job runs: one cluster, one accelerator type, replicas per node."""

    cluster: str
    accelerator: str
    nodes: dict[str, PositiveInt] = Field(min_length=1)

    @property
    def replicas(self) -> int:
        return sum(self.nodes.values())


class Job(ContractModel):
    id: str = Field(min_length=1)
    tenant: str = "default"
    tier: Tier = "standard"
    priority: float = Field(1.0, gt=0)
    replicas: Replicas
    devices_per_replica: int = Field(1, ge=1)
    speed: dict[str, PositiveFloat] = Field(min_length=1)
    data_region: str | None = None
    regions: list[str] | None = Field(None, min_length=1)
    checkpoint_gb: float = Field(1.0, ge=0)
    checkpoint_region: str | None = None
    current: Placement | None = None


class Quota(ContractModel):
    tenant: str
    tier: Tier
    devices: int = Field(ge=0)


class TierWeights(ContractModel):
    premium: float = Field(100.0, ge=0)
    standard: float = Field(10.0, ge=0)
    basic: float = Field(1.0, ge=0)


PolicyMode = Literal["epoch", "backfill"]


class Policy(ContractModel):
    tier_weights: TierWeights = Field(default_factory=TierWeights)
    restart_overhead_s: float = Field(30.0, ge=0)
    remote_data_penalty: float = Field(0.1, ge=0, lt=1)
    spread_penalty: float = Field(0.01, ge=0)
    premium_preemptible: bool = False
    migration_budget_gb: float | None = Field(None, ge=0)
    time_limit_s: float = Field(10.0, gt=0)
    deterministic: bool = Field(
        False, description="extension: the same request gives the same plan (one worker, deterministic budget)"
    )
    mode: PolicyMode = Field(
        "epoch", description="v1.1: `epoch` (everything may change) or `backfill` (between epochs: running jobs "
                             "that qualify keep exactly their placement; only the rest go onto free devices)"
    )


class PlanRequest(ContractModel):
    epoch_s: float = Field(300.0, gt=0)
    fleet: Fleet
    jobs: list[Job] = Field(default_factory=list)
    quotas: list[Quota] = Field(default_factory=list)
    policy: Policy = Field(default_factory=Policy)
