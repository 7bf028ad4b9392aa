"""`meridian replay` and `meridian whatif` from the command line: outputs, and one clean line on mistakes."""

import json

import pytest

from service.cli import main


def test_replay_writes_summary_csvs_and_plots(tmp_path, fixtures, capsys):
    out = tmp_path / "run"
    rc = main(["replay", "--trace", str(fixtures / "philly_small.csv"), "--format", "philly", "--fleet", "single:2x8",
               "--policy", "las", "--out", str(out), "--no-progress"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    for key in ("jobs_submitted", "jobs_completed", "avg_jct_s", "p50_jct_s", "p99_jct_s", "avg_queue_s", "makespan_s",
                "utilization", "sla_attainment", "preemptions", "migrations", "resizes", "device_hours_lost",
                "planner_s_p50", "planner_s_p99", "planner_fallback_rate", "wall_s", "jct_by_tier"):
        assert key in s
    assert (s["jobs_submitted"], s["jobs_completed"]) == (6, 6)
    assert {p.name for p in out.iterdir()} == {"summary.json", "epochs.csv", "jobs.csv", "report.html",
                                              "utilization.png", "jct_cdf.png", "queue.png"}
    assert (out / "utilization.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "las: 6/6 jobs done" in capsys.readouterr().out


def test_replay_runs_the_ideal_reference_beside_a_scheduler(tmp_path, fixtures, capsys):
    out = tmp_path / "run"
    rc = main(["replay", "--trace", str(fixtures / "philly_small.csv"), "--format", "philly", "--fleet", "single:2x8",
               "--policy", "las,las2d-ideal", "--out", str(out), "--no-plots", "--no-progress"])
    assert rc == 0
    ideal = json.loads((out / "las2d-ideal" / "summary.json").read_text())
    assert ideal["policy"] == "las2d-ideal" and (ideal["jobs_submitted"], ideal["jobs_completed"]) == (6, 6)
    assert json.loads((out / "las" / "summary.json").read_text())["policy"] == "las"
    assert "las2d-ideal: 6/6 jobs done" in capsys.readouterr().out


def test_replay_window_on_synthetic_trace(tmp_path):
    out = tmp_path / "w"
    rc = main(["replay", "--trace", "synthetic:0.75", "--fleet", "single:4x8", "--start-day", "0.25", "--days",
               "0.25", "--warmup-days", "0.25", "--policy", "fifo", "--seed", "4", "--out", str(out), "--no-plots"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["window_s"] == [21600.0, 43200.0] and s["seed"] == 4
    rows = (out / "jobs.csv").read_text().splitlines()
    measured = [r for r in rows[1:] if r.split(",")[1] == "True"]
    assert len(measured) == s["jobs_submitted"] > 0


@pytest.mark.parametrize(("argv", "message"), [
    (["--fleet", "single:0x8"], "--fleet: fleet 'single:0x8': expected single:NODESxDEVICES"),
    (["--epoch-s", "0"], "--epoch-s must be >= 1, got 0.0"),
    (["--time-limit", "-1"], "--time-limit must be > 0, got -1.0"),
    (["--warmup-days", "-1"], "--warmup-days must be >= 0, got -1.0"),
    (["--replan-every", "0"], "--replan-every must be >= 1, got 0"),
    (["--max-days", "0"], "--max-days must be > 0, got 0.0"),
    (["--fail", "region:nowhere@1"], "--fail: outage target 'region:nowhere': no such region in the fleet"),
    (["--fail", "cluster-0-n0@nan"], "--fail: outage 'cluster-0-n0@nan': START_DAY and HOURS must be finite numbers"),
    (["--fail", "cluster-0-n0@0+nan"], "--fail: outage 'cluster-0-n0@0+nan': START_DAY and HOURS must be finite"),
    (["--fail", "cluster-0-n0@1e308"], "--fail: outage 'cluster-0-n0@1e308': START_DAY and HOURS must be finite"),
    (["--trace", "/nonexistent.csv"], "--trace: cannot read /nonexistent.csv"),
    (["--policy", "las,las2d-ideal", "--fail", "region:region-0@1"],
     "--fail: the las2d-ideal reference models no outages (--policy las2d-ideal); got 'region:region-0@1'"),
    (["--start-day", "1000", "--days", "1"],
     "--start-day/--days: no job is submitted from day 1000 to day 1001 (the trace's jobs arrive on days 0.00 to"),
    (["--fleet", "single:\u0663x8"], "--fleet: fleet 'single:\u0663x8': expected single:NODESxDEVICES"),
    (["--seed", "99999999999999"], "--seed must be <= 4294967295, got 99999999999999"),
])
def test_replay_mistakes_are_one_line(tmp_path, capsys, argv, message):
    base = {"--trace": "synthetic:0.1", "--fleet": "single:1x8", "--out": str(tmp_path / "x")}
    for i in range(0, len(argv), 2):
        base[argv[i]] = argv[i + 1]
    args = ["replay"] + [x for kv in base.items() for x in kv] + ["--no-plots", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"meridian replay: {message}") and "\n" not in err


def test_replay_refuses_an_outage_after_the_last_day_it_can_reach(tmp_path, capsys):
    # the window ends on day 1 and the safety stop comes 2 days later: an outage on day 3.5 never happens
    out = tmp_path / "o"
    assert main(["replay", "--trace", "synthetic:1", "--fleet", "single:1x8", "--start-day", "0", "--days", "1",
                 "--max-days", "2", "--fail", "cluster:cluster-0@3.5", "--out", str(out), "--no-plots",
                 "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        "meridian replay: --fail: outage 'cluster:cluster-0@3.5': starts on day 3.5, but the last day the replay "
        "can reach is day 3 (the window's end plus max_days): it would never take effect\n")
    assert not out.exists()


def test_replay_bad_trace_row_names_the_line(tmp_path, capsys):
    t = tmp_path / "t.csv"
    t.write_text("job_id,submit_time_s,duration_s,num_gpus,tenant\na,0,10,1,x\nb,5,-3,1,x\n")
    args = ["replay", "--trace", str(t), "--format", "canonical", "--fleet", "single:1x8", "--out", str(tmp_path / "o"),
            "--no-plots", "--no-progress"]
    assert main(args) == 2
    assert f"{t} line 3: duration_s: must be > 0, got '-3'" in capsys.readouterr().err
    assert main(args + ["--on-bad", "skip"]) == 0
    assert "skipped trace rows: {'duration_s': 1}" in capsys.readouterr().err


def test_whatif_compares_scenarios(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text("base: {trace: 'synthetic:0.25', fleet: 'single:1x8', policy: fifo, warmup_days: 0}\n"
                 "scenarios:\n  - name: base\n  - name: bigger\n"
                 "    add_nodes: [{cluster: cluster-0, accelerator: GPU, devices: 8, count: 1}]\n")
    assert main(["whatif", str(f), "--jobs", "1", "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["scenario", "devices", "jobs"]
    assert out[2].split()[:2] == ["base", "8"] and out[3].split()[:2] == ["bigger", "16"]
    assert (tmp_path / "o" / "comparison.csv").exists() and (tmp_path / "o" / "bigger" / "summary.json").exists()


def test_whatif_reports_what_a_region_outage_cuts_off(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text("base: {trace: 'synthetic:0.1', fleet: 'synthetic:3x2', policy: fifo, warmup_days: 0}\n"
                 "scenarios:\n  - name: r1-down\n    outages: ['region:region-1@0.05']\n")
    assert main(["whatif", str(f), "--jobs", "1", "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    assert "r1-down: region:region-1 from day 0.05: regions down region-1;" in capsys.readouterr().out
    (row,) = json.loads((tmp_path / "o" / "comparison.json").read_text())["scenarios"]
    # the synthetic fleet's regions are a full mesh: losing one cuts no other pair apart
    assert row["outage_reach"] == [{"target": "region:region-1", "start_s": 4320.0, "end_s": None,
                                    "regions_down": ["region-1"], "cut_off": {}, "jobs_data_unreachable": 0}]


def test_whatif_file_mistake_is_one_line(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text("base: {trace: 'synthetic:0.1', fleet: 'single:1x8'}\nscenarios:\n  - name: a\n"
                 "    remove_nodes: [{cluster: nope, accelerator: GPU, count: 1}]\n")
    assert main(["whatif", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"meridian whatif: {f}: scenarios[0].remove_nodes[0].cluster: no cluster 'nope'"


def test_whatif_refuses_outages_for_the_ideal_reference(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text("base: {trace: 'synthetic:0.1', fleet: 'single:1x8', policy: las2d-ideal}\nscenarios:\n"
                 "  - name: a\n    outages: ['cluster:cluster-0@0.05']\n")
    assert main(["whatif", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"meridian whatif: {f}: scenarios[0].outages: the las2d-ideal reference models no outages "
                   "(policy: las2d-ideal); got 'cluster:cluster-0@0.05'")


def test_whatif_refuses_an_outage_after_the_last_day_its_scenario_can_reach(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text("base: {trace: 'synthetic:0.1', fleet: 'single:1x8', start_day: 0, days: 0.1, max_days: 1}\n"
                 "scenarios:\n  - name: a\n    outages: ['cluster:cluster-0@0.05', 'cluster:cluster-0@2+1']\n")
    assert main(["whatif", str(f), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        f"meridian whatif: {f}: scenarios[0].outages[1]: outage 'cluster:cluster-0@2+1': starts on day 2, but the "
        "last day the replay can reach is day 1.1 (the window's end plus max_days): it would never take effect\n")
    assert not (tmp_path / "o").exists()


def test_alibaba_pods_replay_on_a_fleet_of_slices(tmp_path, fixtures, capsys):
    out = tmp_path / "ali"
    rc = main(["replay", "--trace", str(fixtures / "alibaba2023_small.csv"), "--format", "alibaba2023",
               "--fleet", str(fixtures / "alibaba_fleet.json"), "--policy", "cpsat", "--time-limit", "0.3",
               "--out", str(out), "--no-plots", "--no-progress"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert (s["jobs_submitted"], s["jobs_completed"], s["jobs_rejected"]) == (6, 6, 0)
    jobs = {r.split(",")[0]: r.split(",") for r in (out / "jobs.csv").read_text().splitlines()[1:]}
    assert jobs["openb-pod-0005"][4] == "8" and jobs["openb-pod-0005"][7] == "done"


def test_whatif_refuses_a_scenario_window_with_no_job(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text("base: {trace: 'synthetic:0.1', fleet: 'single:1x8', policy: fifo}\nscenarios:\n"
                 "  - name: a\n  - name: late\n    start_day: 50\n")
    assert main(["whatif", str(f), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"meridian whatif: {f}: scenarios[1].trace: no job is submitted from day 50 to the "
                          "trace's end (the trace's jobs arrive on days 0.00 to") and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_whatif_refuses_a_scenario_named_like_a_comparison_file(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text("base: {trace: 'synthetic:0.1', fleet: 'single:1x8', policy: fifo}\nscenarios:\n"
                 "  - name: a\n  - name: report.html\n")
    assert main(["whatif", str(f), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"meridian whatif: {f}: scenarios[1].name: a scenario's folder may not take the name of a file the "
        "comparison writes beside it (report.html, comparison.json, comparison.csv, intervals.png, comparison.png), "
        "got 'report.html'")
    assert not (tmp_path / "o").exists()


SEARCH = ("base: {trace: 'synthetic:0.1', fleet: 'single:1x8', policy: fifo, replications: 1}\n"
          "scenarios:\n  - name: a\n"
          "find_min_capacity: {cluster: cluster-0, accelerator: GPU, devices: 8, max_nodes: MAX, "
          "attainment_targets: {premium: 0.5}}\n")


def test_whatif_bounds_the_search_by_the_fleet_node_limit(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(SEARCH.replace("MAX", str(10**24)))
    assert main(["whatif", str(f), "--find-min-capacity", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == (f"meridian whatif: {f}: find_min_capacity.max_nodes: must be <= "
                                               f"2000000, got {10**24}")


def test_whatif_search_checks_its_out_folder_before_any_replay_and_loses_nothing(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(SEARCH.replace("MAX", "2"))
    out = tmp_path / "o"
    (out / "comparison.csv").mkdir(parents=True)
    (out / "comparison.json").write_text("old")
    assert main(["whatif", str(f), "--find-min-capacity", "--no-plots", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (f"meridian whatif: --out {out}: {out / 'comparison.csv'} is a "
                                               "folder: the run writes a file there")
    assert (out / "comparison.json").read_text() == "old"
