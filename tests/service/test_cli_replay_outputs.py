"""`meridian replay --out`: a run lands whole or not at all. Nothing is written until every run finished,
an interrupt or a refused input leaves the folder as it was (or absent), a finished run replaces an
earlier one's files of the command's own names, and every folder is checked before any run starts."""

import json
import os
import subprocess
from pathlib import Path

import pytest

import service.reports.html
from replay.staging import owner_prefix
from service.cli import main

RUN = ["replay", "--trace", "synthetic:0.25", "--fleet", "single:2x8", "--no-progress"]
REGION_TRACE = "job_id,submit_time_s,duration_s,num_gpus,tenant,data_region\nj1,0,100,1,a,mars\n"


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_an_empty_out_is_refused_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*RUN, "--policy", "fifo,las", "--no-plots", "--out", ""]) == 2
    assert capsys.readouterr().err == "meridian replay: --out: must not be empty (a folder for summary.json and " \
                                      "the tables)\n"
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_while_writing_leaves_the_earlier_run_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "o"
    assert main([*RUN, "--policy", "fifo", "--out", str(out), "--no-plots"]) == 0
    before = files(out)
    monkeypatch.setattr(service.reports.html, "write_replay_report", interrupt)    # after the CSVs, before summary
    assert main([*RUN, "--policy", "las", "--seed", "7", "--out", str(out), "--no-plots"]) == 130
    assert files(out) == before and [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_an_interrupt_while_writing_into_a_new_folder_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(service.reports.html, "write_replay_report", interrupt)
    assert main([*RUN, "--policy", "fifo", "--out", str(tmp_path / "a" / "b"), "--no-plots"]) == 130
    assert list(tmp_path.iterdir()) == []


def test_a_rerun_removes_the_earlier_runs_outputs_it_does_not_write_and_keeps_the_users_files(tmp_path):
    out = tmp_path / "o"
    assert main([*RUN, "--policy", "fifo,las", "--replications", "2", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    (out / "las" / "mine").mkdir()
    assert main([*RUN, "--policy", "fifo", "--out", str(out), "--no-plots"]) == 0
    assert sorted(files(out)) == ["epochs.csv", "jobs.csv", "notes.txt", "report.html", "summary.json"]
    assert sorted(p.name for p in out.iterdir()) == ["epochs.csv", "jobs.csv", "las", "notes.txt", "report.html",
                                                     "summary.json"]     # las/ still holds the user's folder
    assert json.loads((out / "summary.json").read_text())["policy"] == "fifo"


@pytest.mark.parametrize("runner", [[], ["--jobs", "1"]])
def test_every_schedulers_folder_is_checked_before_any_run(tmp_path, capsys, runner):
    out = tmp_path / "d"
    out.mkdir()
    (out / "las").write_text("x")
    assert main([*RUN, "--policy", "fifo,las", "--out", str(out), "--no-plots", *runner]) == 2
    assert capsys.readouterr().err == f"meridian replay: --out {out}/las: {out}/las is not a folder\n"
    assert [p.name for p in out.iterdir()] == ["las"]


@pytest.mark.parametrize("runner", [[], ["--jobs", "1"]])
def test_inputs_refused_before_the_replay_leave_no_folder_and_one_line(tmp_path, capsys, runner):
    trace = tmp_path / "t.csv"
    trace.write_text(REGION_TRACE)
    argv = ["replay", "--trace", str(trace), "--format", "canonical", "--fleet", "single:2x8", "--no-plots",
            "--no-progress", "--policy", "fifo", "--out", str(tmp_path / "o" / "a" / "b"), *runner]
    assert main(argv) == 2
    assert capsys.readouterr().err == ("meridian replay: trace: job 'j1' has data_region 'mars', not a region of the "
                                       "fleet (region-0)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_whatif_refuses_an_empty_out(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("base: {trace: 'synthetic:1', fleet: 'single:2x8', policy: fifo}\n"
                                     "scenarios: [{name: a, days: 1}]\n")
    assert main(["whatif", "s.yaml", "--jobs", "1", "--no-plots", "--out", ""]) == 2
    assert capsys.readouterr().err == ("meridian whatif: --out: must not be empty (a folder for the scenarios' "
                                       "outputs and the comparison)\n")
    assert [p.name for p in tmp_path.iterdir()] == ["s.yaml"]


def test_whatif_rerun_replaces_the_comparison_and_keeps_no_stale_replications(tmp_path):
    (tmp_path / "s.yaml").write_text("base: {trace: 'synthetic:0.25', fleet: 'single:2x8', policy: fifo, days: 0.25}\n"
                                     "scenarios: [{name: a}]\n")
    out = tmp_path / "o"
    assert main(["whatif", str(tmp_path / "s.yaml"), "--jobs", "1", "--out", str(out), "--replications", "3"]) == 0
    assert (out / "a" / "replication-2" / "summary.json").exists() and (out / "intervals.png").exists()
    assert main(["whatif", str(tmp_path / "s.yaml"), "--jobs", "1", "--no-plots", "--replications", "1",
                 "--out", str(out)]) == 0
    assert sorted(files(out)) == ["a/epochs.csv", "a/jobs.csv", "a/report.html", "a/summary.json", "comparison.csv",
                                  "comparison.json", "report.html"]


def test_replications_run_on_the_process_pool_path_as_on_the_default_one(tmp_path):
    out = tmp_path / "o"
    assert main([*RUN, "--policy", "fifo,las", "--replications", "2", "--jobs", "1", "--no-plots",
                 "--out", str(out)]) == 0
    for policy in ("fifo", "las"):
        row = json.loads((out / policy / "replications.json").read_text())
        assert row["replications"] == 2
        assert (out / policy / "replication-1" / "summary.json").exists()


def start_ticks(pid: int) -> int:
    """/proc/PID/stat field 22: when the process started, in clock ticks since boot."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def test_a_rerun_removes_the_staging_folders_of_killed_runs_and_keeps_a_live_runs(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    gone = subprocess.Popen(["sleep", "0"])
    dead = out / f"{owner_prefix(gone.pid, start_ticks(gone.pid))}killed00"
    gone.wait()
    live = out / f"{owner_prefix(os.getpid(), start_ticks(os.getpid()))}running0"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "jobs.csv").write_text("half a run\n")
    assert main(["replay", "--trace", "synthetic:0.25", "--fleet", "single:2x8", "--policy", "fifo", "--no-plots",
                 "--no-progress", "--out", str(out)]) == 0
    assert not dead.exists()
    assert (live / "jobs.csv").read_text() == "half a run\n"


def test_a_staging_folder_whose_pid_now_names_a_later_process_is_removed(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    # this process's PID, but another start time: the owner was an earlier process given the same PID
    reused = out / f"{owner_prefix(os.getpid(), start_ticks(os.getpid()) - 1)}reused00"
    reused.mkdir()
    assert main(["replay", "--trace", "synthetic:0.25", "--fleet", "single:2x8", "--policy", "fifo", "--no-plots",
                 "--no-progress", "--out", str(out)]) == 0
    assert not reused.exists()
