"""Sweeps on Ray (a three-node local cluster): the same results as the local pool, failures by name,
progress as runs finish, every file written by the driver."""

import json

import pytest
import yaml

from replay.runner import RunSpec, run_one
from replay.runners import Task, TaskFailed, run_inline
from tests.support.sweeps import BASE, deterministic, scenarios

pytestmark = pytest.mark.ray


def test_ray_tasks_give_the_local_results_and_name_the_failed_one(ray_cluster, tmp_path):
    from replay.ray_runner import ray_runner

    scs = scenarios(missing_trace=str(tmp_path / "gone.csv"))
    tasks = [Task(s.name, run_one, (RunSpec(s),)) for s in scs]
    seen = []
    on_ray = ray_runner("auto", timeout_s=240)(tasks, lambda i, t, r: seen.append(t.name))
    local = run_inline(tasks)
    assert sorted(seen) == ["broken", "busy", "fifo", "las"]
    assert isinstance(on_ray[1], TaskFailed) and on_ray[1].name == "broken"
    assert on_ray[1].error.startswith("RunError: broken replication 0") and "gone.csv" in on_ray[1].error
    assert [deterministic(r) for r in on_ray[:1] + on_ray[2:]] == [deterministic(q) for q in local[:1] + local[2:]]


def test_whatif_cli_on_ray_writes_the_local_comparison(ray_cluster, tmp_path, capsys):
    from service.cli import main

    doc = {"base": BASE, "scenarios": [{"name": "las"}, {"name": "fifo", "policy": "fifo"}]}
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["whatif", str(path), "--ray", "auto", "--out", str(tmp_path / "ray"), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "las replication 0: done" in err and "fifo replication 0: done" in err
    assert main(["whatif", str(path), "--jobs", "1", "--out", str(tmp_path / "local"), "--no-plots"]) == 0
    on_ray = json.loads((tmp_path / "ray" / "comparison.json").read_text())["scenarios"]
    local = json.loads((tmp_path / "local" / "comparison.json").read_text())["scenarios"]
    assert [deterministic(s) for s in on_ray] == [deterministic(s) for s in local]
    for name in ("las", "fifo"):
        assert (tmp_path / "ray" / name / "jobs.csv").read_text() == (tmp_path / "local" / name / "jobs.csv").read_text()


def test_replay_of_several_schedulers_on_ray_writes_what_the_sequential_run_writes(ray_cluster, tmp_path, capsys):
    from service.cli import main

    common = ["replay", "--trace", "synthetic:0.25", "--fleet", "single:1x8", "--policy", "las,fifo", "--seed", "2",
              "--warmup-days", "0", "--no-plots"]
    assert main([*common, "--ray", "auto", "--out", str(tmp_path / "ray")]) == 0
    assert "2/2" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "seq")]) == 0
    on_ray = json.loads((tmp_path / "ray" / "comparison.json").read_text())
    seq = json.loads((tmp_path / "seq" / "comparison.json").read_text())
    assert {p: deterministic(s) for p, s in on_ray.items()} == {p: deterministic(s) for p, s in seq.items()}
    for policy in ("las", "fifo"):
        assert (tmp_path / "ray" / policy / "jobs.csv").read_text() == (tmp_path / "seq" / policy / "jobs.csv").read_text()
