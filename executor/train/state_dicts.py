"""A worker's model and optimizer state as a checkpoint holds it: the optimizer's entries keyed by each
parameter's fully qualified name, not its position, so a checkpoint reads the same whatever order a
later build lists its parameters in.

This is the layout `torch.distributed.checkpoint.state_dict` writes for an unwrapped module (a test holds
the two equal), without importing that package: it pulls in FSDP and DTensor, 1.1 s of every worker's
start on two cores, and every preemption, resize and migration pays a worker start.
"""

from __future__ import annotations

import torch


def _names(model: torch.nn.Module, opt: torch.optim.Optimizer) -> list[str]:
    """The name of each of the optimizer's parameters, in its own order (the ids its state is keyed by)."""
    name_of = {id(p): n for n, p in model.named_parameters()}
    names = []
    for group in opt.param_groups:
        for p in group["params"]:
            if id(p) not in name_of:
                raise ValueError("the optimizer holds a parameter that is not the model's")
            names.append(name_of[id(p)])
    return names


def get_states(model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    """(model state, optimizer state keyed by parameter name); the tensors are the live ones, not copies."""
    names = _names(model, opt)
    sd = opt.state_dict()
    optim = {"state": {names[i]: s for i, s in sd["state"].items()},
             "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in sd["param_groups"]]}
    return model.state_dict(), optim


def set_states(model: torch.nn.Module, opt: torch.optim.Optimizer, model_state: dict, optim_state: dict) -> None:
    """Load what `get_states` returned into a model and optimizer built the same way. Every name must match:
    a missing or extra one is a ValueError raised before anything is loaded, never a partial load."""
    if set(model_state) != set(model.state_dict()):
        raise ValueError("the checkpoint's model names other tensors than the model's")
    names = _names(model, opt)
    index = {n: i for i, n in enumerate(names)}
    saved = optim_state["param_groups"]
    groups, at = [], 0
    if len(saved) != len(opt.param_groups):
        raise ValueError(f"the checkpoint's optimizer has {len(saved)} parameter groups, the model's {len(opt.param_groups)}")
    for g, current in zip(saved, opt.param_groups):
        mine = names[at:at + len(current["params"])]
        at += len(current["params"])
        if sorted(g["params"]) != sorted(mine):
            raise ValueError("the checkpoint's optimizer names other parameters than the model's")
        groups.append({**g, "params": [index[n] for n in mine]})     # listed in the model's own order
    if not set(optim_state["state"]) <= set(names):
        raise ValueError("the checkpoint's optimizer holds state for parameters the model lacks")
    model.load_state_dict(model_state, strict=True)
    opt.load_state_dict({"state": {index[n]: s for n, s in optim_state["state"].items()}, "param_groups": groups})
