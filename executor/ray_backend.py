"""The Ray executor: the torch executor's plan handling (prelaunch the new gangs, stop the old through
their checkpoints, move checkpoints between regions, open the gates) with a job's workers as Ray actors
on the fleet nodes the plan names, instead of `torchrun` processes on this host.

- Each fleet node is a Ray node advertising `meridian_node_<name>` (`executor.train.ray_gang`); a
  placement's replicas are one placement group whose bundles sit on exactly those nodes, and the actors
  form one gloo group through the rank-0 actor (fixed logical world size, exact mode, atomic checksummed
  checkpoints: the same runtime as the `torchrun` workers).
- Checkpoints live in one storage location per region (`locations`: region -> a folder or an fsspec
  URL, `executor.train.stores`), under `<location>/<job>/`; a region without one uses
  `WORKDIR/storage/<region>/` (a folder every node reaches: a local folder on one machine, a shared
  mount on a cluster). On an object store a checkpoint is a blob and then a checksummed manifest (no
  atomic rename there). A migrate copies the newest intact checkpoint into the destination region's
  location through the same calls before the new gang resumes.
- preempt stops through the checkpoint and removes the placement group; resize, move and migrate
  prelaunch the new gang (actors, imports, rendezvous, model) while the old one trains, then stop the
  old one and open the new gang's gate. Each action records measured seconds and bytes beside the
  contract's modelled pause (the same columns as the torch executor's).
- A Ray node that leaves the cluster (dies, is removed) is reported in `EpochResult.failed_nodes`; the
  gangs on it are ended and their jobs stay placed there until the loop's next plan fails them over,
  resuming from their last checkpoint.

The driver (this process) needs Ray connected first (`ray.init(address=...)` or a local
`ray.cluster_utils.Cluster`); `executor.ray_cluster` does that for the CLI.
"""

from __future__ import annotations

import time
from pathlib import Path

from executor.torch_backend import TorchEpochResult, TorchExecutor, _Live, worker_nodes
from executor.train import ray_gang as RG
from executor.train import storage, stores
from executor.train.checkpoint import CheckpointError, NoIntactCheckpoint, StaleCheckpoint

RESTART_PLACE_S = 15.0     # a crashed gang's relaunch waits this long for its nodes before retrying later


