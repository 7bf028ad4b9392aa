"""`meridian whatif` with replications: intervals in the table, comparison.json and the picture; the
capacity answer with its interval; a bad trace is one line with its file and line, before any worker."""

import json

from service.cli import main

BASE = "base: {trace: 'synthetic:0.25', fleet: 'single:1x4', policy: las, warmup_days: 0, seed: 2}\n"


def test_whatif_rows_carry_means_and_intervals(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(BASE + "scenarios:\n  - name: base\n  - name: bigger\n"
                 "    add_nodes: [{cluster: cluster-0, accelerator: GPU, devices: 4, count: 1}]\n")
    assert main(["whatif", str(f), "--jobs", "2", "--replications", "3", "--out", str(tmp_path / "o")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("base ") and "[" in lines[2]
    rows = json.loads((tmp_path / "o" / "comparison.json").read_text())["scenarios"]
    for r in rows:
        assert r["replications"] == 3
        lo, hi = r["avg_jct_s_ci95"]
        assert lo <= r["avg_jct_s"] <= hi and len(r["replication_values"]["avg_jct_s"]) == 3
        assert set(r["sla_attainment_ci95"]) == {"premium", "standard"}
        assert r["utilization_ci95"] is not None
    assert (tmp_path / "o" / "intervals.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "o" / "bigger" / "replication-2" / "summary.json").exists()
    header = (tmp_path / "o" / "comparison.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["scenario", "devices", "jobs_submitted"] and "avg_jct_s_ci95_lo" in header


def test_capacity_search_prints_its_answer_with_the_interval(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(BASE + "scenarios:\n  - name: base\n"
                 "find_min_capacity: {cluster: cluster-0, accelerator: GPU, devices: 8, max_nodes: 4,"
                 " attainment_targets: {standard: 0.8}}\n")
    rc = main(["whatif", str(f), "--jobs", "2", "--replications", "3", "--find-min-capacity",
               "--out", str(tmp_path / "o"), "--no-plots"])
    out = capsys.readouterr().out
    search = json.loads((tmp_path / "o" / "comparison.json").read_text())["search"]
    assert rc == 0 and search["least_nodes"] is not None
    assert search["attainment_targets"] == {"standard": 0.8} and search["sla_targets"]["standard"] == 0.7
    lo, hi = search["answer"]["standard"]["ci95"]
    assert search["answer"]["standard"]["lower95"] >= 0.8
    n = search["least_nodes"]
    assert f"\n{n} nodes: standard {100 * search['answer']['standard']['mean']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]" in out


def test_a_bad_trace_row_is_one_line_with_file_and_line_even_with_workers(tmp_path, fixtures, capsys):
    bad = tmp_path / "bad.csv"
    lines = (fixtures / "philly_small.csv").read_text().splitlines()
    bad.write_text("\n".join(lines[:3] + [lines[3].replace(",8,", ",x,")] + lines[4:]) + "\n")
    f = tmp_path / "s.yaml"
    f.write_text(f"base: {{trace: '{bad}', format: philly, fleet: 'single:2x8', policy: fifo}}\n"
                 "scenarios:\n  - name: a\n  - name: b\n")
    assert main(["whatif", str(f), "--jobs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"meridian whatif: {f}: scenarios[0].trace: {bad} line 4: num_gpus")
    assert "\n" not in err


def test_a_trace_in_another_format_is_one_line(tmp_path, fixtures, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(f"base: {{trace: '{fixtures / 'philly_small.csv'}', format: alibaba2023, fleet: 'single:2x8'}}\n"
                 "scenarios:\n  - name: a\n")
    assert main(["whatif", str(f), "--jobs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"meridian whatif: {f}: scenarios[0].trace: ") and "(format alibaba2023)" in err
    assert "\n" not in err


def test_replay_replications_write_their_means_and_intervals(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["replay", "--trace", "synthetic:0.25", "--fleet", "single:1x4", "--policy", "las", "--seed", "2",
                 "--warmup-days", "0", "--replications", "2", "--out", str(out), "--no-plots", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    row = json.loads((out / "replications.json").read_text())
    first = json.loads((out / "summary.json").read_text())
    assert row["replications"] == 2 and row["replication_values"]["avg_jct_s"][0] == first["avg_jct_s"]
    assert (out / "replication-1" / "summary.json").exists()
    assert "2 replications, means and 95 % intervals: mean JCT " in printed


def test_a_search_naming_a_missing_cluster_is_one_line_before_any_replay(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(BASE + "scenarios:\n  - name: base\n"
                 "find_min_capacity: {cluster: nope, accelerator: GPU, devices: 8, attainment_targets: {standard: 0.8}}\n")
    assert main(["whatif", str(f), "--find-min-capacity"]) == 2
    assert capsys.readouterr().err.strip() == (f"meridian whatif: {f}: find_min_capacity.cluster: no cluster 'nope' "
                                               "(give region: to create it)")


def test_an_alias_inside_its_own_anchor_is_one_line_not_an_endless_walk(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text("scenarios: &a [{name: x, demand_scale: *a}]\n")
    assert main(["whatif", str(f), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (f"meridian whatif: {f}: its aliases (*name) expand to more than "
                                               "1,000,000 values (an alias inside its own anchor never ends)")
    assert not (tmp_path / "out").exists()


def test_nested_aliases_that_expand_past_a_million_values_are_refused(tmp_path, capsys):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 10)}]" for k in range(1, 7)]   # 10^7 values
    f = tmp_path / "s.yaml"
    f.write_text("\n".join(levels) + "\nscenarios: [{name: x}]\n")
    assert main(["whatif", str(f)]) == 2
    assert "expand to more than 1,000,000 values" in capsys.readouterr().err


def test_aliases_that_expand_modestly_still_read(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(BASE + "shared: &fleet {add_nodes: []}\nscenarios:\n  - name: base\n")
    from service.commands.whatif import read_yaml

    assert read_yaml(str(f), ValueError)["scenarios"] == [{"name": "base"}]


def test_a_key_a_merge_brings_in_may_be_set_again_beside_it(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("x: &x {a: 1, b: 2}\ny: {<<: *x, a: 3}\n")
    from service.commands.whatif import read_yaml

    assert read_yaml(str(f), ValueError)["y"] == {"a": 3, "b": 2}
