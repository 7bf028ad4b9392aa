"""The live loop: the planner plans real training jobs every epoch and the torch executor applies it.
A premium job arriving on a full fleet makes the planner preempt a basic one, which later resumes from
its checkpoint."""

import json

import pytest

from executor.live import load_live_input, pause_rows
from models import BadRequest

FLEET = {"epoch_s": 4, "fleet": {
    "regions": [{"name": "local", "storage_gbps": 0.5}],
    "clusters": [{"name": "box", "region": "local",
                  "node_groups": [{"prefix": "cpu-", "count": 1, "accelerator": "cpu", "devices": 2}]}]},
    "policy": {"restart_overhead_s": 2}}
TRAIN = {"world_size": 2, "micro_batch": 4, "in_dim": 32, "hidden": 48, "layers": 2, "classes": 8,
         "dataset_size": 256, "checkpoint_every": 50}


def jobs(basic_steps: int = 1_000_000, premium_steps: int = 40) -> list[dict]:
    return [
        {"id": "basic", "tier": "basic", "replicas": {"min": 1, "max": 2}, "speed": {"cpu": 1.0},
         "checkpoint_gb": 0.001, "submit_s": 0, "train": {**TRAIN, "steps": basic_steps}},
        {"id": "premium", "tier": "premium", "replicas": {"min": 2, "max": 2}, "speed": {"cpu": 1.0},
         "checkpoint_gb": 0.001, "submit_s": 4, "train": {**TRAIN, "steps": premium_steps, "seed": 1}},
    ]


def test_input_errors_name_the_field_and_value():
    bad = jobs()
    bad[0]["train"]["steps"] = 0
    bad[1]["submit_s"] = -1
    bad[1]["replicas"] = {"min": 3, "max": 3}
    with pytest.raises(BadRequest) as exc:
        load_live_input(FLEET, bad)
    paths = {e.path for e in exc.value.errors}
    assert {"jobs[0].train", "jobs[1].submit_s", "jobs[1].replicas"} <= paths
    assert any("'steps' must be a positive integer, got 0" in e.message for e in exc.value.errors)


def test_a_dataset_past_the_worker_memory_cap_is_refused_before_any_worker_starts():
    bad = jobs()
    bad[0]["train"] = {**TRAIN, "dataset_size": 2**31, "in_dim": 2**20, "hidden": 1}
    with pytest.raises(BadRequest) as exc:
        load_live_input(FLEET, bad)
    [err] = exc.value.errors
    assert (err.path, err.value) == ("jobs[0].train.dataset_size", 2**31)
    assert err.message.startswith("a worker would need about 9,007,525,747,753,720 bytes; at most 2,147,483,648 ")


def test_an_exact_job_is_checked_on_the_fewest_workers_it_may_be_granted():
    # exact mode keeps one gradient per logical rank a worker runs: 64 of them on 1 worker (~2.6 GB), 32 on 2
    big = {**TRAIN, "exact": True, "world_size": 64, "hidden": 1500, "layers": 3}
    ok = jobs()[:1]
    ok[0].update(replicas={"min": 2, "max": 2}, train=big)
    assert load_live_input(FLEET, ok).train["basic"].world_size == 64
    bad = jobs()[:1]
    bad[0].update(replicas={"min": 1, "max": 2}, train=big)
    with pytest.raises(BadRequest) as exc:
        load_live_input(FLEET, bad)
    [err] = exc.value.errors
    assert err.path == "jobs[0].train.hidden" and "on 1 worker(s)" in err.message


def test_a_job_too_large_for_the_fleet_is_refused_naming_replicas_min():
    bad = jobs()
    bad[1]["replicas"] = {"min": 4, "max": 4}          # the fleet has 2 slots
    bad[1]["train"]["world_size"] = 4
    with pytest.raises(BadRequest) as exc:
        load_live_input(FLEET, bad)
    assert [(e.path, e.value, e.message) for e in exc.value.errors] == [
        ("jobs[1].replicas.min", 4, "the job could never run: no cluster holds 4 replica(s) of 1 device(s) on cpu")]


def test_a_job_wanting_only_accelerators_the_fleet_lacks_is_refused_naming_speed():
    bad = jobs()
    bad[0]["speed"] = {"H100": 1.0}
    with pytest.raises(BadRequest) as exc:
        load_live_input(FLEET, bad)
    assert [(e.path, e.value, e.message) for e in exc.value.errors] == [
        ("jobs[0].speed", {"H100": 1.0}, "the fleet has none of these accelerators: the job could never run")]


def test_contract_errors_keep_their_paths():
    bad = jobs()
    bad[0]["speed"] = {"tpu": 1.0}
    bad[0]["current"] = {"cluster": "box", "accelerator": "cpu", "nodes": {"cpu-0": 1}}
    with pytest.raises(BadRequest) as exc:
        load_live_input({"regions": [{"name": "local"}], "clusters": []}, bad)
    assert "jobs[0].current" in {e.path for e in exc.value.errors}


