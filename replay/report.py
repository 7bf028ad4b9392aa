"""Run one replay and write its outputs: the function the CLI, what-if and the benchmark share."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from datasets.attributes import JobSpec
from models import Fleet
from replay.harness import ReplaySetup, Window, run_replay

# Draws the pictures of one run: (epoch rows, job rows, out_dir, label) -> paths written, called with the
# keyword `pools=` (`replay.pools` rows: device time per accelerator type) where the plotter takes it. The
# service passes its matplotlib plots (service/reports/plots.py): pictures are an edge, the replay library draws none itself.
Plotter = Callable[[list, list, str, str], list[str]]
# Writes the run's report page: (summary, picture paths, out_dir, label) -> path. The service passes its HTML
# writer (service/reports/html.py); it runs before summary.json is written.
Reporter = Callable[[dict, list[str], str, str], str]


def replay_and_report(specs: Sequence[JobSpec], fleet: Fleet, setup: ReplaySetup, window: Window,
                      out_dir: str | None = None, plotter: Plotter | None = None, progress: bool = False,
                      label: str | None = None, reporter: Reporter | None = None,
                      trace_skipped: Mapping[str, int] | None = None, title: str | None = None) -> dict:
    """Replay, then epochs.csv, jobs.csv, (with a `plotter`) its pictures, (with a `reporter`) its report page
    and, last, summary.json under `out_dir`: a folder with a summary.json holds a finished run.
    `trace_skipped` (the loader's skip counts) goes into the summary; `title` (scheduler, fleet, window)
    heads the plots."""
    import inspect

    from replay.metrics import epoch_rows, job_rows, run_pool_rows, summarize, write_summary, write_tables

    if out_dir:
        check_out_dir(out_dir)
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
    summary["trace_skipped"] = dict(trace_skipped or {})
    if out_dir:
        write_tables(run, out_dir)
        pictures: list[str] = []
        if plotter is not None:
            takes_pools = "pools" in inspect.signature(plotter).parameters
            extra = {"pools": run_pool_rows(run)} if takes_pools else {}
            pictures = plotter(epoch_rows(run), job_rows(run), out_dir, title or name, **extra)
        if reporter is not None:
            reporter(summary, pictures, out_dir, name)
        write_summary(summary, out_dir)
    return summary


OUTPUT_FILES = ("summary.json", "epochs.csv", "jobs.csv", "utilization.png", "jct_cdf.png", "queue.png", "report.html")


def check_out_dir(out_dir: str) -> None:
    """Before a replay starts: `out_dir` exists or can be made, takes files, and none of the run's file
    names there is a folder (InputError, one line). A replay never ends in an error about its outputs."""
    import os

    from datasets.files import InputError, check_writable_dir

    check_writable_dir(out_dir)
    for name in OUTPUT_FILES:
        if os.path.isdir(os.path.join(out_dir, name)):
            raise InputError(f"{os.path.join(out_dir, name)} is a folder: the run writes a file there")
