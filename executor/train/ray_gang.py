"""A job's workers as Ray actors: one gang per launch, in one placement group pinned to the plan's nodes.

Each fleet node is a Ray node advertising the custom resource `meridian_node_<name>` (value 1; see the
README's "Running on a cluster"). A gang asks one bundle per replica holding a sliver of that resource
(`BUNDLE_SHARE`), so the bundles land exactly on the nodes the plan names: the resource names a node,
it does not count its devices (the planner does that), and a prelaunched gang fits beside the one it
replaces. The actors run the same training runtime as the `torchrun` workers (`executor.train.runtime`:
fixed logical world size, exact mode, atomic checksummed checkpoints) in one `torch.distributed` gloo
group whose rendezvous is the rank-0 actor's address. They report through the same files in a
per-launch run folder on their node; the driver reads rank 0's through an actor call, so the driver
never needs that node's disk. A stop is a flag every worker sees at the next step boundary (the
runtime's agreement), rank 0 checkpoints, every `run` call returns; then the actors are killed and the
placement group removed.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from executor.train.checkpoint import CheckpointError, CheckpointWriteError

NODE_RESOURCE_PREFIX = "meridian_node_"
BUNDLE_SHARE = 0.001      # a bundle's share of its node's naming resource: pins without counting


def node_resource(node: str) -> str:
    """The custom resource a Ray node advertises to say it is fleet node `node`."""
    return NODE_RESOURCE_PREFIX + node


def import_ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("the Ray executor needs Ray: .venv/bin/pip install -e '.[ray]'") from None
    return ray


class _Flags:
    stop = False
    checkpoint = False


class _Gate:
    """The runtime waits for `exists()` (a file for `torchrun` workers; an actor call opens this one)."""

    opened = False

    def exists(self) -> bool:
        return self.opened


class GangMember:
    """One physical worker (one replica) as a Ray actor; `run` blocks while the others answer calls."""

    def __init__(self, spec: dict, ckpt_dir: str, run_dir: str, rank: int, workers: int,
                 save_at: list[int] | None = None, fault: str | None = None) -> None:
        self.created_unix = time.time()
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
        self.imported_unix = time.time()
        self.spec, self.rank, self.workers = spec, rank, workers
        from executor.train.stores import open_store

        self.ckpt_dir, self.run_dir = ckpt_dir, Path(run_dir)      # ckpt_dir: a folder or an fsspec URL
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.prepare_error: str | None = None      # raised by `run` as a CheckpointWriteError, not an actor death
        try:
            open_store(ckpt_dir).prepare()
        except OSError as exc:
            self.prepare_error = f"cannot write checkpoints to {ckpt_dir}: {exc.strerror or exc}"
        self.save_at, self.fault = save_at or [], fault
        self.flags, self.gate = _Flags(), _Gate()

    def rendezvous_address(self) -> tuple[str, int]:
        """This node's address and a free port on it: where the gang's process group meets (rank 0)."""
        import ray

        ip = ray.util.get_node_ip_address()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
            return ip, s.getsockname()[1]

    def run(self, master_addr: str, master_port: int, gated: bool, pg_timeout_s: float) -> dict | None:
        """Join the group, (wait at the gate,) resume, train until done or stopped; rank 0's status."""
        from executor.train.runtime import Runtime
        from executor.train.spec import TrainSpec
        from executor.train.worker import parse_fault

        if self.prepare_error is not None:
            raise CheckpointWriteError(self.prepare_error)
        os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port), RANK=str(self.rank),
                          WORLD_SIZE=str(self.workers), LOCAL_RANK="0")
        if master_addr.startswith("127.") and Path("/sys/class/net/lo").exists():
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        rt = Runtime(TrainSpec.from_dict(self.spec), self.ckpt_dir, self.run_dir, parse_fault(self.fault),
                     pg_timeout_s)
        rt.save_at = set(self.save_at)
        rt.timings.update(process_start_unix=self.created_unix, imported_unix=self.imported_unix)
        rt.run(self.flags, self.gate if gated else None)
        return self.read("status.json") if self.rank == 0 else None

    def stop(self) -> None:
        self.flags.stop = True

    def open_gate(self) -> float:
        self.gate.opened = True
        return time.time()

    def read(self, name: str) -> dict | None:
        """One of the run folder's reports (progress, gated, timings, status), None until written."""
        try:
            return json.loads((self.run_dir / name).read_text())
        except (OSError, ValueError):
            return None