def test_fleet_file_may_be_the_bare_fleet():
    live = load_live_input(FLEET["fleet"], {"jobs": jobs()})
    assert live.request.epoch_s == 300 and live.submit_s == {"basic": 0.0, "premium": 4.0}
    assert live.train["premium"].steps == 40


def test_premium_arrival_preempts_basic_which_resumes_from_its_checkpoint(tmp_path):
    pytest.importorskip("torch")
    from executor.live import run_live

    live = load_live_input(FLEET, jobs())

    def until(state) -> bool:   # premium done and basic running again: the story is told
        p, b = state.jobs.get("premium"), state.jobs.get("basic")
        return p is not None and p.status == "done" and b.status == "running" and b.actions["start"] >= 2

    res = run_live(live, tmp_path, time_limit_s=1.0, max_epochs=30, until=until, log=lambda m: None)
    kinds = [(r["job"], r["kind"]) for r in res.rows]
    assert kinds[:3] == [("basic", "start"), ("basic", "preempt"), ("premium", "start")]
    assert ("basic", "start") in kinds[3:]
    assert res.state.jobs["premium"].status == "done" and res.steps["premium"] == 40
    restart = next(r for r in res.rows[3:] if r["job"] == "basic" and r["kind"] == "start")
    assert restart["ckpt_MB"] > 0                              # resumed from the checkpoint of its preemption
    # the measured size is what later requests carried as checkpoint_gb (the input file's value is kept)
    assert res.state.jobs["basic"].arrival.job.checkpoint_gb == pytest.approx(restart["ckpt_MB"] / 1000, rel=1e-3)
    assert live.request.jobs[0].checkpoint_gb == 0.001
    preempt = res.rows[1]
    assert preempt["modelled_s"] == pytest.approx(2 + 0.001 / 0.5)
    assert preempt["measured_s"] == preempt["stop_s"] > 0
    runs = sorted((tmp_path / "runs" / "basic").iterdir())
    resumed = json.loads((runs[-1] / "timings.json").read_text())["resumed_from_step"]
    assert resumed > 0


def test_pause_rows_sum_the_phases_of_a_relaunch():
    from executor.interface import AppliedAction

    a = AppliedAction(job="j", kind="resize", modelled_pause_s=3.0, checkpoint_bytes=2_000_000,
                      measured_s={"stop_s": 0.5, "save_s": 0.2, "transfer_s": 0.0, "launch_s": 2.0,
                                  "rendezvous_s": 0.1, "load_s": 0.3, "first_step_s": 0.1})
    [row] = pause_rows([(30.0, a, 2)])
    assert row["measured_s"] == pytest.approx(3.0)     # save is inside stop, not added twice
    assert row["ckpt_MB"] == 2.0 and row["workers"] == 2


