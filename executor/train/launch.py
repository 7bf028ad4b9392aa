"""Starting and stopping a job's workers through `torchrun`, with no torch import here.

One `torchrun` agent per node of the placement, each with `--nproc-per-node` = the replicas on that
node and a static rendezvous at 127.0.0.1 (multi-node is the same argv with the head node's address).
Workers record their PID (and kernel start time, against PID reuse) in `RUN_DIR/pids/`, because an
agent killed outright leaves its workers running. A stop sends SIGTERM to every worker (each finishes
its step, checkpoints and exits 0), waits out a grace period, then SIGKILLs what is left, workers first.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from executor.train.procfs import stat_fields
from executor.train.worker import process_start_ticks

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    if Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return env


def torchrun_argv(nnodes: int, node_rank: int, nproc: int, port: int, worker_args: list[str],
                  python: str = sys.executable, master_addr: str = "127.0.0.1") -> list[str]:
    """The agent command for one node; on a real cluster only `master_addr` changes."""
    return [python, "-m", "torch.distributed.run", f"--nnodes={nnodes}", f"--node-rank={node_rank}",
            f"--nproc-per-node={nproc}", f"--master-addr={master_addr}", f"--master-port={port}",
            "--max-restarts=0", "--monitor-interval=0.05", "-m", "executor.train.worker", *worker_args]


@dataclass
class WorkerGroup:
    """One launch of one job: its agents, where its workers report, and when it started."""

    run_dir: Path
    ckpt_dir: Path
    nodes: dict[str, int]
    agents: list[subprocess.Popen]
    launched_unix: float
    logs: list = field(default_factory=list)

    @property
    def workers(self) -> int:
        return sum(self.nodes.values())


def launch(spec_path: Path, nodes: dict[str, int], run_dir: Path, ckpt_dir: Path, fault: str | None = None,
           pg_timeout_s: float = 120.0, save_at: list[int] | None = None, gated: bool = False) -> WorkerGroup:
    """Start one torchrun agent per node (`nodes`: node name -> workers on it, in rank order).

    `save_at`: steps at which to checkpoint without stopping; `fault`: a deterministic crash to inject
    (see `executor.train.worker.parse_fault`); `gated`: prelaunch, the workers get ready and wait for
    `open_gate` before resuming from the checkpoint (`wait_gated` says when they are ready)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = ["--spec", str(spec_path), "--ckpt-dir", str(ckpt_dir), "--run-dir", str(run_dir),
            f"--pg-timeout-s={pg_timeout_s}", f"--owner={os.getpid()}:{process_start_ticks(os.getpid())}"]
    if fault:
        args += ["--fault", fault]
    if save_at:
        args += ["--save-at", ",".join(map(str, save_at))]
    if gated:
        args += ["--gate", str(run_dir / "go")]
    env = worker_env()
    env["TMPDIR"] = str(run_dir / "tmp")        # torchrun's own scratch folder goes with the run, not /tmp
    (run_dir / "tmp").mkdir(exist_ok=True)
    agents, logs = [], []
    launched = time.time()
    for i, (node, count) in enumerate(nodes.items()):
        log = open(run_dir / f"agent-{i}-{node}.log", "wb")  # noqa: SIM115 (closed when the group ends)
        logs.append(log)
        agents.append(subprocess.Popen(torchrun_argv(len(nodes), i, count, port, args), cwd=REPO, env=env,
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True))
    group = WorkerGroup(run_dir, ckpt_dir, dict(nodes), agents, launched, logs)
    _LAUNCHED[:] = [g for g in _LAUNCHED if any(a.poll() is None for a in g.agents)]   # (the ended ones go)
    _LAUNCHED.append(group)
    return group


def worker_pids(group: WorkerGroup) -> dict[int, int]:
    """rank -> PID of every worker that has reported and is still alive (and is the same process)."""
    out = {}
    pid_dir = group.run_dir / "pids"
    if pid_dir.is_dir():
        for f in pid_dir.glob("worker-*.json"):
            try:
                rec = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if process_start_ticks(rec["pid"]) == rec["start_ticks"]:
                out[int(f.stem.split("-")[1])] = rec["pid"]
    return out


def reported_workers(group: WorkerGroup) -> int:
    pid_dir = group.run_dir / "pids"
    return len(list(pid_dir.glob("worker-*.json"))) if pid_dir.is_dir() else 0


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def poll(group: WorkerGroup) -> str:
    """running | finished | preempted | failed (an agent exited non-zero, or exited without a status)."""
    codes = [a.poll() for a in group.agents]
    if any(c not in (None, 0) for c in codes):
        return "failed"
    if any(c is None for c in codes):
        # A worker that vanished before rank 0 wrote the status crashed or was killed: the others are
        # blocked in a collective that will never complete, so the group has failed already.
        if (reported_workers(group) == group.workers and len(worker_pids(group)) < group.workers
                and not (group.run_dir / "status.json").exists()):
            return "failed"
        return "running"
    status = read_json(group.run_dir / "status.json")
    return status["state"] if status else "failed"


def signal_workers(group: WorkerGroup, sig: int) -> list[int]:
    sent = []
    for pid in worker_pids(group).values():
        try:
            os.kill(pid, sig)
            sent.append(pid)
        except ProcessLookupError:
            pass
    return sent


@dataclass
class StopResult:
    state: str            # preempted | finished | killed | failed
    stop_s: float         # SIGTERM sent -> every worker and agent gone
    escalated: bool       # some worker needed SIGKILL after the grace period
    status: dict | None   # rank 0's status.json, when it wrote one


