"""What the executor does when a job's checkpoints cannot be used: a job whose checkpoints are all damaged
is refused rather than restarted from step 0; workers that cannot write or resume a checkpoint stop the run
with their one line rather than being relaunched in a loop; a job run again in the same work folder
resumes from the region its checkpoints were migrated to."""

import json
import re
import types

import pytest

pytest.importorskip("torch")

from executor.train import checkpoint
from executor.train import launch as L
from executor.train.cycle import Job
from tests.support.executor import TIMEOUT_S, small, write_spec

SPEC = small(steps=12, checkpoint_every=4)


def _saved(root, steps=(4,)):
    """Checkpoints of SPEC at `steps` in folder `root` (what its workers would have written)."""
    import torch

    for s in steps:
        checkpoint.save(root, s, {"step": s, "w": torch.zeros(4)}, extra_meta={"spec": SPEC.fingerprint()})


def test_workers_refuse_to_start_over_when_no_checkpoint_is_intact(tmp_path):
    # they resumed from nothing: step 0, and the next saves overwrote the damaged checkpoints
    job = Job("job", write_spec(tmp_path / "spec.json", SPEC), tmp_path / "runs", tmp_path / "storage", "r")
    _saved(job.ckpt_dir, steps=(4, 8))
    for s in (4, 8):
        (job.ckpt_dir / checkpoint.ckpt_name(s) / checkpoint.STATE).write_bytes(b"")
    before = {p.name: p.stat().st_mtime_ns for p in job.ckpt_dir.iterdir()}
    group = job.start({"n0": 2})
    assert L.wait(group, TIMEOUT_S) == "failed"
    error = L.read_json(group.run_dir / "status.json")["error"]
    assert error.startswith(f"no intact checkpoint in {job.ckpt_dir} to resume from ({checkpoint.ckpt_name(8)}: torn")
    assert f"executor.train.worker: rank 0: {error}\n" in (group.run_dir / "agent-0-n0.log").read_text()
    assert {p.name: p.stat().st_mtime_ns for p in job.ckpt_dir.iterdir()} == before


def test_a_worker_checkpoint_error_stops_the_run_instead_of_relaunching(tmp_path):
    # a full disk failed every save: the executor relaunched the job at every poll, each time losing the
    # steps since its last checkpoint, and the run never said why
    from executor.torch_backend import TorchExecutor

    ex = TorchExecutor(tmp_path)
    ex.add_job("job", SPEC, "r")
    run_dir = tmp_path / "launch"
    run_dir.mkdir()
    (run_dir / "status.json").write_text(json.dumps({"state": "failed", "error": "cannot write checkpoint X: "
                                                                                   "No space left on device"}))
    live = ex._jobs["job"]
    live.job.group, live.placement, live.workers = types.SimpleNamespace(run_dir=run_dir), object(), 1
    ex._poll = lambda group: "failed"
    ex._progress_step = lambda group: None
    ex._kill = lambda group: None
    ex._restart = lambda live: pytest.fail("relaunched")
    with pytest.raises(checkpoint.CheckpointError) as err:
        ex.run_epoch(0.0, 5.0)
    assert str(err.value) == "job job: cannot write checkpoint X: No space left on device"
    assert live.job.group is None


def test_a_job_run_again_resumes_in_the_region_its_checkpoints_were_migrated_to(tmp_path):
    # registered in its home region, whose folder a migrate had emptied, it started over from step 0
    from executor.torch_backend import TorchExecutor
    from executor.train.storage import job_dir

    _saved(job_dir(tmp_path / "storage", "east", "job"), steps=(4, 8))
    ex = TorchExecutor(tmp_path)
    ex.add_job("job", SPEC, "west", regions=["west", "east"])
    assert ex._jobs["job"].job.region == "east"


def test_run_refuses_a_workdir_whose_checkpoints_of_a_job_are_all_damaged(tmp_path, capsys):
    from executor.train.storage import job_dir
    from service.cli import main
    from tests.executor.test_executor_live import FLEET, jobs

    (tmp_path / "fleet.json").write_text(json.dumps(FLEET))
    (tmp_path / "jobs.json").write_text(json.dumps(jobs()))
    ckpt = job_dir(tmp_path / "wd" / "storage", "local", "basic")
    _saved(ckpt, steps=(50,))
    (ckpt / checkpoint.ckpt_name(50) / checkpoint.STATE).write_bytes(b"")
    size = json.loads((ckpt / checkpoint.ckpt_name(50) / checkpoint.META).read_text())["bytes"]
    assert main(["run", str(tmp_path / "fleet.json"), str(tmp_path / "jobs.json"), "--workdir",
                 str(tmp_path / "wd")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"meridian run: job 'basic': no intact checkpoint in {ckpt} to resume from ({checkpoint.ckpt_name(50)}: "
        f"torn (0 of {size} bytes)); restore one, or remove the folder to start the job afresh")
    assert not (tmp_path / "wd" / "runs").exists()


def test_a_stop_whose_save_fails_names_the_job_and_the_cause(tmp_path):
    # the save at a preempt could not be written: the stop ended "failed" and the run said
    # `internal error (RuntimeError)`, the workers' own line left in their status.json
    import shutil

    from executor.train.cycle import stop_record, wait_first_step

    spec = small(steps=100_000, checkpoint_every=100_000)
    job = Job("job", write_spec(tmp_path / "spec.json", spec), tmp_path / "runs", tmp_path / "storage", "r")
    job.start({"n0": 1})
    assert wait_first_step(job.group, TIMEOUT_S) is not None
    shutil.rmtree(job.ckpt_dir, ignore_errors=True)
    job.ckpt_dir.write_text("a file where the job's checkpoint folder was")
    with pytest.raises(checkpoint.CheckpointError) as err:
        stop_record(job, grace_s=TIMEOUT_S)
    assert re.fullmatch(rf"job job: cannot write checkpoint {re.escape(str(job.ckpt_dir))}/ckpt-\d+: File exists",
                        str(err.value))
    assert job.group is None
