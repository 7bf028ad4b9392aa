"""Run one replay and write its outputs: the function the CLI, what-if and the benchmark share."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from datasets.attributes import JobSpec
from models import Fleet
from replay.harness import ReplaySetup, Window, run_replay

# Draws the pictures of one run: (epoch rows, job rows, out_dir, label) -> paths written. The service passes
# its matplotlib plots (service/reports/plots.py): pictures are an edge, the replay library draws none itself.
Plotter = Callable[[list, list, str, str], list[str]]


def replay_and_report(specs: Sequence[JobSpec], fleet: Fleet, setup: ReplaySetup, window: Window,
                      out_dir: str | None = None, plotter: Plotter | None = None, progress: bool = False,
                      label: str | None = None) -> dict:
    """Replay, then summary.json, epochs.csv, jobs.csv and (with a `plotter`) its pictures under `out_dir`."""
    from replay.metrics import epoch_rows, job_rows, summarize, write_outputs

    observers = []
    bar = None
    name = label or setup.scheduler
    if progress:
        from replay.progress import ProgressBar

        _, m_from, m_until = window.bounds_s(specs)
        measured = {s.id for s in specs if m_from <= s.submit_s < m_until}
        bar = ProgressBar(measured, name)
        observers.append(bar)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        run = run_replay(specs, fleet, setup, window, observers)
    finally:
        if bar is not None:
            bar.close()
    summary = summarize(run, time.perf_counter() - t0)
    summary["cpu_s"] = time.process_time() - c0     # this process's CPU time: comparable on a shared machine
    if out_dir:
        write_outputs(run, summary, out_dir)
        if plotter is not None:
            plotter(epoch_rows(run), job_rows(run), out_dir, name)
    return summary


@dataclass
class RunOutput:
    """One finished run as plain data (picklable, small): what a sweep's worker returns to the driver,
    which writes it (`write_run`), so a run on another machine leaves no files there."""

    label: str
    summary: dict
    epochs: list
    jobs: list


def replay_output(specs: Sequence[JobSpec], fleet: Fleet, setup: ReplaySetup, window: Window,
                  label: str | None = None) -> RunOutput:
    """Replay and summarise without writing anything: a sweep task's result."""
    from replay.metrics import epoch_rows, job_rows, summarize

    t0, c0 = time.perf_counter(), time.process_time()
    run = run_replay(specs, fleet, setup, window, [])
    summary = summarize(run, time.perf_counter() - t0)
    summary["cpu_s"] = time.process_time() - c0
    return RunOutput(label or setup.scheduler, summary, epoch_rows(run), job_rows(run))


def write_run(out: RunOutput, out_dir: str, plotter: Plotter | None = None) -> list[str]:
    """summary.json, epochs.csv, jobs.csv and (with a `plotter`) the pictures of `out` under `out_dir`."""
    from replay.metrics import write_rows

    paths = write_rows(out.summary, out.epochs, out.jobs, out_dir)
    if plotter is not None:
        paths += plotter(out.epochs, out.jobs, out_dir, out.label)
    return paths
