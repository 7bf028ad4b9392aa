"""One physical worker's training loop (see `executor.train.worker` for the process around it)."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from executor.train.checkpoint import CheckpointError, NoIntactCheckpoint
from executor.train.model import SyntheticData, build_model, initial_rng_states
from executor.train.reduce import allreduce_sum, block_of, exact_reduce
from executor.train.spec import TrainSpec
from executor.train.state_dicts import get_states, set_states
from executor.train.stores import open_store


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(obj, sort_keys=True))
    os.replace(tmp, path)


class Runtime:
    def __init__(self, spec: TrainSpec, ckpt_dir: Path | str, run_dir: Path, fault: dict, pg_timeout_s: float) -> None:
        self.spec, self.ckpt_dir, self.run_dir, self.fault = spec, ckpt_dir, run_dir, fault
        self.store = open_store(ckpt_dir)          # a folder, or an fsspec URL (executor.train.stores)
        self.timings: dict = {}
        t0 = time.perf_counter()
        dist.init_process_group("gloo", timeout=timedelta(seconds=pg_timeout_s))
        self.timings["rendezvous_s"] = time.perf_counter() - t0
        self.rank, self.workers = dist.get_rank(), dist.get_world_size()
        if spec.world_size % self.workers:
            raise SystemExit(f"{self.workers} workers do not divide the logical world size {spec.world_size}")
        lo, hi = block_of(self.rank, self.workers, spec.world_size)
        self.block = list(range(lo, hi))
        self.model = build_model(spec)
        self.params = [p for p in self.model.parameters()]
        self.opt = torch.optim.AdamW(self.params, lr=spec.lr, weight_decay=spec.weight_decay)
        self.data = SyntheticData(spec)
        self.rng = initial_rng_states(spec)       # all W streams; this worker advances its block's
        self.step = 0
        self.saved_step: int | None = None
        self.save_at: set[int] = set()
        self._acc: torch.Tensor | None = None    # default mode's gradient accumulator

    # -- checkpoints -------------------------------------------------------------------------------

    def resume(self) -> None:
        """Load the newest intact checkpoint (rank 0 chooses, every worker loads it). CheckpointError on
        every worker when checkpoints exist but none is intact, or the newest was written by another spec."""
        t0 = time.perf_counter()
        choice = [None, [], None]
        if self.rank == 0:
            self.store.clean()
            try:
                choice = [*self.store.resume_point(), None]
            except NoIntactCheckpoint as exc:
                choice = [None, [], str(exc)]
        if self.workers > 1:
            dist.broadcast_object_list(choice, src=0)
        step, skipped, refused = choice
        if refused:
            raise NoIntactCheckpoint(refused)
        path = None if step is None else self.store.where(step)
        self.timings["skipped_checkpoints"] = skipped
        if step is not None:
            _meta, state = self.store.load(step)
            if state["spec"] != self.spec.fingerprint():
                raise CheckpointError(f"checkpoint {path} was written by another training spec")
            try:
                set_states(self.model, self.opt, state["model"], state["optim"])
            except ValueError as exc:     # the spec's fingerprint matched, yet the model differs (edited code)
                raise CheckpointError(f"checkpoint {path}: {exc}") from exc
            self.step = self.saved_step = int(state["step"])
            self.rng = list(state["rng"]["logical"])
            torch.set_rng_state(state["rng"]["torch"])
            random.setstate(state["rng"]["python"])
        self.timings["resumed_from_step"] = self.step
        self.timings["resumed_from"] = path
        self.timings["load_s"] = time.perf_counter() - t0

    def save(self, reason: str) -> None:
        fault = None
        if self.fault.get("kind") == "writer" and self.fault.get("step") == self.step and self.rank == 0:
            fault = self.fault.get("when")
        mine = {k: self.rng[k] for k in self.block}
        if self.workers > 1:
            gathered: list = [None] * self.workers
            dist.all_gather_object(gathered, mine)
            for part in gathered:
                for k, s in part.items():
                    self.rng[k] = s
        if self.rank == 0:
            model_sd, optim_sd = get_states(self.model, self.opt)
            state = {
                "model": model_sd, "optim": optim_sd, "step": self.step, "spec": self.spec.fingerprint(),
                "rng": {"logical": self.rng, "torch": torch.get_rng_state(), "python": random.getstate()},
                "data": {"step": self.step, "samples_seen": self.step * self.spec.global_batch,
                         "epoch": self.step * self.spec.global_batch // self.spec.dataset_size},
            }
            saved = self.store.save(self.step, state, keep=self.spec.keep_checkpoints, fault=fault,
                                    extra_meta={"reason": reason, "workers": self.workers,
                                                "spec": self.spec.fingerprint()})
            with open(self.run_dir / "saves.jsonl", "a") as f:
                f.write(json.dumps({"step": saved.step, "bytes": saved.bytes, "save_s": saved.seconds,
                                    "reason": reason, "path": str(saved.path)}) + "\n")
            self.last_save = saved
        if self.workers > 1:
            dist.barrier()
        self.saved_step = self.step

    # -- training ----------------------------------------------------------------------------------

    def _micro(self, k: int) -> None:
        torch.set_rng_state(self.rng[k])
        x, y = self.data.micro_batch(self.step, k)
        F.cross_entropy(self.model(x), y).backward()
        self.rng[k] = torch.get_rng_state()
        f = self.fault
        if f.get("kind") == "worker_kill" and f.get("rank") == self.rank and f.get("step") == self.step:
            os.kill(os.getpid(), signal.SIGKILL)   # mid-step: after a backward, before the reduction

    def _flat_grad(self) -> torch.Tensor:
        return torch.cat([p.grad.reshape(-1) for p in self.params])

    def train_step(self) -> None:
        self.model.train()
        if self.spec.exact:
            leaves = {}
            for k in self.block:
                for p in self.params:
                    p.grad = None
                self._micro(k)
                leaves[k] = self._flat_grad()
            total = exact_reduce(leaves, self.spec.world_size)
        else:
            if self._acc is None:       # kept across steps: no page faults on 80 MB every step
                dtype = torch.float64 if self.spec.reduce_dtype == "float64" else torch.float32
                self._acc = torch.empty(sum(p.numel() for p in self.params), dtype=dtype)
            total = self._acc
            for i, k in enumerate(self.block):
                for p in self.params:
                    p.grad = None
                self._micro(k)
                offset = 0
                for p in self.params:        # widen and add in place, parameter by parameter
                    part = total[offset:offset + p.numel()]
                    part.copy_(p.grad.view(-1)) if i == 0 else part.add_(p.grad.view(-1))
                    offset += p.numel()
            total = allreduce_sum(total)
        total = (total / self.spec.world_size).to(torch.float32)
        offset = 0
        for p in self.params:
            n = p.numel()
            p.grad = total[offset:offset + n].view_as(p).clone()
            offset += n
        self.opt.step()
        self.step += 1

    def _agree(self, flags) -> tuple[bool, bool]:
        """Every worker stops (or checkpoints) at the same step boundary, whoever got the signal."""
        t = torch.tensor([int(flags.stop), int(flags.checkpoint)], dtype=torch.int64)
        if self.workers > 1:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t[0]), bool(t[1])

    def wait_at_gate(self, gate: Path, flags) -> bool:
        """A prelaunched worker: everything but the checkpoint is ready (processes, imports, rendezvous,
        model, optimizer, kernels warmed on zeros in eval mode, which draws no random numbers); wait for
        the executor to open the gate once the previous workers have stopped and their checkpoint is
        durable. False: stopped (SIGTERM) before the gate opened, so there is nothing to save."""
        self.model.eval()
        x, _ = self.data.micro_batch(0, 0)
        self.model(torch.zeros_like(x)).sum().backward()
        for p in self.params:
            p.grad = None
        if self.workers > 1:
            dist.barrier()
        self.timings["gated_unix"] = time.time()
        if self.rank == 0:
            _write_json(self.run_dir / "gated.json", self.timings)
        while not gate.exists():
            if flags.stop:
                return False
            time.sleep(0.005)
        self.timings["gate_open_unix"] = time.time()
        return True

    def run(self, flags, gate: Path | None = None) -> int:
        """Train to the spec's last step, or until a stop; 0. A CheckpointError (no checkpoint to resume
        from, none can be written) is recorded in rank 0's `status.json` (`state` failed, `error`) for the
        executor, then raised: a relaunch would fail the same way."""
        try:
            return self._run(flags, gate)
        except CheckpointError as exc:
            if self.rank == 0:
                _write_json(self.run_dir / "status.json", {"state": "failed", "error": str(exc), "step": self.step,
                                                           "exit_unix": time.time(), "save_s": 0.0, "bytes": None})
            raise

    def _run(self, flags, gate: Path | None) -> int:
        if gate is not None and not self.wait_at_gate(gate, flags):
            if self.rank == 0:
                _write_json(self.run_dir / "status.json", {"state": "cancelled", "step": None,
                                                           "exit_unix": time.time(), "save_s": 0.0, "bytes": None})
            dist.destroy_process_group()
            return 0
        self.resume()
        self.timings["ready_unix"] = time.time()
        state = "finished"
        first = True
        while self.step < self.spec.steps:
            stop, ask = self._agree(flags)
            if stop:
                state = "preempted"
                break
            if ask:
                flags.checkpoint = False
                self.save("request")
            self.train_step()
            if self.rank == 0:
                _write_json(self.run_dir / "progress.json", {"step": self.step, "unix": time.time()})
                if first:
                    self.timings["first_step_unix"] = time.time()
                    self.timings["workers"] = self.workers
                    _write_json(self.run_dir / "timings.json", self.timings)
            first = False
            every = self.spec.checkpoint_every
            if self.step < self.spec.steps and (every and self.step % every == 0 or self.step in self.save_at):
                self.save("periodic" if every and self.step % every == 0 else "request")
        if self.saved_step != self.step or not self.store.steps():
            self.save("stop" if state == "preempted" else "final")
        if self.rank == 0:
            last = getattr(self, "last_save", None)
            _write_json(self.run_dir / "status.json", {
                "state": state, "step": self.step, "exit_unix": time.time(),
                "save_s": last.seconds if last and last.step == self.step else 0.0,
                "bytes": last.bytes if last and last.step == self.step else None,
                "checkpoint": self.store.where(self.step),
            })
        if self.workers > 1:
            dist.barrier()   # nobody exits before the status is written: an early exit reads as a crash
        dist.destroy_process_group()
        return 0
