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
# Writes the run's report page: (summary, picture paths, out_dir, label) -> path. The service passes its HTML
# writer (service/reports/html.py); it runs before summary.json is written.
Reporter = Callable[[dict, list[str], str, str], str]


def replay_and_report(specs: Sequence[JobSpec], fleet: Fleet, setup: ReplaySetup, window: Window,
                      out_dir: str | None = None, plotter: Plotter | None = None, progress: bool = False,
                      label: str | None = None, reporter: Reporter | None = None) -> dict:
    """Replay, then epochs.csv, jobs.csv, (with a `plotter`) its pictures, (with a `reporter`) its report page
    and, last, summary.json under `out_dir`: a folder with a summary.json holds a finished run."""
    from replay.metrics import epoch_rows, job_rows, summarize, write_summary, write_tables

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
        write_tables(run, out_dir)
        pictures = plotter(epoch_rows(run), job_rows(run), out_dir, name) if plotter is not None else []
        if reporter is not None:
            reporter(summary, pictures, out_dir, name)
        write_summary(summary, out_dir)
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


def write_run(out: RunOutput, out_dir: str, plotter: Plotter | None = None,
              reporter: Reporter | None = None) -> list[str]:
    """What `replay_and_report` writes, from a run's rows: epochs.csv, jobs.csv, (with a `plotter`) the
    pictures, (with a `reporter`) the report page and, last, summary.json under `out_dir`."""
    from replay.metrics import write_summary, write_table_rows

    paths = write_table_rows(out.epochs, out.jobs, out_dir)
    pictures = plotter(out.epochs, out.jobs, out_dir, out.label) if plotter is not None else []
    paths += pictures
    if reporter is not None:
        paths.append(reporter(out.summary, pictures, out_dir, out.label))
    paths.append(write_summary(out.summary, out_dir))
    return paths
