"""The plan request of contract v1 (shared/spec/placement-v1.md), as pydantic types.

Field-level rules (signs, finiteness, ranges) live on the fields, so pydantic reports them
with their path; rules that relate fields to each other live in `models.validate`.
An explicit JSON `null` on a field with a default means "the default", as the contract's
checker reads it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_serializer,
    model_validator,
)

from models import limits as L

Tier = Literal["premium", "standard", "basic"]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
ReplicaCount = Annotated[int, Field(gt=0, le=L.MAX_REPLICAS)]
Speed = Annotated[float, Field(gt=0, le=L.MAX_SPEED)]
Name = Annotated[str, Field(max_length=L.MAX_NAME_CHARS)]
TIERS: tuple[Tier, ...] = ("premium", "standard", "basic")


class ContractModel(BaseModel):
    """Strict JSON types, no unknown fields, no NaN or infinity.

    Every list and map of a request but `jobs` is validated `fail_fast`: pydantic reports the faults of its
    first bad entry and stops there (`jobs` too where it is long: `models.validate.validate_fields`). Without
    it, pydantic held an error per bad entry, and one body of millions of them cost gigabytes to refuse
    (`"jobs": [0, 0, ...]`, a million of them in 2 MB: 6 s and 1.9 GB; 7,000,000 zeros in `replicas.allowed`,
    14 MB, under the service's 16 MiB cap: 55 s and 12.7 GB). The contract's cross-field rules
    (models.validate) still list every fault of a request whose fields are well-formed."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=False)


class DefaultedModel(ContractModel):
    """A contract model with fields whose explicit null means their (non-null) default, as the contract's
    checker reads it. Only the models with such fields take this pass: it is a Python call per object
    validated, and a planet request's jobs alone are 20,000 objects (their `replicas` and `current`,
    which have none, another 33,000 calls saved)."""

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        # runs for every object of these models: a null is rare, so look for one before anything else
        if isinstance(data, dict) and None in data.values():
            defaulted = _DEFAULTED.get(cls)
            if defaulted is None:
                defaulted = _DEFAULTED[cls] = tuple(
                    k for k, f in cls.model_fields.items() if f.default is not None and not f.is_required())
            for k in defaulted:   # (a null on a field whose default is null, as `current` often is, stays)
                if k in data and data[k] is None:
                    return {k: v for k, v in data.items() if not (v is None and k in defaulted)}
        return data


# per model class: the fields whose explicit null means their (non-null) default
_DEFAULTED: dict[type, tuple[str, ...]] = {}

# `model_dump_json(context=CANONICAL)`: the request's canonical text. Fields come in the model's order and
# defaults are filled in; the name-keyed maps (`speed`, `current.nodes`) come with their keys sorted, so two
# bodies meaning the same request dump to the same text (the service's request digest).
CANONICAL = {"canonical": True}


def _keys_sorted_when_canonical(value: Any, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
    out = handler(value)
    ctx = info.context
    return dict(sorted(out.items())) if ctx and ctx.get("canonical") and isinstance(out, dict) else out


class Region(DefaultedModel):
    name: str = Field(min_length=1, max_length=L.MAX_NAME_CHARS)
    storage_gbps: float = Field(2.0, ge=L.MIN_GBPS, le=L.MAX_GBPS, description="GB/s to checkpoint storage")


class Link(ContractModel):
    a: Name
    b: Name
    gbps: float = Field(ge=L.MIN_GBPS, le=L.MAX_GBPS, description="symmetric GB/s between the two regions")


class NodeGroup(ContractModel):
    prefix: str = Field(min_length=1, max_length=L.MAX_NAME_CHARS)
    count: int = Field(ge=0, le=L.MAX_NODES)
    accelerator: str = Field(min_length=1, max_length=L.MAX_NAME_CHARS)
    devices: int = Field(ge=1, le=L.MAX_NODE_DEVICES)


class Cluster(DefaultedModel):
    name: str = Field(min_length=1, max_length=L.MAX_NAME_CHARS)
    region: Name
    node_groups: list[NodeGroup] = Field(default_factory=list, fail_fast=True)


class Fleet(DefaultedModel):
    regions: list[Region] = Field(min_length=1, fail_fast=True)
    links: list[Link] = Field(default_factory=list, fail_fast=True)
    clusters: list[Cluster] = Field(default_factory=list, fail_fast=True)
    down_nodes: list[Name] = Field(default_factory=list, max_length=L.MAX_NODES, fail_fast=True)


class Replicas(ContractModel):
    min: int = Field(ge=1, le=L.MAX_REPLICAS)
    max: int = Field(ge=1, le=L.MAX_REPLICAS)
    # distinct counts within [1, MAX_REPLICAS]: no valid list is longer, and a longer one is refused on its length
    allowed: list[ReplicaCount] | None = Field(
        None, min_length=1, max_length=L.MAX_REPLICAS, fail_fast=True,
        description="contract v1.1: the only replica counts a plan may grant (distinct, within [min, max]); "
                    "null = every count in [min, max]")

    def grants(self, r: int) -> bool:
        """Whether a plan may give the job `r` replicas (constraint 2 with v1.1's `allowed`)."""
        return self.min <= r <= self.max and (self.allowed is None or r in self.allowed)

    def largest_at_most(self, r: int) -> int | None:
        """The largest count a plan may grant that is at most `r`; None when there is none."""
        if self.allowed is None:
            return min(r, self.max) if r >= self.min else None
        fit = [a for a in self.allowed if a <= r]
        return max(fit) if fit else None

    @property
    def top(self) -> int:
        """The most replicas a plan may grant: `max`, or the largest allowed count."""
        return self.max if self.allowed is None else max(self.allowed)

    @property
    def bottom(self) -> int:
        """The fewest replicas a placed job may get: `min`, or the smallest allowed count."""
        return self.min if self.allowed is None else min(self.allowed)


class Placement(ContractModel):
    """Where a job runs: one cluster, one accelerator type, replicas per node."""

    cluster: Name
    accelerator: Name
    nodes: dict[Name, ReplicaCount] = Field(min_length=1, fail_fast=True)

    # no return annotation: the JSON schema stays the field's (one schema for requests and responses)
    @field_serializer("nodes", mode="wrap")
    def _nodes(self, value: Any, handler: SerializerFunctionWrapHandler, info: SerializationInfo):
        return _keys_sorted_when_canonical(value, handler, info)

    @property
    def replicas(self) -> int:
        return sum(self.nodes.values())


class Job(ContractModel):
    """A job of the request. Its explicit nulls that mean a default are read where a request is validated
    (`PlanRequest`), in one pass over the jobs rather than a Python call per job."""

    id: str = Field(min_length=1, max_length=L.MAX_NAME_CHARS)
    tenant: Name = "default"
    tier: Tier = "standard"
    priority: float = Field(1.0, gt=0, le=L.MAX_WEIGHT)
    replicas: Replicas
    devices_per_replica: int = Field(1, ge=1, le=L.MAX_DEVICES_PER_REPLICA)
    speed: dict[Name, Speed] = Field(min_length=1, fail_fast=True)
    data_region: Name | None = None
    regions: list[Name] | None = Field(None, min_length=1, fail_fast=True)
    checkpoint_gb: float = Field(1.0, ge=0, le=L.MAX_CHECKPOINT_GB)
    checkpoint_region: Name | None = None
    current: Placement | None = None

    # no return annotation: the JSON schema stays the field's (one schema for requests and responses)
    @field_serializer("speed", mode="wrap")
    def _speed(self, value: Any, handler: SerializerFunctionWrapHandler, info: SerializationInfo):
        return _keys_sorted_when_canonical(value, handler, info)


class Quota(ContractModel):
    tenant: Name
    tier: Tier
    devices: int = Field(ge=0, le=L.MAX_QUOTA_DEVICES)


class TierWeights(ContractModel):   # a null weight is a bad request: the checker reads it as null, not 100
    premium: float = Field(100.0, ge=0, le=L.MAX_WEIGHT)
    standard: float = Field(10.0, ge=0, le=L.MAX_WEIGHT)
    basic: float = Field(1.0, ge=0, le=L.MAX_WEIGHT)


PolicyMode = Literal["epoch", "backfill"]


class Policy(DefaultedModel):
    tier_weights: TierWeights = Field(default_factory=TierWeights)
    restart_overhead_s: float = Field(30.0, ge=0, le=L.MAX_SECONDS)
    remote_data_penalty: float = Field(0.1, ge=0, lt=1)
    spread_penalty: float = Field(0.01, ge=0, le=L.MAX_WEIGHT)
    premium_preemptible: bool = False
    migration_budget_gb: float | None = Field(None, ge=0, le=L.MAX_MIGRATION_BUDGET_GB)
    time_limit_s: float = Field(10.0, gt=0, le=L.MAX_TIME_LIMIT_S)
    deterministic: bool = Field(
        False, description="extension: the same request gives the same plan (one worker, deterministic budget)"
    )
    mode: PolicyMode = Field(
        "epoch", description="v1.1: `epoch` (everything may change) or `backfill` (between epochs: running jobs "
                             "that qualify keep exactly their placement; only the rest go onto free devices)"
    )


# Of the policy's fields only `tier_weights` reads null as its default, as the contract's checker reads
# them: a null `mode` is a bad request by the contract (v1.1: "any other value of mode"), and a null
# overhead, penalty, limit or flag has no meaning there (the checker fails on it) rather than a default.
_DEFAULTED[Policy] = ("tier_weights",)


class PlanRequest(DefaultedModel):
    epoch_s: float = Field(300.0, ge=L.MIN_EPOCH_S, le=L.MAX_SECONDS)
    fleet: Fleet
    jobs: list[Job] = Field(default_factory=list)   # every bad job's faults (`validate_fields`: long lists fail fast)
    quotas: list[Quota] = Field(default_factory=list, fail_fast=True)
    policy: Policy = Field(default_factory=Policy)

    @model_validator(mode="before")
    @classmethod
    def _jobs_null_means_default(cls, data: Any) -> Any:
        """The jobs' nulls that mean a default (`DefaultedModel`), in one pass over the jobs; the caller's
        objects are left as they were (a job with such a null is replaced by a copy without it)."""
        jobs = data.get("jobs") if isinstance(data, dict) else None
        if not isinstance(jobs, list):
            return data
        defaulted = _JOB_DEFAULTED
        out = None
        for i, d in enumerate(jobs):
            if isinstance(d, dict) and None in d.values():
                for k in defaulted:
                    if k in d and d[k] is None:
                        if out is None:
                            out = list(jobs)
                        out[i] = {k: v for k, v in d.items() if not (v is None and k in defaulted)}
                        break
        return data if out is None else {**data, "jobs": out}


# the job fields whose explicit null means their (non-null) default
_JOB_DEFAULTED: tuple[str, ...] = tuple(
    k for k, f in Job.model_fields.items() if f.default is not None and not f.is_required())


class PlanRequestFailFast(PlanRequest):
    """`PlanRequest` whose `jobs` are validated fail-fast (the faults of the first bad job only): for long job
    lists, where an error per bad job could cost gigabytes (`models.validate.validate_fields`)."""

    jobs: list[Job] = Field(default_factory=list, fail_fast=True)
