"""Deterministic faults on real workers (torchrun, gloo, 2 workers for W = 4, exact mode): a SIGKILL
loses at most the work since the last checkpoint, never the checkpoint, and the resumed job still ends
bitwise equal to an uninterrupted run."""

import json
import os
import signal
import time

import pytest

pytest.importorskip("torch")

from executor.train import checkpoint
from executor.train import launch as L
from executor.train.compare import param_diff
from executor.train.cycle import Job, wait_first_step, wait_step
from tests.support.executor import TIMEOUT_S, small, write_spec

SPEC = small(steps=12, checkpoint_every=4)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The job trained once, uninterrupted, on one worker."""
    root = tmp_path_factory.mktemp("reference")
    job = Job("ref", write_spec(root / "spec.json", SPEC), root / "runs", root / "storage", "r")
    assert L.wait(job.start({"n0": 1}), TIMEOUT_S) == "finished"
    return job.ckpt_dir / checkpoint.ckpt_name(SPEC.steps)


def fail_with(job: Job, fault: str) -> None:
    """Run the job on 2 workers with `fault` injected: it must fail and leave no process behind."""
    group = job.start({"n0": 2}, fault=fault)
    assert L.wait(group, TIMEOUT_S) == "failed"
    assert L.worker_pids(group) == {}
    assert all(a.returncode is not None for a in group.agents)


def test_each_fault_loses_only_the_work_since_the_last_good_checkpoint(tmp_path, reference):
    """One job through every fault in turn (one launch per fault, to keep the suite short on 2 cores)."""
    job = Job("job", write_spec(tmp_path / "spec.json", SPEC), tmp_path / "runs", tmp_path / "storage", "r")

    # A worker SIGKILLed mid-step (after a backward, before the reduction) at step 6: checkpoint 4 stands.
    fail_with(job, "worker_kill:rank=1,step=6")
    assert [s for s, _ in checkpoint.list_checkpoints(job.ckpt_dir)] == [4]

    # The writer SIGKILLed mid-write of checkpoint 8 (after resuming from 4): a torn temporary folder,
    # never published; checkpoint 4 is still the newest.
    fail_with(job, "writer:when=mid_write,step=8")
    torn = [p for p in job.ckpt_dir.iterdir() if p.name.startswith(".tmp-")]
    assert len(torn) == 1 and not (torn[0] / checkpoint.META).exists()
    assert checkpoint.latest_valid(job.ckpt_dir) == (job.ckpt_dir / checkpoint.ckpt_name(4), [])

    # The writer SIGKILLed between write and rename: complete files, fsynced, but not published.
    fail_with(job, "writer:when=before_rename,step=8")
    unpublished = [p for p in job.ckpt_dir.iterdir() if p.name.startswith(".tmp-")]
    assert len(unpublished) == 1 and (unpublished[0] / checkpoint.META).exists()   # the torn one was cleaned
    assert checkpoint.latest_valid(job.ckpt_dir)[0].name == checkpoint.ckpt_name(4)

    # Rank 0 killed at step 10 after checkpoint 8 was published; then checkpoint 8 is corrupted on disk.
    fail_with(job, "worker_kill:rank=0,step=10")
    newest = job.ckpt_dir / checkpoint.ckpt_name(8)
    with open(newest / checkpoint.STATE, "r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0x01]))

    # The resumed job skips the corrupt checkpoint, resumes from 4, and ends bitwise equal.
    group = job.start({"n0": 2})
    timings = wait_first_step(group, TIMEOUT_S)
    assert timings["resumed_from_step"] == 4
    assert timings["skipped_checkpoints"] == [f"{checkpoint.ckpt_name(8)}: corrupt (checksum mismatch)"]
    assert L.wait(group, TIMEOUT_S) == "finished"
    assert not any(p.name.startswith(".tmp-") for p in job.ckpt_dir.iterdir())
    diff = param_diff(reference, job.ckpt_dir / checkpoint.ckpt_name(SPEC.steps))
    assert diff["max_abs_param_diff"] == 0.0
    assert diff["optimizer_state_equal"]


def test_a_killed_agent_takes_its_workers_with_it(tmp_path):
    # torchrun starts each worker in a session of its own, so a SIGKILL of the agent's session once left
    # them training (and a worker that had not reported its PID yet could not be killed at all); now each
    # worker watches its agent and its launcher and exits when either is gone
    job = Job("job", write_spec(tmp_path / "spec.json", small(steps=100_000)), tmp_path / "runs",
              tmp_path / "storage", "r")
    group = job.start({"n0": 2})
    wait_first_step(group, TIMEOUT_S)
    assert len(L.worker_pids(group)) == 2
    os.kill(group.agents[0].pid, signal.SIGKILL)
    group.agents[0].wait()
    deadline = time.time() + 5
    while L.worker_pids(group) and time.time() < deadline:
        time.sleep(0.05)
    assert L.worker_pids(group) == {}
    L.kill(group)


def test_stop_escalates_to_sigkill_after_the_grace_period(tmp_path):
    job = Job("job", write_spec(tmp_path / "spec.json", small(steps=100_000, checkpoint_every=2)),
              tmp_path / "runs", tmp_path / "storage", "r")
    group = job.start({"n0": 2})
    assert wait_step(group, 3, TIMEOUT_S) >= 3     # past the checkpoint at step 2
    result = L.stop(group, grace_s=0.0)
    assert result.escalated and result.state == "killed"
    assert L.worker_pids(group) == {}
    path, _ = checkpoint.latest_valid(job.ckpt_dir)   # whatever step it reached, the last checkpoint is intact
    assert path is not None


def test_sigusr1_checkpoints_on_request_and_sigterm_stops_with_a_checkpoint(tmp_path):
    job = Job("job", write_spec(tmp_path / "spec.json", small(steps=100_000, checkpoint_every=0)), tmp_path / "runs",
              tmp_path / "storage", "r")
    group = job.start({"n0": 2})
    wait_first_step(group, TIMEOUT_S)
    assert checkpoint.list_checkpoints(job.ckpt_dir) == []
    L.signal_workers(group, signal.SIGUSR1)          # a checkpoint at the next step boundary, training goes on
    deadline = time.time() + TIMEOUT_S
    while not checkpoint.list_checkpoints(job.ckpt_dir) and time.time() < deadline:
        time.sleep(0.02)
    [(requested, _)] = checkpoint.list_checkpoints(job.ckpt_dir)
    assert L.poll(group) == "running"
    assert wait_step(group, requested + 2, TIMEOUT_S) >= requested + 2

    result = L.stop(group, grace_s=TIMEOUT_S)
    assert result.state == "preempted" and not result.escalated
    step = result.status["step"]
    assert step > requested
    assert checkpoint.latest_valid(job.ckpt_dir)[0].name == checkpoint.ckpt_name(step)
    saves = [json.loads(line) for line in (group.run_dir / "saves.jsonl").read_text().splitlines()]
    assert [(s["step"], s["reason"]) for s in saves] == [(requested, "request"), (step, "stop")]