class RayExecutor(TorchExecutor):
    """`TorchExecutor` whose worker groups are Ray gangs; see the module docstring."""

    poll_s = 0.25

    def __init__(self, work_dir: Path, grace_s: float = 30.0, timeout_s: float = 300.0,
                 storage_root: Path | None = None, locations: dict[str, str] | None = None):
        super().__init__(work_dir, grace_s=grace_s, timeout_s=timeout_s)
        RG.import_ray()
        self.storage_root = Path(storage_root) if storage_root is not None else None
        self.locations = dict(locations or {})       # region -> checkpoint location (folder or fsspec URL)
        for region, loc in self.locations.items():
            why = stores.check_location(loc)
            if why:
                raise ValueError(f"checkpoint location of {region} {loc!r}: {why}")
        self.failed_nodes: set[str] = set()
        self._crashed: set[str] = set()      # jobs whose gang died and could not be placed again yet

    def add_job(self, job_id: str, spec, region: str, regions: list[str] | None = None) -> None:
        """`TorchExecutor.add_job` checking `region`'s folder alone: the checkpoints may live at `locations`
        (URLs), where the torch executor's search across the regions' folders does not look. Its checks are
        repeated where the job's checkpoints do live (`checkpoint_location`): NoIntactCheckpoint where
        checkpoints were published but none is intact, StaleCheckpoint where the newest is of another spec."""
        super().add_job(job_id, spec, region)
        if self.storage_root is not None:
            self._jobs[job_id].job.storage_root = self.storage_root
        where = self.checkpoint_location(job_id)
        store = stores.open_store(where)
        try:
            step, _ = store.resume_point()
            other = step is not None and store.read_verified(step)[0].get("spec") not in (None, spec.fingerprint())
        except NoIntactCheckpoint as exc:
            del self._jobs[job_id]
            raise NoIntactCheckpoint(f"job {job_id!r}: {exc}") from None
        if other:
            del self._jobs[job_id]
            raise StaleCheckpoint(f"job {job_id!r}: {store.where(step)} holds a checkpoint of another training spec "
                                  "for this job; use other checkpoint storage, or remove it to start the job afresh")

    def gang_of(self, job_id: str) -> RG.Gang | None:
        return self._jobs[job_id].job.group

    def checkpoint_location(self, job_id: str, region: str | None = None) -> Path | str:
        """Where `job_id`'s checkpoints live in `region` (default: where it is now): a folder or a URL."""
        job = self._jobs[job_id].job
        region = region or job.region
        if region in self.locations:
            return stores.join(self.locations[region], storage.path_part(job.name))
        return storage.job_dir(job.storage_root, region, job.name)

    # -- the worker-group hooks, on Ray ----------------------------------------------------------------

    def _launch(self, live: _Live, nodes: dict[str, int], region: str, gated: bool) -> RG.Gang:
        job = live.job
        run_dir = job.next_run_dir()
        return RG.launch(live.spec.to_dict(), nodes, run_dir, self.checkpoint_location(job.name, region),
                         gated=gated, timeout_s=self.timeout_s)

    def _prelaunch(self, live: _Live, nodes: dict[str, int], region: str) -> RG.Gang:
        return self._launch(live, nodes, region, gated=True)

    def _start(self, live: _Live, nodes: dict[str, int]) -> RG.Gang:
        live.job.group = self._launch(live, nodes, live.job.region, gated=False)
        return live.job.group

    def _restart(self, live: _Live) -> RG.Gang | None:
        """Relaunch a crashed gang in place; when its nodes cannot take it now (a node dying but not yet
        marked dead), leave it without workers and try again at the next poll (`_check_nodes`)."""
        job = live.job
        run_dir = job.next_run_dir()
        try:
            gang = RG.launch(live.spec.to_dict(), worker_nodes(live.placement, live.workers), run_dir,
                             self.checkpoint_location(job.name), timeout_s=min(self.timeout_s, RESTART_PLACE_S))
        except TimeoutError:
            self._crashed.add(job.name)
            return None
        self._crashed.discard(job.name)
        return gang

    def _transfer(self, live: _Live, region: str) -> tuple[int, float]:
        """A migrate: the newest intact checkpoint copied between the regions' locations (folder or URL)."""
        return stores.transfer(self.checkpoint_location(live.job.name), self.checkpoint_location(live.job.name, region))

    def _wait_gated(self, group: RG.Gang) -> None:
        RG.wait_gated(group, self.timeout_s)

    def _open_gate(self, group: RG.Gang) -> None:
        RG.open_gate(group)

    def _wait_first_step(self, group: RG.Gang) -> dict | None:
        return RG.wait_first_step(group, self.timeout_s)

    def _stop(self, live: _Live) -> dict:
        state, stop_s, status = RG.stop(live.job.group, self.grace_s)
        error = live.job.group.checkpoint_error
        if state not in ("preempted", "finished") and error is not None:     # the stop's save failed
            live.job.group = None
            raise CheckpointError(f"job {live.job.name}: {error}")
        if state not in ("preempted", "finished"):
            raise RuntimeError(f"stop of {live.job.name} on Ray ended {state}: "
                               f"{'; '.join(live.job.group.errors)}; see {live.job.group.run_dir}")
        st = status or {}
        live.job.group = None
        return {"stop_s": stop_s, "save_s": st.get("save_s", 0.0), "bytes": st.get("bytes"),
                "at_step": st.get("step"), "checkpoint": st.get("checkpoint")}

    def _poll(self, group: RG.Gang) -> str:
        return RG.poll(group)

    def _progress_step(self, group: RG.Gang) -> int | None:
        rec = RG.read(group, "progress.json", timeout_s=5.0)
        return rec["step"] if rec else None

    def _finish(self, group: RG.Gang) -> dict:
        RG.wait(group, self.grace_s)
        return group.result or {}

    def _kill(self, group: RG.Gang) -> None:
        RG.kill(group)

    def _worker_error(self, group: RG.Gang) -> str | None:
        """The CheckpointError a failed gang's worker raised (from Ray's task error: the driver need not
        see the node's run folder), None if none."""
        return group.checkpoint_error

    def _check_nodes(self, res: TorchEpochResult) -> None:
        """Fleet nodes whose Ray node is gone: report each once, end the gangs on them (their jobs keep
        their placement, on a node now down, for the next plan to fail over). Jobs whose gang crashed
        and could not be placed again are retried here."""
        alive = RG.alive_fleet_nodes()
        for jid, live in self._jobs.items():
            if live.placement is None:
                continue
            lost = sorted(n for n in worker_nodes(live.placement, live.workers) if n not in alive)
            if lost:
                if live.job.group is not None:
                    RG.kill(live.job.group)
                    live.job.group = None
                self._crashed.discard(jid)
                for n in lost:
                    if n not in self.failed_nodes:
                        self.failed_nodes.add(n)
                        res.failed_nodes.append(n)
            elif jid in self._crashed and live.job.group is None:
                live.job.group = self._restart(live)

    def wait_step(self, job_id: str, step: int, timeout_s: float | None = None) -> int:
        """Block until the job has done `step` steps (the check's schedule); the step it reached."""
        gang = self._jobs[job_id].job.group
        reached = RG.wait_step(gang, step, timeout_s or self.timeout_s)
        self._jobs[job_id].steps_done = max(self._jobs[job_id].steps_done, reached)
        return reached

    def wait_finished(self, job_id: str, timeout_s: float | None = None) -> dict:
        """Block until the job ends by itself; rank 0's final status (the check's last phase)."""
        end = time.time() + (timeout_s or self.timeout_s)
        while time.time() < end:
            res = self.run_epoch(0.0, min(5.0, max(0.1, end - time.time())))
            if job_id in res.finished:
                return {"step": res.steps[job_id]}
            if res.failed_nodes:
                raise RuntimeError(f"{job_id}: nodes {res.failed_nodes} failed under it")
        raise TimeoutError(f"{job_id} did not finish within {timeout_s or self.timeout_s}s on Ray")
