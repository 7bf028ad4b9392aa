"""The attributes a trace lacks, from documented, seeded rules (so a replay is repeatable).

Defaults (each a field of `AttributeRules`):
- **tier**: from a hash of `(seed, job_id)` mapped to [0, 1): below 0.10 premium, below 0.60 standard,
  else basic (10 % / 50 % / 40 %), independent of duration and size. A tier in the trace wins.
- **devices_per_replica**: the largest power of two up to 8 that divides `num_gpus` (and
  `min_gpus`/`max_gpus` when the trace gives them).
- **replicas**: `max = num_gpus / devices_per_replica`, `min = max(1, max // 4)`: a job may be
  time-sliced down to a quarter of its world size, as Singularity does; its throughput is
  proportional to the replicas it gets. A trace's `min_gpus`/`max_gpus` win.
- **speed**: 1.0 on every type the sharing rules allow (`datasets/sharing.py`, resolved against the
  fleet when the replay starts): a whole-GPU job on the trace's type(s), or every whole type of the
  fleet when it names none, never on a slice; a GPU-sharing job on any slice at least its share of an
  allowed model, or on a whole GPU of one.
- **checkpoint_gb**: `1 + 2 * num_gpus` unless the trace gives it.
- **work**: `duration_s * num_gpus` device-seconds at speed 1: the job finishes exactly when it has
  had that much, whatever replica counts it ran at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from datasets.rows import TraceJob
from datasets.sharing import allowed_speeds, need_of


@dataclass(frozen=True)
class AttributeRules:
    seed: int = 0
    tier_shares: tuple[float, float, float] = (0.10, 0.50, 0.40)   # premium, standard, basic
    max_devices_per_replica: int = 8
    min_fraction: int = 4                                             # min = max(1, max // min_fraction)
    checkpoint_base_gb: float = 1.0
    checkpoint_per_gpu_gb: float = 2.0

    def tier(self, job_id: str) -> str:
        u = hash_unit(self.seed, job_id)
        p, s, _ = self.tier_shares
        return "premium" if u < p else "standard" if u < p + s else "basic"


@dataclass(frozen=True)
class JobSpec:
    """One job as the replay plans it: the contract's fields plus its arrival and its work."""

    id: str
    submit_s: float
    duration_s: float
    num_gpus: int
    work: float                            # device-seconds at speed 1
    tenant: str
    tier: str
    devices_per_replica: int
    min_replicas: int
    max_replicas: int
    speed: dict[str, float] | None = field(default=None)   # None: the sharing rules pick among the fleet's types
    checkpoint_gb: float = 1.0
    data_region: str | None = None
    gpu_type: str | None = None            # the trace's type(s), for the sharing rules (datasets/sharing.py)
    gpu_share: float | None = None         # share of one GPU per device; None: whole GPUs (or from gpu_type)


def hash_unit(seed: int, key: str) -> float:
    """A uniform number in [0, 1) from (seed, key): stable across runs, machines and Python versions."""
    h = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def largest_pow2_divisor(values: Sequence[int], cap: int) -> int:
    """The largest power of two up to `cap` dividing every value."""
    d = 1
    while d * 2 <= cap and all(v % (d * 2) == 0 for v in values):
        d *= 2
    return d


def to_job_spec(job: TraceJob, rules: AttributeRules = AttributeRules()) -> JobSpec:
    """Fill the attributes `job` lacks by the rules above."""
    given = [job.num_gpus] + [v for v in (job.min_gpus, job.max_gpus) if v is not None]
    dpr = largest_pow2_divisor(given, rules.max_devices_per_replica)
    rmax = (job.max_gpus or job.num_gpus) // dpr
    rmin = job.min_gpus // dpr if job.min_gpus is not None else max(1, rmax // rules.min_fraction)
    share, _ = need_of(job.gpu_type, job.gpu_share)
    # Whole-GPU jobs that name their types keep exactly those; the others resolve against the fleet.
    speed = allowed_speeds(job.gpu_type, None, ()) if job.gpu_type and share is None else None
    ckpt = job.checkpoint_gb if job.checkpoint_gb is not None else (
        rules.checkpoint_base_gb + rules.checkpoint_per_gpu_gb * job.num_gpus)
    return JobSpec(
        id=job.job_id, submit_s=float(job.submit_time_s), duration_s=float(job.duration_s), num_gpus=job.num_gpus,
        work=float(job.duration_s) * job.num_gpus, tenant=job.tenant, tier=job.tier or rules.tier(job.job_id),
        devices_per_replica=dpr, min_replicas=max(1, min(rmin, rmax)), max_replicas=rmax, speed=speed or None,
        checkpoint_gb=float(ckpt), data_region=job.data_region, gpu_type=job.gpu_type, gpu_share=share,
    )


def to_job_specs(jobs: Iterable[TraceJob], rules: AttributeRules = AttributeRules()) -> list[JobSpec]:
    """Specs for a trace, sorted by (submit time, file order)."""
    specs = [to_job_spec(j, rules) for j in jobs]
    return sorted(specs, key=lambda s: s.submit_s)
