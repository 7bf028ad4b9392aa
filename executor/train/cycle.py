"""One stop -> (transfer) -> relaunch cycle of a job's workers, with every phase timed.

Shared by `executor-check`, the torch executor and `bench/checkpoint_cycle.py`, so the figures they
print come from the same code path that moves real jobs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from executor.train import launch as L
from executor.train import storage
from executor.train.checkpoint import CheckpointError


@dataclass
class Job:
    """A running (or stopped) training job and where its launches and checkpoints live."""

    name: str
    spec_path: Path
    run_root: Path
    storage_root: Path
    region: str
    group: L.WorkerGroup | None = None
    launches: int = 0
    history: list = field(default_factory=list)

    @property
    def ckpt_dir(self) -> Path:
        return storage.job_dir(self.storage_root, self.region, self.name)

    def next_run_dir(self) -> Path:
        """The next launch's folder, one no launch used before, in this run or an earlier one in the same
        work folder: an earlier run's `timings.json` or `progress.json` read as this launch's would give
        negative pauses and another run's steps, and its logs would be overwritten."""
        while True:
            run_dir = self.run_root / storage.path_part(self.name) / f"launch-{self.launches:03d}"
            self.launches += 1
            if not run_dir.exists():
                return run_dir

    def start(self, nodes: dict[str, int], fault: str | None = None, save_at: list[int] | None = None) -> L.WorkerGroup:
        self.group = self.prelaunch(nodes, self.region, fault=fault, save_at=save_at, gated=False)
        return self.group

    def prelaunch(self, nodes: dict[str, int], region: str, fault: str | None = None,
                  save_at: list[int] | None = None, gated: bool = True) -> L.WorkerGroup:
        """Launch workers that will resume from `region`'s storage; gated ones wait for `open_gate`.
        Does not replace `self.group` (the running workers, if any, keep training meanwhile)."""
        run_dir = self.next_run_dir()
        return L.launch(self.spec_path, nodes, run_dir, storage.job_dir(self.storage_root, region, self.name),
                        fault=fault, save_at=save_at, gated=gated)


def worker_error(run_dir: Path) -> str | None:
    """The CheckpointError a launch's workers ended with (rank 0's `status.json`), None if none: a
    failure that relaunching would repeat, unlike a crash."""
    status = L.read_json(run_dir / "status.json")
    return status.get("error") if status and status.get("state") == "failed" else None


def wait_first_step(group: L.WorkerGroup, timeout_s: float) -> dict | None:
    """Block until rank 0 reports its first step after (re)start; returns its timings (None when the job
    had no step left to do and finished at once)."""
    end = time.time() + timeout_s
    while time.time() < end:
        t = L.read_json(group.run_dir / "timings.json")
        if t is not None:
            return t
        state = L.poll(group)
        if state != "running":
            t = L.read_json(group.run_dir / "timings.json")
            if t is not None:
                return t
            if state == "finished":
                return None
            error = worker_error(group.run_dir)
            if error is not None:
                raise CheckpointError(error)
            raise RuntimeError(f"workers ended ({state}) before their first step; see {group.run_dir}")
        time.sleep(0.01)
    L.kill(group)
    raise TimeoutError(f"no first step within {timeout_s}s; see {group.run_dir}")


def wait_step(group: L.WorkerGroup, step: int, timeout_s: float) -> int:
    """Block until the job has done `step` steps (or ended); returns the step it reached."""
    end = time.time() + timeout_s
    while time.time() < end:
        s = L.progress_step(group) or 0
        if s >= step or L.poll(group) != "running":
            return s
        time.sleep(0.01)
    L.kill(group)
    raise TimeoutError(f"step {step} not reached within {timeout_s}s; see {group.run_dir}")


def launch_breakdown(group: L.WorkerGroup, t: dict) -> dict:
    """Split a (re)start into launch (agent, process, imports, model), rendezvous, load and first step.

    For a prelaunched group the launch and the rendezvous happened before the gate opened, while the
    previous workers still trained: they are reported as `prelaunch_s` and cost no pause."""
    rdzv, load = t["rendezvous_s"], t["load_s"]
    out = {"rendezvous_s": rdzv, "load_s": load, "first_step_s": t["first_step_unix"] - t["ready_unix"]}
    if "gate_open_unix" in t:
        out["prelaunch_s"] = t["gated_unix"] - group.launched_unix
        out["launch_s"] = 0.0
        out["gate_s"] = t["ready_unix"] - t["gate_open_unix"] - load     # gate seen -> load started
    else:
        out["launch_s"] = t["ready_unix"] - group.launched_unix - rdzv - load
    return out


def stop_record(job: Job, grace_s: float) -> dict:
    """Stop `job`'s workers through the checkpoint path; the measured stop and what it saved. A stop whose
    save failed (a full disk, a storage folder gone) raises the workers' CheckpointError, named, as a run
    stopped by it must say why in one line; any other failed stop a RuntimeError."""
    res = L.stop(job.group, grace_s)
    if res.state not in ("preempted", "finished"):
        error = worker_error(job.group.run_dir)
        if error is not None:
            job.group = None
            raise CheckpointError(f"job {job.name}: {error}")
        raise RuntimeError(f"stop of {job.name} ended {res.state}; see {job.group.run_dir}")
    st = res.status or {}
    job.group = None
    return {"stop_s": res.stop_s, "save_s": st.get("save_s", 0.0), "bytes": st.get("bytes"),
            "at_step": st.get("step"), "checkpoint": st.get("checkpoint")}


def cycle(job: Job, nodes: dict[str, int], to_region: str | None = None, grace_s: float = 30.0,
          timeout_s: float = 300.0, fault: str | None = None, warm: bool = False) -> dict:
    """Stop `job` through its checkpoint, move the checkpoint if the region changes, relaunch on `nodes`
    and wait for the first step. Returns the measured seconds of each phase, the checkpoint bytes and
    `total_s`: the pause, from the SIGTERM (or, cold with no workers, the call) to the first step.

    `warm`: prelaunch the new workers first (processes, imports, rendezvous, model) while the old ones
    keep training, then stop the old ones and open the gate: the pause is stop + transfer + load + step."""
    region = to_region or job.region
    rec: dict = {"from_workers": job.group.workers if job.group else 0, "to_workers": sum(nodes.values()),
                 "warm": warm}
    new = None
    if warm:
        new = job.prelaunch(nodes, region, fault=fault)
        L.wait_gated(new, timeout_s)
    t0 = time.time()
    if job.group is not None:
        try:
            rec.update(stop_record(job, grace_s))
        except BaseException:
            if new is not None:
                L.kill(new)
            raise
    rec["transfer_s"] = 0.0
    if region != job.region:
        moved, seconds = storage.transfer(job.storage_root, job.name, job.region, region)
        rec.update(transfer_s=seconds, transfer_bytes=moved)
    job.region = region
    if new is None:
        job.start(nodes, fault=fault)
    else:
        job.group = new
        L.open_gate(new)
    t = wait_first_step(job.group, timeout_s)
    if t is None:
        raise RuntimeError(f"{job.name} had no steps left after the stop; see {job.group.run_dir}")
    rec.update(launch_breakdown(job.group, t))
    rec["resumed_from_step"] = t["resumed_from_step"]
    rec["total_s"] = t["first_step_unix"] - t0
    job.history.append(rec)
    return rec
