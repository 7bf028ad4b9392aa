"""The training worker that `torchrun` starts, one process per replica:
`python -m executor.train.worker --spec SPEC.json --ckpt-dir DIR --run-dir DIR [--fault F]`.

Worker i of r runs logical ranks [i*W/r, (i+1)*W/r) with gradient accumulation, resumes from the newest
intact checkpoint in `--ckpt-dir`, and at every step boundary agrees with the others (one tiny
all-reduce) on whether to stop (SIGTERM) or checkpoint (SIGUSR1). A stop finishes the running step,
checkpoints and exits 0. Rank 0 reports through files in `--run-dir`: `progress.json` every step,
`timings.json` once the first step after (re)start is done, `status.json` on exit, `saves.jsonl`.
"""

from __future__ import annotations

import threading
import time

T_PROCESS = time.time()   # before importing torch: the launch measurement starts here

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from executor.train.procfs import stat_fields


class Flags:
    stop = False
    checkpoint = False


def _on_term(signum, frame) -> None:
    Flags.stop = True


def _on_usr1(signum, frame) -> None:
    Flags.checkpoint = True


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(obj, sort_keys=True))
    os.replace(tmp, path)


def process_start_ticks(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot): a PID plus this names one process.
    None when no such process lives (or it is a zombie)."""
    try:
        fields = stat_fields(pid)
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def parse_fault(text: str | None) -> dict:
    """`kind:key=value,...`, e.g. `worker_kill:rank=1,step=7` or `writer:when=mid_write,step=10`."""
    if not text:
        return {}
    kind, _, rest = text.partition(":")
    out: dict = {"kind": kind}
    for part in filter(None, rest.split(",")):
        k, _, v = part.partition("=")
        out[k] = int(v) if v.lstrip("-").isdigit() else v
    return out


def _exit_with_owner(owner: str | None) -> None:
    """Exit at once when the torchrun agent that started this worker, or the process that launched the
    agent (`owner`, "PID:START_TICKS"), is gone. Both are killed when the caller is interrupted, and a
    worker that had not yet reported its PID could not be killed with them: an orphan would train on,
    unseen, writing into the caller's folders (or a removed temporary one). The owner's start time tells
    it from a later process given the same PID."""
    parent = os.getppid()
    pid, _, ticks = (owner or "").partition(":")

    def owner_alive() -> bool:
        return not pid or process_start_ticks(int(pid)) == int(ticks)

    def watch() -> None:
        while os.getppid() == parent and owner_alive():
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="owner-watch").start()


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGUSR1, _on_usr1)
    ap = argparse.ArgumentParser(prog="executor.train.worker")
    ap.add_argument("--spec", required=True)
    ap.add_argument("--ckpt-dir", required=True)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--fault", default=None)
    ap.add_argument("--pg-timeout-s", type=float, default=120.0)
    ap.add_argument("--gate", default=None, help="prelaunch: get ready, then wait for this file before resuming")
    ap.add_argument("--save-at", default="", help="comma-separated steps to checkpoint at without stopping")
    ap.add_argument("--owner", default=None, help="PID:START_TICKS of the launching process: exit when it is gone")
    args = ap.parse_args(argv)
    _exit_with_owner(args.owner)

    run_dir, ckpt_dir = Path(args.run_dir), Path(args.ckpt_dir)
    rank = int(os.environ.get("RANK", "0"))
    pid_dir = run_dir / "pids"
    pid_dir.mkdir(parents=True, exist_ok=True)
    _write_json(pid_dir / f"worker-{rank}.json", {"pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid())})

    import torch

    t_imported = time.time()
    torch.set_num_threads(1)   # one thread per worker: matmul results must not depend on thread count
    from executor.train.runtime import Runtime
    from executor.train.spec import TrainSpec

    spec = TrainSpec.from_dict(json.loads(Path(args.spec).read_text()))
    rt = Runtime(spec, ckpt_dir, run_dir, parse_fault(args.fault), args.pg_timeout_s)
    rt.save_at = {int(s) for s in args.save_at.split(",") if s}
    rt.timings.update(process_start_unix=T_PROCESS, imported_unix=t_imported)
    from executor.train.checkpoint import CheckpointError

    try:
        return rt.run(Flags, Path(args.gate) if args.gate else None)
    except CheckpointError as exc:      # one line in the worker's log (and `status.json`), no traceback
        # one write: stderr is unbuffered here (PYTHONUNBUFFERED), where print() writes the text and its
        # newline separately and another rank's line, sharing the log, can land between them
        sys.stderr.write(f"executor.train.worker: rank {rank}: {exc}\n")
        return 1


if __name__ == "__main__":
    rc = main()
    # Everything that matters is fsynced and the process group is gone; skipping the interpreter's
    # teardown of torch (seconds with four workers on two cores) is what keeps a preemption short.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
