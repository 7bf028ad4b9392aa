"""Replications: what is uncertain in reality, drawn again per replication, the same way for every scenario.

A deterministic replay is one sample. Replication `r` of a scenario with seed `s` changes, by hashes of
`(s, r, ...)` only (`datasets.attributes.hash_unit`), the three things a trace and a plan do not pin down:

- **arrival jitter**: each job's submission moves by `(u - 0.5) * epoch_s` (u uniform in [0, 1) per job),
  at most half an epoch either way (never before time 0), so which epoch admits it, and the order within
  an epoch, vary;
- **attribute seed**: the seeded attribute rules (`datasets.attributes`: the tier hash, and whatever else
  the rules draw) use `attribute_seed(s, r)` instead of `s`;
- **outage timing**: each outage's start (and end, keeping its length) moves by up to `OUTAGE_JITTER_S`
  either way (never before time 0).

Replication 0 changes nothing: it is today's single run, figure for figure. The draws depend on the
scenario's seed and the replication only, not on its fleet, policy or demand scale: every scenario and
every capacity-search candidate with the same seed sees the same draws (common random numbers), so their
differences are the change's, not the noise's. The synthetic trace itself and the demand-scale copies stay
seeded by `s`: they are the input, not the uncertainty.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

from datasets.attributes import JobSpec, hash_unit
from replay.outages import Outage

OUTAGE_JITTER_S = 6 * 3600.0


def attribute_seed(seed: int, replication: int) -> int:
    """The attribute rules' seed for a replication (the scenario's own for replication 0)."""
    if replication == 0:
        return seed
    h = hashlib.blake2b(f"{seed}:replication:{replication}:attributes".encode(), digest_size=4).digest()
    return int.from_bytes(h, "big")


def jitter_arrivals(specs: Sequence[JobSpec], epoch_s: float, seed: int, replication: int) -> list[JobSpec]:
    """The specs with each submission moved by up to half an epoch (unchanged for replication 0), re-sorted."""
    if replication == 0:
        return list(specs)
    out = [replace(s, submit_s=max(0.0, s.submit_s + (hash_unit(seed, f"replication:{replication}:arrival:{s.id}")
                                                       - 0.5) * epoch_s)) for s in specs]
    return sorted(out, key=lambda s: s.submit_s)


def jitter_outages(outages: Sequence[Outage], seed: int, replication: int) -> list[Outage]:
    """The outages with their timing moved by up to `OUTAGE_JITTER_S` (unchanged for replication 0)."""
    if replication == 0:
        return list(outages)
    out = []
    for i, o in enumerate(outages):
        shift = (hash_unit(seed, f"replication:{replication}:outage:{i}:{o.target}") - 0.5) * 2 * OUTAGE_JITTER_S
        start = max(0.0, o.start_s + shift)
        out.append(Outage(o.target, start, None if o.end_s is None else start + (o.end_s - o.start_s)))
    return out
