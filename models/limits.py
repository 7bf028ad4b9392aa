"""The largest (and smallest) values a plan request may hold: what the engine's arithmetic can carry.

Each limit is derived from what the engine forms with the value, so that every integer stays inside
int64 and CP-SAT's bounds, every capacity and device count stays exact in a float64 (< 2**53) for
HiGHS and the Lagrangian, HiGHS never sees a matrix coefficient of 1e15 or more (its
`large_matrix_value`), and no product of a job's value ever reaches infinity (no NaN):

- a pool's capacity is at most MAX_NODES * MAX_NODE_DEVICES < 2**41 devices, so a CP-SAT capacity
  row over the 3,000 options of a full model stays below 2**53, and sums over a fleet stay exact;
- a job's devices, replicas.max * devices_per_replica, are at most 2**40 (< 1e15 for HiGHS);
- a device's value per second, tier weight * priority * speed, is at most 1e6 * 1e6 * 1e6 = 1e18,
  times 2**41 devices below 1e31: finite (the LP's objective is rescaled where it passes 1e9, the
  CP-SAT objective where its terms could sum past 2**60);
- a migration in the CP-SAT model is counted in milli-GB: MAX_CHECKPOINT_GB * 1000 = 1e12 per job,
  a budget at most 1e15 (int64 and HiGHS both hold them);
- a pause is checkpoint_gb / GB/s <= 1e9 / 1e-6 = 1e15 s plus MAX_SECONDS: finite.
Values inside these limits plan exactly as smaller ones do; values outside are refused at validation
with the field path (README, "Limits").
"""

from __future__ import annotations

MAX_NODES = 2_000_000                 # nodes in a fleet (naming them must fit in a planning epoch)
MAX_NODE_DEVICES = 2**20              # devices of one node (1,048,576)
MAX_DEVICES_PER_REPLICA = 2**20       # a replica lives on one node
MAX_REPLICAS = 2**20                  # replicas.min, replicas.max, replicas on one node in current.nodes
MAX_QUOTA_DEVICES = MAX_NODES * MAX_NODE_DEVICES   # no fleet holds more; a larger quota would mean nothing
MAX_WEIGHT = 1e6                      # priority, each tier weight, spread_penalty
MAX_SPEED = 1e6                       # speed per accelerator type
MIN_GBPS = 1e-6                       # storage and link bandwidth, GB/s
MAX_GBPS = 1e9
MAX_CHECKPOINT_GB = 1e9               # 1 EB
MAX_MIGRATION_BUDGET_GB = 1e12
MAX_SECONDS = 1e7                     # epoch_s and restart_overhead_s (about 116 days)
MIN_EPOCH_S = 1e-3                    # a millisecond: below ~1e-300 a job's value times the epoch underflows, and
                                      # the disruption (value * min(pause, epoch) / epoch) came out 0 (5e-324 planned
                                      # an objective above the checker's LP bound)
MAX_TIME_LIMIT_S = 86_400.0           # one day
MAX_NAME_CHARS = 1024                 # ids and names (prefixes, regions, clusters, tenants, accelerators)
