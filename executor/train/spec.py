"""The training job a worker runs: plain data, no torch, so the executor and the CLI can describe a job
without importing torch."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, fields

# Bounds that keep a spec runnable on one machine and every loop over it short (`valid_workers` walks
# 1..world_size): a larger value is refused with its name, never a hang or an out-of-memory kill.
MAX_INT = {"world_size": 1024, "steps": 10**9, "micro_batch": 2**16, "in_dim": 2**20, "hidden": 2**20,
           "classes": 2**20, "dataset_size": 2**31, "layers": 1000, "checkpoint_every": 10**9, "seed": 2**32 - 1}
MAX_PARAMS = 2_000_000_000


@dataclass(frozen=True)
class TrainSpec:
    """A data-parallel job with a fixed logical world size.

    The global batch is `world_size * micro_batch` samples at every step, whatever the number of physical
    workers, so the gradient and the update do not depend on how the job is placed.
    """

    world_size: int = 4                 # logical ranks W; physical workers r must divide it
    steps: int = 200                    # optimizer steps to train
    micro_batch: int = 8                # samples per logical rank per step
    in_dim: int = 256
    hidden: int = 2176
    layers: int = 3                     # hidden layers of width `hidden`
    classes: int = 16
    dropout: float = 0.1                # exercises the per-logical-rank RNG streams
    dataset_size: int = 4096            # synthetic samples, generated from `seed`
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    exact: bool = False                 # fixed-order (bitwise reproducible) gradient reduction
    reduce_dtype: str = "float64"       # default mode: accumulate and all-reduce in this type, round once
    checkpoint_every: int = 0           # steps between periodic checkpoints; 0 = only on stop and at the end
    keep_checkpoints: int = 2           # complete checkpoints kept; older ones are deleted

    def __post_init__(self) -> None:
        positive = ("world_size", "steps", "micro_batch", "in_dim", "hidden", "classes", "dataset_size")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"train spec field {name!r} must be a positive integer, got {value!r}")
            if value > MAX_INT[name]:
                raise ValueError(f"train spec field {name!r} must be at most {MAX_INT[name]}, got {value!r}")
        for name in ("layers", "checkpoint_every", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"train spec field {name!r} must be a non-negative integer, got {value!r}")
            if value > MAX_INT[name]:
                raise ValueError(f"train spec field {name!r} must be at most {MAX_INT[name]}, got {value!r}")
        if not isinstance(self.keep_checkpoints, int) or not 2 <= self.keep_checkpoints <= 100:
            raise ValueError(f"train spec field 'keep_checkpoints' must be 2..100 (a torn newest "
                             f"checkpoint falls back to the previous one), got {self.keep_checkpoints!r}")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ValueError(f"train spec field 'dropout' must be in [0, 1), got {self.dropout!r}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < float("inf"):
                raise ValueError(f"train spec field {name!r} must be a finite number >= 0, got {value!r}")
        if self.reduce_dtype not in ("float32", "float64"):
            raise ValueError(f"train spec field 'reduce_dtype' must be 'float32' or 'float64', "
                             f"got {self.reduce_dtype!r}")
        if not isinstance(self.exact, bool):
            raise TypeError(f"train spec field 'exact' must be true or false, got {self.exact!r}")
        if self.params() > MAX_PARAMS:
            raise ValueError(f"train spec: the model would have {self.params():,} parameters; at most "
                             f"{MAX_PARAMS:,} (in_dim, hidden, layers, classes)")

    @property
    def global_batch(self) -> int:
        return self.world_size * self.micro_batch

    def params(self) -> int:
        """Parameter count of the model this spec builds (weights and biases of every linear layer)."""
        dims = [self.in_dim] + [self.hidden] * self.layers + [self.classes]
        return sum(a * b + b for a, b in itertools.pairwise(dims))

    def valid_workers(self) -> list[int]:
        """Physical worker counts this job can run on: the divisors of its logical world size."""
        return [r for r in range(1, self.world_size + 1) if self.world_size % r == 0]

    def usable_workers(self, granted: int) -> int:
        """The most workers not above `granted` that divide W (a plan may grant a count that does not)."""
        fitting = [r for r in self.valid_workers() if r <= granted]
        if not fitting:
            raise ValueError(f"no worker count <= {granted} divides world_size {self.world_size}")
        return max(fitting)

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed: everything but the schedule knobs."""
        keep = {k: v for k, v in asdict(self).items() if k not in ("steps", "checkpoint_every", "keep_checkpoints")}
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict, where: str = "train") -> TrainSpec:
        if not isinstance(data, dict):
            raise TypeError(f"{where} must be an object, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: unknown train spec field (known: {', '.join(sorted(known))})")
        try:
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: {exc}") from None
