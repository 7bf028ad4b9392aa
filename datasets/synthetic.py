"""A seeded synthetic trace, so a newcomer can replay without any download.

Shape (loosely Philly's): Poisson arrivals at `jobs_per_hour` with a day/night swing of +-50 %;
GPU counts 1 (80 %), 2 (6 %), 4 (6 %), 8 (6 %), 16 (2 %); durations log-normal around a median of
`median_duration_s` (sigma 1.5), clipped to [60 s, 3 days]; tenants drawn from `tenants` names with
Zipf-like weights. Same seed, same trace.
"""

from __future__ import annotations

import math
import random

from datasets.rows import TraceJob

GPU_MIX = ((1, 0.80), (2, 0.06), (4, 0.06), (8, 0.06), (16, 0.02))


def synthetic_trace(days: float = 2.0, jobs_per_hour: float = 20.0, median_duration_s: float = 1800.0,
                    tenants: int = 4, seed: int = 0) -> list[TraceJob]:
    """Jobs submitted in [0, days) in submission order."""
    rng = random.Random(seed)
    horizon = days * 86400.0
    names = [f"vc-{i}" for i in range(tenants)]
    weights = [1.0 / (i + 1) for i in range(tenants)]
    sizes, size_w = zip(*GPU_MIX)
    jobs: list[TraceJob] = []
    t = 0.0
    peak = jobs_per_hour * 1.5 / 3600.0
    while True:
        t += rng.expovariate(peak)       # thinning: accept with the time-of-day rate / peak rate
        if t >= horizon:
            break
        rate = jobs_per_hour / 3600.0 * (1.0 + 0.5 * math.sin(2 * math.pi * t / 86400.0))
        if rng.random() >= rate / peak:
            continue
        dur = min(3 * 86400.0, max(60.0, rng.lognormvariate(math.log(median_duration_s), 1.5)))
        jobs.append(TraceJob(
            job_id=f"s{len(jobs)}", submit_time_s=round(t, 1), duration_s=round(dur, 1),
            num_gpus=rng.choices(sizes, size_w)[0], tenant=rng.choices(names, weights)[0],
        ))
    return jobs