def test_run_cli_reports_a_missing_file_in_one_line(tmp_path, capsys):
    from service.cli import main

    assert main(["run", str(tmp_path / "fleet.json"), str(tmp_path / "jobs.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"meridian run: cannot read fleet {tmp_path / 'fleet.json'}: No such file or directory"]


def test_run_cli_reports_bad_jobs_by_field(tmp_path, capsys):
    from service.cli import main

    (tmp_path / "fleet.json").write_text(json.dumps(FLEET))
    bad = jobs()
    bad[1]["train"]["world_size"] = 3
    (tmp_path / "jobs.json").write_text(json.dumps(bad))
    assert main(["run", str(tmp_path / "fleet.json"), str(tmp_path / "jobs.json")]) == 2
    err = capsys.readouterr().err
    assert "jobs[1].replicas" in err and "divides train.world_size 3" in err


def test_allowed_counts_default_to_the_divisors_of_the_world_size_within_the_range():
    six = [{"id": "six", "replicas": {"min": 2, "max": 6}, "speed": {"cpu": 1.0}, "submit_s": 0,
            "train": {**TRAIN, "world_size": 12}}]
    live = load_live_input(FLEET, six)
    assert live.request.jobs[0].replicas.allowed == [2, 3, 4, 6]


def test_a_hand_written_allowed_count_must_divide_the_world_size():
    bad = [{"id": "w", "replicas": {"min": 1, "max": 4, "allowed": [2, 3]}, "speed": {"cpu": 1.0}, "submit_s": 0,
            "train": {**TRAIN, "world_size": 4}}]
    with pytest.raises(BadRequest) as exc:
        load_live_input(FLEET, bad)
    assert [(e.path, e.value) for e in exc.value.errors] == [("jobs[0].replicas.allowed[1]", 3)]


@pytest.mark.parametrize("flag, message", [
    ("local", "'local': expected REGION=LOCATION (a folder or an fsspec URL)"),
    ("mars=file:///tmp/ckpt", "'mars=file:///tmp/ckpt': 'mars' is not a region of the fleet (local)"),
    ("local=memory://ckpt", ("'local=memory://ckpt': memory:// is local to one process: the workers would not "
                             "see each other's checkpoints")),
    ("local=nosuch://bucket/ckpt", "'local=nosuch://bucket/ckpt': unknown fsspec protocol 'nosuch'"),
])
def test_a_bad_checkpoint_location_is_one_line_before_anything_starts(tmp_path, capsys, flag, message):
    from service.cli import main

    (tmp_path / "fleet.json").write_text(json.dumps(FLEET))
    (tmp_path / "jobs.json").write_text(json.dumps(jobs()))
    assert main(["run", str(tmp_path / "fleet.json"), str(tmp_path / "jobs.json"), "--backend", "ray",
                 "--checkpoint-storage", flag]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"meridian run: --checkpoint-storage {message}"]


def test_checkpoint_locations_need_the_ray_backend(tmp_path, capsys):
    from service.cli import main

    (tmp_path / "fleet.json").write_text(json.dumps(FLEET))
    (tmp_path / "jobs.json").write_text(json.dumps(jobs()))
    assert main(["run", str(tmp_path / "fleet.json"), str(tmp_path / "jobs.json"),
                 "--checkpoint-storage", "local=file:///tmp/ckpt"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "meridian run: --checkpoint-storage needs --backend ray (the torch backend keeps them in WORKDIR/storage)"]


def _two_files(tmp_path):
    (tmp_path / "fleet.json").write_text(json.dumps(FLEET))
    (tmp_path / "jobs.json").write_text(json.dumps(jobs()))
    return str(tmp_path / "fleet.json"), str(tmp_path / "jobs.json")


def test_run_refuses_to_write_its_results_over_an_input_file(tmp_path, capsys):
    from service.cli import main

    fleet, jobs_file = _two_files(tmp_path)
    before = (tmp_path / "fleet.json").read_bytes()
    assert main(["run", fleet, jobs_file, "--json", str(tmp_path / "." / "fleet.json")]) == 2
    assert capsys.readouterr().err.strip() == (f"meridian run: --json {tmp_path / '.' / 'fleet.json'}: "
                                               f"{tmp_path / '.' / 'fleet.json'} is the input file {fleet}: "
                                               "writing there would replace it")
    assert (tmp_path / "fleet.json").read_bytes() == before


def test_run_refuses_an_empty_json_path(tmp_path, capsys):
    from service.cli import main

    assert main(["run", *_two_files(tmp_path), "--json", ""]) == 2
    assert "--json: must not be empty" in capsys.readouterr().err


def test_a_workdir_holding_checkpoints_of_another_spec_is_refused_before_anything_runs(tmp_path, capsys):
    import zlib

    from executor.train.checkpoint import FORMAT, META, STATE
    from service.cli import main

    ckpt = tmp_path / "wd" / "storage" / "local" / "basic" / "ckpt-000000050"
    ckpt.mkdir(parents=True)
    data = b"state"
    (ckpt / STATE).write_bytes(data)
    (ckpt / META).write_text(json.dumps({"format": FORMAT, "step": 50, "bytes": len(data), "crc32": zlib.crc32(data),
                                         "spec": "another-spec"}))
    assert main(["run", *_two_files(tmp_path), "--workdir", str(tmp_path / "wd")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"meridian run: job 'basic': {ckpt} holds a checkpoint of another training spec for this job; "
                       "use another --workdir, or remove that folder to start it afresh")
    assert not (tmp_path / "wd" / "runs").exists()


def test_sigterm_stops_the_workers_through_their_checkpoint_and_leaves_none(tmp_path):
    """`timeout`, systemd and `kill` send SIGTERM to the command alone: its workers must not outlive it."""
    import subprocess
    import sys

    from tests.support.processes import left_behind, terminate

    pytest.importorskip("torch")
    (tmp_path / "fleet.json").write_text(json.dumps(FLEET))
    (tmp_path / "jobs.json").write_text(json.dumps(jobs()[:1]))
    wd = tmp_path / "wd"
    p = subprocess.Popen([sys.executable, "-m", "service.cli", "run", str(tmp_path / "fleet.json"),
                          str(tmp_path / "jobs.json"), "--workdir", str(wd)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "running: basicx" in line and "@0 " not in line:
            break
    assert terminate(p) == 143
    assert "meridian run: terminated" in p.stderr.read()
    assert left_behind(str(wd)) == []
    assert list((wd / "storage" / "local" / "basic").glob("ckpt-*"))     # saved on the way out
