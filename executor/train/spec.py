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
# The most memory one worker may need (`TrainSpec.worker_bytes`). Fixed, not a share of this machine's
# RAM, so a JOBS.json is accepted or refused the same everywhere; 2 GiB lets a laptop run a few workers
# side by side (the torch backend starts every worker on this host) and is 5x what the default
# 10 M-parameter job needs. Past it a worker would die allocating (or invite the OOM killer) after launch.
MAX_WORKER_BYTES = 2 * 2**30


class TooMuchMemory(ValueError):
    """A spec whose worker would need more than MAX_WORKER_BYTES; `path` names the field to shrink."""

    def __init__(self, field: str, value: int, message: str, where: str = "train") -> None:
        self.field, self.value, self.message, self.path = field, value, message, f"{where}.{field}"
        super().__init__(f"{self.path}: {message}")

    def at(self, where: str) -> TooMuchMemory:
        """The same refusal under another path prefix (`jobs[2].train`)."""
        return TooMuchMemory(self.field, self.value, self.message, where)


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
        self.check_memory(self.world_size)

    def check_memory(self, workers: int, where: str = "train") -> None:
        """Refuse a spec whose worker, run on `workers` workers, would need more than MAX_WORKER_BYTES:
        the error names the field behind the larger share, the dataset or the model."""
        need = self.worker_bytes(workers)
        if need <= MAX_WORKER_BYTES:
            return
        data = self.data_bytes()
        if data >= need - data:
            field, why = "dataset_size", (f"the synthetic dataset (dataset_size {self.dataset_size:,} x in_dim "
                                          f"{self.in_dim:,}, the teacher in_dim x classes) takes {data:,} bytes")
        else:
            field, why = "hidden", (f"the model ({self.params():,} parameters, with its gradients, AdamW state "
                                    f"and reduction buffers on {workers} worker(s)) takes {need - data:,} bytes")
        raise TooMuchMemory(field, getattr(self, field), f"a worker would need about {need:,} bytes; at most "
                            f"{MAX_WORKER_BYTES:,} (MAX_WORKER_BYTES): {why}", where)

    def data_bytes(self) -> int:
        """Bytes `SyntheticData` allocates at its peak (executor.train.model): the float32 inputs and the
        teacher, the logits, the noise and its scaled copy and their sum (dataset_size x classes each), the
        int64 labels and the two int64 permutations a batch can span."""
        n = self.dataset_size
        return 4 * (n * self.in_dim + self.in_dim * self.classes + 4 * n * self.classes) + 8 * 3 * n

    def model_bytes(self, workers: int) -> int:
        """Bytes the model costs a worker running `workers`-way (executor.train.runtime): float32 weights,
        gradients, AdamW's two moments and the averaged gradient's copies; plus the reduction's buffers:
        exact mode keeps one float32 gradient per logical rank it runs (W / workers of them) and a tree
        of partial sums as large again, default mode one accumulator in reduce_dtype and its average."""
        p = self.params()
        base = 4 * p * 6
        if self.exact:
            return base + 2 * 4 * p * max(1, self.world_size // max(1, workers))
        wide = 8 if self.reduce_dtype == "float64" else 4
        return base + 2 * wide * p

    def worker_bytes(self, workers: int) -> int:
        """An estimate of one worker's peak memory when the job runs on `workers` workers; activations
        (micro_batch x hidden per layer) are left out: they are small beside these."""
        return self.data_bytes() + self.model_bytes(workers)

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
        except TooMuchMemory as exc:
            raise exc.at(where) from None
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: {exc}") from None
