"""Small training jobs for the executor tests: the same code path as the 10 M-parameter check, a model
small enough that a launch, not the arithmetic, dominates each test on two shared cores."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from executor.train.spec import TrainSpec

SMALL = TrainSpec(world_size=4, steps=12, micro_batch=4, in_dim=32, hidden=48, layers=2, classes=8,
                  dataset_size=256, exact=True, checkpoint_every=4)

# Every wait on real workers is bounded: a hung worker group is killed and the test fails.
TIMEOUT_S = 120.0


def write_spec(path: Path, spec: TrainSpec) -> Path:
    path.write_text(json.dumps(spec.to_dict()))
    return path


def small(**changes) -> TrainSpec:
    return replace(SMALL, **changes)