@dataclass
class Gang:
    """One launch of one job on Ray: its placement group, actors (rank order) and their `run` calls."""

    run_dir: Path
    nodes: dict[str, int]
    pg: object
    actors: list
    runs: list
    launched_unix: float
    gated: bool
    result: dict | None = None
    ended: str | None = None             # None while running; finished | preempted | cancelled | failed
    errors: list[str] = field(default_factory=list)
    checkpoint_error: str | None = None  # a worker's CheckpointError: a relaunch would fail the same way

    @property
    def workers(self) -> int:
        return sum(self.nodes.values())


def launch(spec: dict, nodes: dict[str, int], run_dir: Path, ckpt_dir: Path | str, gated: bool = False,
           save_at: list[int] | None = None, fault: str | None = None, timeout_s: float = 120.0,
           pg_timeout_s: float = 120.0) -> Gang:
    """Reserve one bundle per replica on the named nodes, start the actors, and start their `run`.

    Raises TimeoutError (nothing left behind) when the bundles cannot be placed in `timeout_s`: a named
    node is missing from the cluster or down."""
    ray = import_ray()
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    launched = time.time()
    bundles = [{node_resource(n): BUNDLE_SHARE} for n, count in nodes.items() for _ in range(count)]
    pg = placement_group(bundles, strategy="PACK")
    try:
        ray.get(pg.ready(), timeout=timeout_s)
    except Exception:  # noqa: BLE001 (GetTimeoutError, or the group could not be created)
        remove_placement_group(pg)
        raise TimeoutError(f"no room on Ray nodes {sorted(nodes)} within {timeout_s:g} s (is each a Ray node "
                           f"with resource {node_resource('<name>')}?)") from None
    member = ray.remote(GangMember)
    workers = len(bundles)
    actors = [member.options(num_cpus=0, max_concurrency=4, max_restarts=0,
                             scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i))
              .remote(spec, str(ckpt_dir), str(run_dir), i, workers, save_at, fault) for i in range(workers)]
    try:
        addr, port = ray.get(actors[0].rendezvous_address.remote(), timeout=timeout_s)
    except Exception:
        for a in actors:
            ray.kill(a)
        remove_placement_group(pg)
        raise
    runs = [a.run.remote(addr, port, gated, pg_timeout_s) for a in actors]
    return Gang(Path(run_dir), dict(nodes), pg, actors, runs, launched, gated)


def _settle(gang: Gang, timeout_s: float) -> bool:
    """Collect the `run` calls that have returned within `timeout_s`; True when every one has."""
    ray = import_ray()
    if gang.ended is not None:
        return True
    done, pending = ray.wait(gang.runs, num_returns=len(gang.runs), timeout=timeout_s)
    failed = False
    for ref in done:
        try:
            out = ray.get(ref)
        except ray.exceptions.RayError as exc:
            failed = True
            cause = getattr(exc, "cause", None)      # the worker's own exception (a RayTaskError's)
            if isinstance(cause, CheckpointError) and gang.checkpoint_error is None:
                gang.checkpoint_error = str(cause)
            gang.errors.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
            continue
        if out is not None:
            gang.result = out
    if failed:
        gang.ended = "failed"
        return True
    if pending:
        return False
    gang.ended = (gang.result or {}).get("state", "failed")
    return True


def poll(gang: Gang) -> str:
    """running | finished | preempted | cancelled | failed (a worker raised or its actor died)."""
    if _settle(gang, 0):
        return gang.ended
    ray = import_ray()
    done, _ = ray.wait(gang.runs, num_returns=1, timeout=0)
    if done:          # one returned, others not yet: a raised error settles the gang as failed
        _settle(gang, 0)
        if gang.ended == "failed":
            return "failed"
    return "running"


