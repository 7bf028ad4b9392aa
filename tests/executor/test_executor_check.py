"""Preemption, resizing and migration leave training unchanged: the `executor-check` schedule on a small
model (the same code path as the 10 M-parameter CLI run), real torchrun workers, W = 4."""

import pytest

pytest.importorskip("torch")

from executor.train.check import run_check
from service.cli import main
from service.commands.executor_check import passes
from tests.support.executor import small


def test_exact_mode_is_bitwise_equal_through_preempt_resizes_and_migrate(tmp_path):
    result = run_check(small(steps=48, exact=True), work_dir=tmp_path, timeout_s=120)
    assert [(p["action"], p["from_workers"], p["to_workers"]) for p in result["pauses"]] == [
        ("preempt", 4, 4), ("resize", 4, 2), ("resize", 2, 1), ("resize", 1, 4), ("migrate", 4, 4)]
    assert result["reference_workers"] == 1
    assert result["max_abs_param_diff"] == 0.0
    assert result["optimizer_state_equal"]
    assert all(p["max_abs_param_diff"] == 0.0 for p in result["pauses"])
    assert all(p["bytes"] > 0 and p["total_s"] > 0 for p in result["pauses"])
    assert result["pauses"][-1]["transfer_s"] > 0
    assert passes(result)


def test_default_mode_is_equal_across_same_r_restart_and_close_after_resizes(tmp_path):
    # W = 2 keeps it cheap: preempt 2 -> 2, resize 2 -> 1, resize 1 -> 2 (all-reduce rounding depends on r)
    schedule = [(0.2, "preempt", 2, "region-a"), (0.4, "resize", 1, "region-a"), (0.6, "resize", 2, "region-a")]
    result = run_check(small(world_size=2, steps=40, exact=False), work_dir=tmp_path, start_workers=2,
                       schedule=schedule, timeout_s=120)
    assert result["reference_workers"] == 2
    preempt, after_preempt, _ = result["pauses"]
    assert preempt["max_abs_param_diff"] == 0.0 and after_preempt["max_abs_param_diff"] == 0.0
    assert result["max_rel_param_diff"] <= 1e-6
    assert passes(result)


def test_passes_requires_bitwise_equality_in_exact_mode():
    result = {"mode": "exact", "max_abs_param_diff": 1e-9, "max_rel_param_diff": 1e-10,
              "pauses": [{"max_abs_param_diff": 0.0, "from_workers": 4, "to_workers": 4}]}
    assert not passes(result)


def test_passes_requires_same_r_equality_in_default_mode():
    pauses = [{"max_abs_param_diff": 0.0, "from_workers": 4, "to_workers": 4},
              {"max_abs_param_diff": 1e-8, "from_workers": 4, "to_workers": 2}]
    assert not passes({"mode": "default", "max_abs_param_diff": 1e-8, "max_rel_param_diff": 1e-8, "pauses": pauses})
    pauses[1]["max_abs_param_diff"] = 0.0
    assert passes({"mode": "default", "max_abs_param_diff": 1e-8, "max_rel_param_diff": 1e-8, "pauses": pauses})


def test_cli_rejects_too_few_steps(capsys):
    assert main(["executor-check", "--steps", "5"]) == 2
    assert "--steps must be at least 20" in capsys.readouterr().err


def test_sigterm_leaves_no_worker_and_no_temporary_folder(tmp_path):
    """`timeout 60 meridian executor-check` once left four workers training and its folder in /tmp."""
    import os
    import subprocess
    import sys
    import time

    from tests.support.processes import left_behind, processes_naming, terminate

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    p = subprocess.Popen([sys.executable, "-m", "service.cli", "executor-check", "--steps", "2000"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(processes_naming(str(tmp_path))) < 4 and time.time() < deadline:   # agent and workers up
        time.sleep(0.2)
    assert terminate(p, 60) == 143
    assert "meridian executor-check: terminated" in p.stderr.read()
    assert left_behind(str(tmp_path)) == []
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_nodes_without_the_ray_backend(capsys):
    assert main(["executor-check", "--nodes", "2"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "meridian executor-check: --nodes N needs --backend ray (the torch check runs torchrun workers on this host)"]
