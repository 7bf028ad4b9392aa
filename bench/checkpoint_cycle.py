"""Preempt -> running again, and checkpoint write speed, for the executor-check job (W = 4, ~10 M
parameters, AdamW, float32) on this machine.

    .venv/bin/python bench/checkpoint_cycle.py [--repeats 3] [--workers 4 1] [--hidden 2176]
    unshare -n sh -c 'ip link set lo up; exec .venv/bin/python bench/checkpoint_cycle.py --ray'

Part 1: for 4 and 1 workers, start the job, let it train a few steps, then time real cycles of
SIGTERM -> finish step -> checkpoint -> exit -> torchrun relaunch -> rendezvous -> load -> first step,
broken down by phase (medians over --repeats). Targets: <= 10 s for 4 workers, <= 5 s for 1.
`cold`: the relaunch starts after the stop (a preempted job restarting). `warm`: the new workers are
prelaunched and wait at a gate while the old ones still train (what the torch executor does for a
resize, move or migrate); the pause is then stop + load + first step, `prelaunch_s` is off the pause.
Part 2: the checkpoint writer (`executor.train.checkpoint.save`: serialize, checksum, fsync, rename,
fsync the folder) against a raw write + fsync of the same bytes, measured alternately in this run.
Target: the checkpoint write at least half as fast as the raw write (ratio >= 0.5).
`--ray` adds Ray rows: the same job as a gang of Ray actors (`executor.train.ray_gang`, what the Ray
executor runs) on a one-node local Ray cluster: cold (stop through the checkpoint, remove the placement
group, a new gang: actors, imports, rendezvous, load, first step) and warm (prelaunched), with the ratio
to the torchrun row of the same mode measured in this run. Target: Ray cold within 2x torchrun cold.
Ray listens on every interface: run `--ray` only inside `unshare -n` (it refuses otherwise).
Prints a table per part and one JSON line at the end. The machine's load average is printed first:
the cycle is mostly process start-up and import time, so it scales with how busy the cores are.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from executor.train import launch as L
from executor.train.cycle import Job, cycle, wait_first_step, wait_step
from executor.train.spec import TrainSpec

PHASES = ("stop_s", "save_s", "prelaunch_s", "launch_s", "rendezvous_s", "load_s", "first_step_s", "total_s")
TARGET_S = {4: 10.0, 1: 5.0}


def bench_cycles(spec: TrainSpec, workers: int, repeats: int, work: Path, warm: bool) -> dict:
    spec_path = work / f"spec-{workers}.json"
    spec_path.write_text(json.dumps(spec.to_dict()))
    job = Job(f"bench-{workers}-{'warm' if warm else 'cold'}", spec_path, work / "runs", work / "storage", "local")
    nodes = {"local-0": workers}
    wait_first_step(job.start(nodes), 600)
    recs = []
    try:
        for _ in range(repeats):
            wait_step(job.group, (L.progress_step(job.group) or 0) + 3, 600)
            recs.append(cycle(job, nodes, timeout_s=600, warm=warm))
    finally:
        if job.group is not None:
            L.kill(job.group)
        L.drain()
    med = {k: statistics.median(r.get(k, 0.0) for r in recs) for k in PHASES}
    med["bytes"] = recs[-1]["bytes"]
    med["runs"] = [round(r["total_s"], 3) for r in recs]
    return med


def bench_ray_cycles(spec: TrainSpec, workers: int, repeats: int, work: Path, warm: bool) -> dict:
    """The same cycles with the job's workers as one Ray gang on fleet node local-0."""
    from executor.train import ray_gang as RG
    from executor.train.cycle import launch_breakdown

    mode = "warm" if warm else "cold"
    nodes, ckpt, n = {"local-0": workers}, work / "storage" / f"ray-{workers}-{mode}", [0]

    def launch(gated: bool):
        n[0] += 1
        return RG.launch(spec.to_dict(), nodes, work / "runs" / f"ray-{workers}-{mode}-{n[0]}", ckpt, gated=gated,
                         timeout_s=600)

    gang = launch(False)
    RG.wait_first_step(gang, 600)
    recs = []
    try:
        for _ in range(repeats):
            step = (RG.read(gang, "progress.json") or {}).get("step", 0)
            RG.wait_step(gang, step + 3, 600)
            new = None
            if warm:
                new = launch(True)
                RG.wait_gated(new, 600)
            t0 = time.time()
            state, stop_s, status = RG.stop(gang, 60)
            if state != "preempted":
                raise RuntimeError(f"Ray stop ended {state}: {gang.errors}")
            if new is None:
                new = launch(False)
            else:
                RG.open_gate(new)
            t = RG.wait_first_step(new, 600)
            rec = launch_breakdown(new, t)
            rec.update(stop_s=stop_s, save_s=(status or {}).get("save_s", 0.0), bytes=(status or {}).get("bytes"),
                       total_s=t["first_step_unix"] - t0)
            recs.append(rec)
            gang = new
    finally:
        RG.kill(gang)
    med = {k: statistics.median(r.get(k, 0.0) for r in recs) for k in PHASES}
    med["bytes"] = recs[-1]["bytes"]
    med["runs"] = [round(r["total_s"], 3) for r in recs]
    return med


