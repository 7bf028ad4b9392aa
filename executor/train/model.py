"""The model and the synthetic dataset a worker trains: small, deterministic, no download.

Data order is a function of the global step alone: sample positions `step * B .. (step+1) * B` of an
endless sequence of per-epoch permutations, logical rank k taking the k-th micro-batch of them. So
which physical worker runs a logical rank never changes what that rank sees.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from executor.train.spec import TrainSpec


class MLP(nn.Module):
    """Linear layers with GELU and dropout; dropout draws from the global RNG, which the worker swaps
    to the running logical rank's stream around each micro-batch."""

    def __init__(self, spec: TrainSpec) -> None:
        super().__init__()
        dims = [spec.in_dim] + [spec.hidden] * spec.layers + [spec.classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.dropout = spec.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.dropout(F.gelu(x), p=self.dropout, training=self.training)
        return x


def build_model(spec: TrainSpec) -> MLP:
    """The same initial weights on every worker: the initialization draws from a seeded generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        return MLP(spec)


class SyntheticData:
    """A classification set drawn from a fixed random teacher, generated from the seed."""

    def __init__(self, spec: TrainSpec) -> None:
        g = torch.Generator().manual_seed(spec.seed + 7919)
        self.x = torch.randn(spec.dataset_size, spec.in_dim, generator=g)
        teacher = torch.randn(spec.in_dim, spec.classes, generator=g)
        self.y = (self.x @ teacher + 0.5 * torch.randn(spec.dataset_size, spec.classes, generator=g)).argmax(1)
        self.spec = spec
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.spec.seed * 1_000_003 + epoch)
            self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}   # a batch spans two at most
            self._perms[epoch] = torch.randperm(self.spec.dataset_size, generator=g)
        return self._perms[epoch]

    def micro_batch(self, step: int, logical_rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples logical rank `logical_rank` trains on at global step `step`."""
        n, mb = self.spec.dataset_size, self.spec.micro_batch
        start = step * self.spec.global_batch + logical_rank * mb
        idx = torch.empty(mb, dtype=torch.long)
        for i in range(mb):
            pos = start + i
            idx[i] = self._perm(pos // n)[pos % n]
        return self.x[idx], self.y[idx]


def initial_rng_states(spec: TrainSpec) -> list[torch.Tensor]:
    """One CPU RNG stream per logical rank, so dropout masks follow the logical rank, not the worker."""
    return [torch.Generator().manual_seed(spec.seed * 7_368_787 + 1 + k).get_state() for k in range(spec.world_size)]
