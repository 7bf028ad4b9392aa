"""A checkpoint's model and optimizer state (executor/train/state_dicts.py): the layout
`torch.distributed.checkpoint.state_dict` writes, so checkpoints written before either way load, and a
load that would be partial is refused."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from executor.train.model import build_model
from executor.train.state_dicts import get_states, set_states
from tests.support.executor import small

SPEC = small()


def _trained(steps: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(SPEC)
    opt = torch.optim.AdamW(model.parameters(), lr=SPEC.lr, weight_decay=SPEC.weight_decay)
    for _ in range(steps):
        x = torch.randn(SPEC.micro_batch, SPEC.in_dim)
        model(x).square().sum().backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_the_states_are_the_ones_torch_distributed_checkpoint_writes():
    model, opt = _trained()
    ours = get_states(model, opt)
    theirs = get_state_dict(model, opt)
    assert _equal(ours[0], theirs[0]) and _equal(ours[1], theirs[1])
    assert list(ours[1]["state"]) == [n for n, _ in model.named_parameters()]


def test_a_checkpoint_written_by_torch_distributed_checkpoint_loads_to_the_same_model_and_optimizer():
    model, opt = _trained()
    saved = get_state_dict(model, opt)
    fresh, fresh_opt = _trained(steps=0, seed=1)
    set_states(fresh, fresh_opt, *saved)
    assert _equal(get_states(fresh, fresh_opt), get_states(model, opt))
    again, again_opt = _trained(steps=0, seed=1)
    set_state_dict(again, again_opt, model_state_dict=saved[0], optim_state_dict=saved[1])
    assert _equal(get_states(fresh, fresh_opt), get_states(again, again_opt))


def test_a_checkpoint_before_the_first_step_holds_no_optimizer_state_and_leaves_the_optimizer_as_it_was():
    model, opt = _trained(steps=0)
    states = get_states(model, opt)
    assert states[1]["state"] == {} and not opt.state
    fresh, fresh_opt = _trained(steps=0, seed=1)
    set_states(fresh, fresh_opt, *states)
    assert not fresh_opt.state and _equal(fresh.state_dict(), model.state_dict())


def test_parameters_listed_in_another_order_load_by_name():
    model, opt = _trained()
    model_state, optim_state = get_states(model, opt)
    group = optim_state["param_groups"][0]
    shuffled = {"state": dict(reversed(list(optim_state["state"].items()))),
                "param_groups": [{**group, "params": list(reversed(group["params"]))}]}
    fresh, fresh_opt = _trained(steps=0, seed=1)
    set_states(fresh, fresh_opt, model_state, shuffled)
    got = get_states(fresh, fresh_opt)[1]
    assert all(_equal(got["state"][n], optim_state["state"][n]) for n in optim_state["state"])


def test_an_optimizer_state_naming_another_parameter_is_refused_before_any_change_to_the_optimizer():
    model, opt = _trained()
    model_state, optim_state = get_states(model, opt)
    group = optim_state["param_groups"][0]
    wrong = {"state": optim_state["state"], "param_groups": [{**group, "params": [*group["params"][:-1], "nope"]}]}
    fresh, fresh_opt = _trained(steps=0, seed=1)
    with pytest.raises(ValueError, match="names other parameters than the model's"):
        set_states(fresh, fresh_opt, model_state, wrong)
    assert not fresh_opt.state and not _equal(fresh.state_dict(), model_state)


def test_a_model_state_missing_a_tensor_is_refused():
    model, opt = _trained()
    model_state, optim_state = get_states(model, opt)
    del model_state["layers.0.bias"]
    fresh, fresh_opt = _trained(steps=0, seed=1)
    with pytest.raises(ValueError, match="names other tensors than the model's"):
        set_states(fresh, fresh_opt, model_state, optim_state)


class _Flags:
    stop = False
    checkpoint = False


def _run(spec, ckpt_dir, run_dir, monkeypatch, stop: bool) -> None:
    """One worker's Runtime in this process (a group of one over gloo): run to the end, or stop at once."""
    from executor.train.launch import free_port
    from executor.train.runtime import Runtime

    for k, v in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0", "WORLD_SIZE": "1",
                 "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(k, v)
    run_dir.mkdir(parents=True, exist_ok=True)
    flags = _Flags()
    flags.stop = stop
    assert Runtime(spec, ckpt_dir, run_dir, {}, 60).run(flags) == 0


def test_a_job_stopped_before_its_first_step_resumes_to_the_parameters_of_one_never_stopped(tmp_path, monkeypatch):
    """torch.distributed.checkpoint's state dict gave an optimizer with no state one zero step (Adam's step
    count 1) before saving it: a job preempted before its first step resumed one bias correction off."""
    from executor.train import checkpoint
    from executor.train.compare import param_diff

    spec = small(steps=4, checkpoint_every=0)
    _run(spec, tmp_path / "ref", tmp_path / "r0", monkeypatch, stop=False)
    _run(spec, tmp_path / "job", tmp_path / "j0", monkeypatch, stop=True)
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path / "job")] == [0]
    _run(spec, tmp_path / "job", tmp_path / "j1", monkeypatch, stop=False)
    diff = param_diff(tmp_path / "ref" / checkpoint.ckpt_name(4), tmp_path / "job" / checkpoint.ckpt_name(4))
    assert diff["max_abs_param_diff"] == 0.0 and diff["optimizer_state_equal"]
