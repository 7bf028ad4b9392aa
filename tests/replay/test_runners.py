"""Sweep runners: results in task order, a failed run reported by name while the others finish, the
driver writing every output as runs finish."""

import json

from replay.runners import Task, TaskFailed, local_runner, run_inline
from replay.whatif import run_scenarios, scenario_output
from tests.support.sweeps import deterministic, epochs_without_timing, scenarios


def test_local_pool_matches_inline_and_names_the_failed_run(tmp_path):
    scs = scenarios(missing_trace=str(tmp_path / "gone.csv"))
    tasks = [Task(s.name, scenario_output, (s,)) for s in scs]
    seen = []
    pooled = local_runner(2)(tasks, lambda i, t, r: seen.append((i, t.name, isinstance(r, TaskFailed))))
    inline = run_inline(tasks)
    assert sorted(seen) == [(0, "las", False), (1, "broken", True), (2, "fifo", False), (3, "busy", False)]
    assert isinstance(pooled[1], TaskFailed) and pooled[1].name == "broken"
    assert pooled[1].error.startswith("FileNotFoundError") and "gone.csv" in pooled[1].error
    for p, q in zip(pooled[:1] + pooled[2:], inline[:1] + inline[2:]):
        assert deterministic(p.summary) == deterministic(q.summary)
        assert epochs_without_timing(p.epochs) == epochs_without_timing(q.epochs) and p.jobs == q.jobs


def test_run_scenarios_writes_each_finished_run_and_keeps_the_failure_in_place(tmp_path):
    scs = scenarios(missing_trace=str(tmp_path / "gone.csv"))
    out = tmp_path / "out"
    results = run_scenarios(scs, str(out), workers=1)
    assert [r.name if isinstance(r, TaskFailed) else r["scenario"] for r in results] == ["las", "broken", "fifo",
                                                                                       "busy"]
    assert sorted(p.name for p in out.iterdir()) == ["busy", "fifo", "las"]
    for name in ("las", "fifo", "busy"):
        assert sorted(p.name for p in (out / name).iterdir()) == ["epochs.csv", "jobs.csv", "summary.json"]
        assert json.loads((out / name / "summary.json").read_text())["scenario"] == name


def test_the_planner_the_service_and_the_local_runner_never_import_ray():
    import subprocess
    import sys

    code = ("import sys, placement.plan, service.cli, service.app.main, replay.whatif, replay.runners, executor.loop; "
            "import service.commands.whatif, service.commands.sweep; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_replay_of_several_schedulers_in_a_local_pool_names_each_run_and_matches_the_sequential_one(tmp_path, capsys):
    from service.cli import main

    common = ["replay", "--trace", "synthetic:0.25", "--fleet", "single:1x8", "--policy", "las,fifo", "--seed", "2",
              "--warmup-days", "0", "--no-plots"]
    assert main([*common, "--jobs", "2", "--out", str(tmp_path / "pool")]) == 0
    err = capsys.readouterr().err
    assert "las: done" in err and "fifo: done" in err
    assert main([*common, "--out", str(tmp_path / "seq")]) == 0
    pool = json.loads((tmp_path / "pool" / "comparison.json").read_text())
    seq = json.loads((tmp_path / "seq" / "comparison.json").read_text())
    assert {p: deterministic(s) for p, s in pool.items()} == {p: deterministic(s) for p, s in seq.items()}
    for policy in ("las", "fifo"):
        assert sorted(p.name for p in (tmp_path / "pool" / policy).iterdir()) == sorted(
            p.name for p in (tmp_path / "seq" / policy).iterdir())
