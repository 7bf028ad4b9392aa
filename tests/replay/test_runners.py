"""Sweep runners: results in task order, a failed run reported by name while the others finish, the
driver writing every output as runs finish."""

import json

from replay.runner import RunSpec, run_one
from replay.runners import Task, TaskFailed, local_runner, run_inline
from tests.support.sweeps import deterministic, scenarios


def test_local_pool_matches_inline_and_names_the_failed_run(tmp_path):
    scs = scenarios(missing_trace=str(tmp_path / "gone.csv"))
    tasks = [Task(s.name, run_one, (RunSpec(s),)) for s in scs]
    seen = []
    pooled = local_runner(2)(tasks, lambda i, t, r: seen.append((i, t.name, isinstance(r, TaskFailed))))
    inline = run_inline(tasks)
    assert sorted(seen) == [(0, "las", False), (1, "broken", True), (2, "fifo", False), (3, "busy", False)]
    assert isinstance(pooled[1], TaskFailed) and pooled[1].name == "broken"
    assert pooled[1].error.startswith("RunError: broken replication 0") and "gone.csv" in pooled[1].error
    assert [deterministic(p) for p in pooled[:1] + pooled[2:]] == [deterministic(q) for q in inline[:1] + inline[2:]]


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


def _tree(root) -> dict:
    """Every file and folder under `root` with its size and modification time: what a write changes."""
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_whatif_workers_return_their_rows_and_only_the_driver_writes(tmp_path):
    from replay.runner import SpecResult, run_specs
    from replay.whatif import run_scenarios

    scs = [s.model_copy(update={"replications": 2}) for s in scenarios()[:2]]
    handed = []

    def watching(tasks, on_done=None):
        """Runs each task as a worker would, failing if the out folder changes while it runs."""
        out = []
        for i, t in enumerate(tasks):
            before = _tree(tmp_path)
            res = t.fn(*t.args)
            assert _tree(tmp_path) == before, f"{t.name} wrote in its worker"
            handed.append((t.args[0].out_dir, t.args[0].plotter, t.args[0].reporter))
            assert isinstance(res, SpecResult) and res.output.jobs and res.output.epochs
            out.append(res)
            on_done(i, t, res)
        return out

    driver = run_scenarios(scs, str(tmp_path / "driver"), runner=lambda specs: run_specs(specs, watching))
    pool = run_scenarios(scs, str(tmp_path / "pool"), workers=2)
    assert handed == [(None, None, None)] * 4
    assert deterministic(driver) == deterministic(pool)
    files = sorted(p.relative_to(tmp_path / "pool") for p in (tmp_path / "pool").rglob("*.csv"))
    assert [str(f) for f in files] == [f"{s}/{r}{n}" for s in ("fifo", "las")
                                       for r in ("", "replication-1/") for n in ("epochs.csv", "jobs.csv")]
    for f in files:
        if f.name == "jobs.csv":
            assert (tmp_path / "driver" / f).read_bytes() == (tmp_path / "pool" / f).read_bytes()
    for s in ("las", "las/replication-1", "fifo"):
        assert deterministic(json.loads((tmp_path / "driver" / s / "summary.json").read_text())) == deterministic(
            json.loads((tmp_path / "pool" / s / "summary.json").read_text()))