def read(gang: Gang, name: str, timeout_s: float = 10.0) -> dict | None:
    """Rank 0's report `name`; None when not written yet or rank 0 is gone."""
    ray = import_ray()
    try:
        return ray.get(gang.actors[0].read.remote(name), timeout=timeout_s)
    except (ray.exceptions.RayError, TimeoutError):
        return None


def wait_gated(gang: Gang, timeout_s: float) -> dict:
    """Block until a prelaunched gang is ready at its gate; returns rank 0's timings so far."""
    end = time.time() + timeout_s
    while time.time() < end:
        t = read(gang, "gated.json")
        if t is not None:
            return t
        if poll(gang) != "running":
            kill(gang)
            if gang.checkpoint_error is not None:
                raise CheckpointError(gang.checkpoint_error)
            raise RuntimeError(f"prelaunched Ray workers ended ({gang.ended}: {'; '.join(gang.errors)}) before "
                               f"the gate; see {gang.run_dir}")
        time.sleep(0.02)
    kill(gang)
    raise TimeoutError(f"prelaunched Ray workers not ready within {timeout_s}s; see {gang.run_dir}")


def open_gate(gang: Gang) -> float:
    ray = import_ray()
    return max(ray.get([a.open_gate.remote() for a in gang.actors], timeout=30))


def wait_first_step(gang: Gang, timeout_s: float) -> dict | None:
    """Block until rank 0 reports its first step after (re)start (None: nothing was left to run)."""
    end = time.time() + timeout_s
    while time.time() < end:
        t = read(gang, "timings.json")
        if t is not None:
            return t
        state = poll(gang)
        if state != "running":
            t = read(gang, "timings.json")     # it may have got there just before it ended
            if t is not None:
                return t
            if state == "finished":
                return None
            if gang.checkpoint_error is not None:
                raise CheckpointError(gang.checkpoint_error)
            raise RuntimeError(f"Ray workers ended ({state}: {'; '.join(gang.errors)}) before their first step; "
                               f"see {gang.run_dir}")
        time.sleep(0.02)
    kill(gang)
    raise TimeoutError(f"no first step within {timeout_s}s on Ray; see {gang.run_dir}")


def wait_step(gang: Gang, step: int, timeout_s: float) -> int:
    """Block until the job has done `step` steps (or ended); the step it reached."""
    end = time.time() + timeout_s
    while time.time() < end:
        s = (read(gang, "progress.json") or {}).get("step", 0)
        if s >= step or poll(gang) != "running":
            return s
        time.sleep(0.05)
    kill(gang)
    raise TimeoutError(f"step {step} not reached within {timeout_s}s on Ray; see {gang.run_dir}")


def stop(gang: Gang, grace_s: float) -> tuple[str, float, dict | None]:
    """Preempt through the checkpoint path: every worker stops at the next step boundary, rank 0
    checkpoints, the `run` calls return; after `grace_s` the actors are killed. (state, seconds, status)."""
    t0 = time.time()
    for a in gang.actors:
        a.stop.remote()
    _settle(gang, grace_s)
    stop_s = time.time() - t0
    state = gang.ended or "killed"
    kill(gang)
    return state, stop_s, gang.result


def kill(gang: Gang) -> None:
    """End the actors and free the placement group (idempotent)."""
    ray = import_ray()
    from ray.util.placement_group import remove_placement_group

    for a in gang.actors:
        try:
            ray.kill(a, no_restart=True)
        except Exception:  # noqa: BLE001, S110 (already gone)
            pass
    try:
        remove_placement_group(gang.pg)
    except Exception:  # noqa: BLE001, S110 (already removed)
        pass
    if gang.ended is None:
        gang.ended = "killed"


def wait(gang: Gang, timeout_s: float) -> str:
    """Wait for the gang to end by itself; on timeout kill it and say 'timeout'."""
    if not _settle(gang, timeout_s):
        kill(gang)
        return "timeout"
    state = gang.ended
    kill(gang)
    return state


def alive_fleet_nodes() -> set[str]:
    """Fleet node names the live Ray nodes advertise."""
    ray = import_ray()
    out = set()
    for n in ray.nodes():
        if n.get("Alive"):
            out.update(r[len(NODE_RESOURCE_PREFIX):] for r in n.get("Resources", {}) if r.startswith(NODE_RESOURCE_PREFIX))
    return out