def stop(group: WorkerGroup, grace_s: float = 30.0) -> StopResult:
    """Preempt through the checkpoint path: SIGTERM, wait up to `grace_s`, then SIGKILL the rest.

    The stop is over when every worker is gone (the checkpoint is durable before they exit); the agents,
    which hold no device, are left to exit in the background (and killed if they linger)."""
    t0 = time.time()
    deadline = t0 + grace_s
    # Workers still starting have no PID file yet; wait for them (they then see the SIGTERM at once).
    while (reported_workers(group) < group.workers and time.time() < deadline
           and all(a.poll() is None for a in group.agents)):
        time.sleep(0.02)
    signal_workers(group, signal.SIGTERM)
    escalated = False
    while time.time() < deadline:
        if not worker_pids(group) and (reported_workers(group) == group.workers
                                       or any(a.poll() is not None for a in group.agents)):
            break
        time.sleep(0.01)
    else:
        escalated = True
    stop_s = time.time() - t0
    status = read_json(group.run_dir / "status.json")
    if escalated:
        kill(group)
        state = "killed"
    elif any(a.poll() not in (None, 0) for a in group.agents) or status is None:
        kill(group)
        state = "failed"
    else:
        state = status["state"]
        _reap_later(group)
    return StopResult(state, stop_s, escalated, status)


def _reap_later(group: WorkerGroup, timeout_s: float = 15.0) -> None:
    def reap() -> None:
        end = time.time() + timeout_s
        for a in group.agents:
            try:
                a.wait(max(0.0, end - time.time()))
            except subprocess.TimeoutExpired:
                pass
        kill(group)

    t = threading.Thread(target=reap, daemon=True, name="reap-agents")
    t.start()
    _REAPERS.append(t)


_REAPERS: list[threading.Thread] = []
# Every group this process launched: `kill_all` ends those still alive when the caller is interrupted,
# wherever the interrupt caught it (a stop's new group prelaunched but not yet handed over, say).
_LAUNCHED: list[WorkerGroup] = []


def kill_all() -> None:
    """SIGKILL every worker and agent this process launched that is still alive, and reap them."""
    while _LAUNCHED:
        group = _LAUNCHED.pop()
        if any(a.poll() is None for a in group.agents) or worker_pids(group):
            kill(group)
    drain()


def drain() -> None:
    """Wait for every background reaper: no agent of a stopped group outlives its caller."""
    while _REAPERS:
        _REAPERS.pop().join()


def descendants(pids: list[int]) -> dict[int, int]:
    """PID -> start ticks of every living process below any of `pids` (one pass over /proc for all of a
    group's agents): an agent's workers, including those that have not reported their PID yet (torchrun
    starts each in a session of its own, so killing the agent's session misses them, and one killed before
    it reports would otherwise write into its run folder after the caller has removed it)."""
    children: dict[int, list[tuple[int, int]]] = {}   # parent -> (child, its start ticks)
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = stat_fields(int(entry))
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append((int(entry), int(fields[19])))
    below: dict[int, int] = {}
    frontier = list(pids)
    while frontier:
        for child, ticks in children.get(frontier.pop(), ()):
            if child not in below:
                below[child] = ticks
                frontier.append(child)
    return below


def kill(group: WorkerGroup) -> None:
    """SIGKILL every worker (reported or not), then every agent (its whole session), and reap the agents."""
    doomed = {pid: t for pid in worker_pids(group).values() if (t := process_start_ticks(pid)) is not None}
    stopped = []
    for a in group.agents:
        if a.poll() is None:
            try:
                os.killpg(a.pid, signal.SIGSTOP)    # it starts no worker between the look and the kill
            except ProcessLookupError:
                continue
            stopped.append(a.pid)
    if stopped:
        doomed.update(descendants(stopped))
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for a in group.agents:
        if a.poll() is None:
            try:
                os.killpg(a.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        a.wait()
    t_end = time.time() + 5
    while any(process_start_ticks(pid) == t for pid, t in doomed.items()) and time.time() < t_end:
        # (reparented workers are reaped asynchronously)
        time.sleep(0.01)
    for log in group.logs:
        log.close()
    group.logs.clear()


def wait(group: WorkerGroup, timeout_s: float, poll_s: float = 0.05) -> str:
    """Wait for the group to end by itself; on timeout kill it and say 'timeout'."""
    end = time.time() + timeout_s
    while time.time() < end:
        state = poll(group)
        if state != "running":
            if state == "failed":
                kill(group)
            else:
                for a in group.agents:
                    a.wait()
                kill(group)
            return state
        time.sleep(poll_s)
    kill(group)
    return "timeout"


def wait_gated(group: WorkerGroup, timeout_s: float) -> dict:
    """Block until a prelaunched group is ready at its gate; returns rank 0's timings so far."""
    end = time.time() + timeout_s
    while time.time() < end:
        t = read_json(group.run_dir / "gated.json")
        if t is not None:
            return t
        if poll(group) != "running":
            kill(group)
            raise RuntimeError(f"prelaunched workers ended ({poll(group)}) before the gate; see {group.run_dir}")
        time.sleep(0.01)
    kill(group)
    raise TimeoutError(f"prelaunched workers not ready within {timeout_s}s; see {group.run_dir}")


def open_gate(group: WorkerGroup) -> float:
    """Let a prelaunched group resume (the previous workers' checkpoint is durable); returns the time."""
    from executor.train.atomic import write_file_synced

    write_file_synced(group.run_dir / "go", b"go\n")
    return time.time()


def progress_step(group: WorkerGroup) -> int | None:
    rec = read_json(group.run_dir / "progress.json")
    return rec["step"] if rec else None