def bench_write(spec: TrainSpec, repeats: int, work: Path) -> dict:
    import torch

    from executor.train import checkpoint
    from executor.train.model import build_model
    from executor.train.state_dicts import get_states

    model = build_model(spec)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    model_sd, optim_sd = get_states(model, opt)
    state = {"model": model_sd, "optim": optim_sd, "step": 1}
    buf = io.BytesIO()
    torch.save(state, buf)
    raw = buf.getvalue()
    ck_s, raw_s = [], []
    for i in range(repeats):
        root = work / f"ckpt-write-{i}"
        saved = checkpoint.save(root, 1, state)
        ck_s.append(saved.seconds)
        shutil.rmtree(root)
        path = work / f"raw-{i}.bin"
        t0 = time.perf_counter()
        with open(path, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        raw_s.append(time.perf_counter() - t0)
        os.unlink(path)
    ck, rw = statistics.median(ck_s), statistics.median(raw_s)
    return {"bytes": len(raw), "checkpoint_s": ck, "raw_write_fsync_s": rw,
            "checkpoint_MBps": len(raw) / ck / 1e6, "raw_MBps": len(raw) / rw / 1e6, "ratio": rw / ck}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="cycles per worker count (the write bench runs 3x as many)")
    ap.add_argument("--workers", type=int, nargs="+", default=[4, 1])
    ap.add_argument("--hidden", type=int, default=TrainSpec().hidden)
    ap.add_argument("--exact", action="store_true", help="exact-mode reduction (the default is all-reduce)")
    ap.add_argument("--ray", action="store_true", help="add Ray rows (a local one-node Ray cluster; inside unshare -n)")
    args = ap.parse_args()
    if args.ray:
        import socket

        others = [name for _, name in socket.if_nameindex() if name != "lo"]
        if others:
            print(f"--ray: interfaces other than loopback exist ({', '.join(others)}); run inside "
                  "unshare -n sh -c 'ip link set lo up; exec ...'", file=sys.stderr)
            return 2
    spec = replace(TrainSpec(), hidden=args.hidden, steps=1_000_000, exact=args.exact)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; job W={spec.world_size}, "
          f"{spec.params():,} parameters, {'exact' if spec.exact else spec.reduce_dtype + ' all-reduce'} mode, "
          f"medians of {args.repeats}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="meridian-bench-"))
    out: dict = {"params": spec.params(), "loadavg_1m": os.getloadavg()[0], "cycles": {}}
    try:
        print(f"{'backend':>8} {'workers':>7} {'mode':>5} " + " ".join(f"{k:>12}" for k in PHASES)
              + f" {'target_s':>9}  runs")
        ray_ctx = None
        if args.ray:
            from executor.ray_cluster import ray_for_fleet

            ray_ctx = ray_for_fleet(["local-0"], cpus_per_node=os.cpu_count() or 1)
            ray_ctx.__enter__()
        try:
            for w in args.workers:
                for warm in (False, True):
                    mode = "warm" if warm else "cold"
                    med = bench_cycles(spec, w, args.repeats, work, warm)
                    out["cycles"][f"{w}-{mode}"] = med
                    target = TARGET_S.get(w)
                    print(f"{'torchrun':>8} {w:>7} {mode:>5} " + " ".join(f"{med[k]:>12.3f}" for k in PHASES)
                          + f" {target if target else '-':>9}  {med['runs']}", flush=True)
                    if args.ray:
                        rmed = bench_ray_cycles(spec, w, args.repeats, work, warm)
                        rmed["ratio_to_torchrun"] = rmed["total_s"] / med["total_s"]
                        out["cycles"][f"ray-{w}-{mode}"] = rmed
                        print(f"{'ray':>8} {w:>7} {mode:>5} " + " ".join(f"{rmed[k]:>12.3f}" for k in PHASES)
                              + f" {2 * med['total_s'] if not warm else '-':>9.5}  {rmed['runs']}  "
                              f"ratio to torchrun {rmed['ratio_to_torchrun']:.2f} (load {os.getloadavg()[0]:.1f})",
                              flush=True)
        finally:
            if ray_ctx is not None:
                ray_ctx.__exit__(None, None, None)
        wr = bench_write(spec, 3 * args.repeats, work)
        out["write"] = wr
        print(f"checkpoint write {wr['checkpoint_s']:.3f}s ({wr['checkpoint_MBps']:.0f} MB/s) vs raw write+fsync "
              f"{wr['raw_write_fsync_s']:.3f}s ({wr['raw_MBps']:.0f} MB/s) of {wr['bytes'] / 1e6:.1f} MB: "
              f"ratio {wr['ratio']:.2f} (target >= 0.5)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
