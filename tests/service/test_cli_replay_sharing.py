"""`meridian replay` on GPU-sharing inputs: loud rejections, skip counts, the Alibaba fleet, several schedulers."""

import csv
import json

import pytest

from service.cli import main


def run_args(tmp_path, fixtures, *extra, fleet=None):
    return ["replay", "--trace", str(fixtures / "alibaba2023_small.csv"), "--format", "alibaba2023",
            "--fleet", fleet or "single:1x8", "--time-limit", "0.3", "--out", str(tmp_path / "o"), "--no-progress",
            *extra]


def slices_only(tmp_path):
    f = tmp_path / "slices.json"
    f.write_text(json.dumps({"regions": [{"name": "r"}], "clusters": [{"name": "c", "region": "r", "node_groups": [
        {"prefix": "s-", "count": 1, "accelerator": "GPU:1/8", "devices": 16}]}]}))
    return str(f)


def test_rejections_and_skips_are_in_the_summary_line_and_summary_json(tmp_path, fixtures, capsys):
    assert main(run_args(tmp_path, fixtures, "--no-plots", fleet=slices_only(tmp_path))) == 0
    line = capsys.readouterr().out.splitlines()[0]
    # only the 100 milli-GPU pod fits a 1/8 slice; the other five need whole GPUs or larger slices
    assert line.startswith("cpsat: 1/6 jobs done, REJECTED 5 (")
    assert "trace rows skipped 4 (no_gpu 1, not_deleted 1, unscheduled 1, zero_duration 1)" in line
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["jobs_rejected"] == 5 and sum(s["rejected_by_reason"].values()) == 5
    assert s["rejected_by_reason"]["no cluster holds 1 replica(s) of 8 device(s) on V100M16, V100M32"] == 1
    assert s["trace_skipped"] == {"no_gpu": 1, "unscheduled": 1, "not_deleted": 1, "zero_duration": 1}


def test_on_reject_error_exits_3_after_writing_everything(tmp_path, fixtures, capsys):
    assert main(run_args(tmp_path, fixtures, "--no-plots", "--on-reject", "error", fleet=slices_only(tmp_path))) == 3
    assert "rejected jobs (cpsat 5) and --on-reject error" in capsys.readouterr().err
    assert (tmp_path / "o" / "jobs.csv").exists()


def test_jobs_csv_says_where_each_job_ran(tmp_path, fixtures):
    assert main(run_args(tmp_path, fixtures, "--no-plots", fleet=str(fixtures / "alibaba_fleet.json"))) == 0
    with open(tmp_path / "o" / "jobs.csv", newline="") as f:
        rows = {r["job_id"]: r for r in csv.DictReader(f)}
    assert rows["openb-pod-0000"]["accelerators"] == "V100M32" and rows["openb-pod-0000"]["clusters"] == "gpu"
    assert rows["openb-pod-0005"]["accelerators"] in ("V100M16", "V100M32", "V100M16;V100M32", "V100M32;V100M16")
    assert rows["openb-pod-0002"]["accelerators"] in ("T4:1/4", "T4:1/2")      # 250 milli-GPU of a T4


def test_several_policies_run_each_into_its_folder_and_draw_one_comparison(tmp_path, fixtures, capsys):
    out = tmp_path / "o"
    assert main(run_args(tmp_path, fixtures, "--policy", "fifo,las", fleet=str(fixtures / "alibaba_fleet.json"))) == 0
    assert {p.name for p in out.iterdir()} == {"fifo", "las", "comparison.json", "comparison.png"}
    for policy in ("fifo", "las"):
        assert {p.name for p in (out / policy).iterdir()} == {"summary.json", "epochs.csv", "jobs.csv", "report.html",
                                                               "utilization.png", "jct_cdf.png", "queue.png"}
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    comparison = json.loads((out / "comparison.json").read_text())
    assert sorted(comparison) == ["fifo", "las"] and comparison["las"]["policy"] == "las"
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("fifo: 6/6 jobs done") and lines[1].startswith("las: 6/6 jobs done")
    assert lines[2] == f"wrote {out}/fifo/summary.json, epochs.csv, jobs.csv, report.html, utilization.png, " \
                       "jct_cdf.png, queue.png"      # once every run is in place


@pytest.mark.parametrize(("policy", "message"), [
    ("fifo,nope", "invalid choice: 'nope'"), ("las,las", "'las,las' names a scheduler twice")])
def test_a_bad_policy_list_is_one_line(tmp_path, fixtures, capsys, policy, message):
    with pytest.raises(SystemExit) as exc:
        main(run_args(tmp_path, fixtures, "--policy", policy))
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(("fleet", "message"), [
    ("alibaba:{nodes}?carve=3", "--fleet: carve '3': expected K:SHARE"),
    ("alibaba:{nodes}?scale=2", "scale: expected a number in (0, 1], got '2'"),
    ("alibaba:{nodes}?color=red", "unknown option 'color=red'"),
    ("alibaba:{nodes}?scale=0.01", "scale 0.01 leaves no node of"),
    ("alibaba:/nonexistent.csv", "--fleet: "),
])
def test_alibaba_fleet_mistakes_are_one_line(tmp_path, fixtures, capsys, fleet, message):
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,8,G2\n")
    assert main(run_args(tmp_path, fixtures, "--no-plots", fleet=fleet.format(nodes=nodes))) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("meridian replay: ") and message in err and "\n" not in err


def test_a_fleet_type_with_a_slash_that_is_no_slice_is_refused(tmp_path, fixtures, capsys):
    f = tmp_path / "f.json"
    f.write_text(json.dumps({"regions": [{"name": "r"}], "clusters": [{"name": "c", "region": "r", "node_groups": [
        {"prefix": "s-", "count": 1, "accelerator": "T4/2", "devices": 2}]}]}))
    assert main(run_args(tmp_path, fixtures, "--no-plots", fleet=str(f))) == 2
    assert "accelerator 'T4/2': only slice types MODEL:1/K may contain '/'" in capsys.readouterr().err


def test_a_fleet_type_with_a_bar_is_refused_naming_its_path(tmp_path, fixtures, capsys):
    # in a trace `A100|V100` means either type: a node of that name could never run a trace job
    f = tmp_path / "f.json"
    f.write_text(json.dumps({"regions": [{"name": "r"}], "clusters": [{"name": "c", "region": "r", "node_groups": [
        {"prefix": "a-", "count": 1, "accelerator": "A100", "devices": 8},
        {"prefix": "x-", "count": 1, "accelerator": "A100|V100", "devices": 8}]}]}))
    assert main(run_args(tmp_path, fixtures, "--no-plots", fleet=str(f))) == 2
    assert capsys.readouterr().err == (
        f"meridian replay: --fleet: fleet {str(f)!r}: fleet.clusters[0].node_groups[1].accelerator: must not "
        "contain '|' (a trace's '|' separates alternative GPU types, so no job could match it), got 'A100|V100'\n")
    assert not (tmp_path / "o").exists()


def test_the_comparison_of_run_folders_reads_them_back(tmp_path, fixtures):
    from service.reports.plots import plot_comparison_of_folders

    out = tmp_path / "o"
    assert main(run_args(tmp_path, fixtures, "--policy", "fifo,las", "--no-plots",
                         fleet=str(fixtures / "alibaba_fleet.json"))) == 0
    assert not (out / "comparison.png").exists()
    assert plot_comparison_of_folders(str(out), "fifo vs las") == str(out / "comparison.png")
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_comparison_of_folders(str(out / "las")) is None          # fewer than two runs: nothing drawn
