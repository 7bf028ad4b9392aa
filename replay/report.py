"""Run one replay and write its outputs: the function the CLI, what-if and the benchmark share."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from datasets.attributes import JobSpec
from models import Fleet
from replay.harness import ReplaySetup, Window, run_replay
from replay.staging import Layout

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
    try:
        out = replay_output(specs, fleet, setup, window, name, observers, trace_skipped)
    finally:
        if bar is not None:
            bar.close()
    if out_dir:
        write_run(out, out_dir, plotter, reporter, title)
    return out.summary


@dataclass
class RunOutput:
    """One finished run as plain data (picklable, small): what a sweep's worker returns to the driver,
    which writes it (`write_run`), so a run on another machine leaves no files there."""

    label: str
    summary: dict
    epochs: list
    jobs: list
    pools: list = field(default_factory=list)     # `replay.pools` rows: device time per accelerator type


def replay_output(specs: Sequence[JobSpec], fleet: Fleet, setup: ReplaySetup, window: Window,
                  label: str | None = None, observers: Sequence = (),
                  trace_skipped: Mapping[str, int] | None = None) -> RunOutput:
    """Replay and summarise without writing anything: a sweep task's result."""
    from replay.metrics import epoch_rows, job_rows, run_pool_rows, summarize

    t0, c0 = time.perf_counter(), time.process_time()
    run = run_replay(specs, fleet, setup, window, list(observers))
    summary = summarize(run, time.perf_counter() - t0)
    summary["cpu_s"] = time.process_time() - c0     # this process's CPU time: comparable on a shared machine
    summary["trace_skipped"] = dict(trace_skipped or {})
    return RunOutput(label or setup.scheduler, summary, epoch_rows(run), job_rows(run), run_pool_rows(run))


def write_run(out: RunOutput, out_dir: str, plotter: Plotter | None = None, reporter: Reporter | None = None,
              title: str | None = None) -> list[str]:
    """What `replay_and_report` writes, from a run's rows: epochs.csv, jobs.csv, (with a `plotter`) the
    pictures, (with a `reporter`) the report page and, last, summary.json under `out_dir`."""
    import inspect

    from replay.metrics import write_summary, write_table_rows

    paths = write_table_rows(out.epochs, out.jobs, out_dir)
    pictures: list[str] = []
    if plotter is not None:
        takes_pools = "pools" in inspect.signature(plotter).parameters
        extra = {"pools": out.pools} if takes_pools else {}
        pictures = plotter(out.epochs, out.jobs, out_dir, title or out.label, **extra)
    paths += pictures
    if reporter is not None:
        paths.append(reporter(out.summary, pictures, out_dir, out.label))
    paths.append(write_summary(out.summary, out_dir))
    return paths


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


def replay_layout(policies: Sequence[str]) -> Layout:
    """What `meridian replay` writes in `--out` (`replay.staging`): a run's files and replications.json, its
    replication-r/ folders, and for several schedulers a folder per scheduler and comparison.json/.png."""
    replication = Layout(files=frozenset(OUTPUT_FILES))
    run = Layout(files=frozenset(OUTPUT_FILES + ("replications.json",)),
                 patterns=((r"replication-[0-9]+", replication),))
    return Layout(files=run.files | {"comparison.json", "comparison.png"},
                  folders={p: run for p in policies}, patterns=run.patterns)
