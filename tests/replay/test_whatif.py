"""What-if scenarios: parsing with named errors, fleet changes, demand scaling, the capacity search."""

import datetime
from pathlib import Path

import pytest
import yaml

from datasets.attributes import to_job_specs
from datasets.edits import AddNodes, FleetEditError, RemoveNodes, edit_fleet, scale_demand
from datasets.fleets import synthetic_fleet
from datasets.synthetic import synthetic_trace
from replay.scenarios import ScenarioError, parse_scenarios
from replay.whatif import find_min_capacity, meets, run_scenario, run_scenarios

BASE = {"trace": "synthetic:0.25", "fleet": "single:1x8", "policy": "las", "seed": 2, "warmup_days": 0}


def test_parse_merges_base_and_overrides():
    scs, search = parse_scenarios({"base": BASE, "scenarios": [
        {"name": "a"}, {"name": "b", "policy": "fifo", "add_nodes": [{"cluster": "cluster-0", "accelerator": "GPU",
                                                                       "devices": 8, "count": 2}]}]})
    assert [s.name for s in scs] == ["a", "b"] and search is None
    assert scs[0].scheduler == "las" and scs[1].scheduler == "fifo"
    assert scs[1].seed == 2 and scs[1].add_nodes[0].count == 2


@pytest.mark.parametrize(("doc", "message"), [
    ({"base": BASE, "scenarios": []}, "scenarios: expected a non-empty list"),
    ({"base": BASE, "scenarios": [{"name": "a"}, {"name": "a"}]}, "scenarios[1].name: duplicate 'a'"),
    ({"base": BASE, "scenarios": [{"name": 123}]}, "scenarios[0].name: expected a non-empty string, got 123"),
    ({"base": BASE, "scenarios": [{"name": ["a"]}]}, "scenarios[0].name: expected a non-empty string, got [a]"),
    ({"base": BASE, "scenarios": [{"name": ""}]}, "scenarios[0].name: expected a non-empty string, got ''"),
    ({"base": BASE, "scenarios": [{"name": "a", "add_nodes": [{"cluster": "c", "accelerator": "G", "devices": 8,
                                                               "count": 0}]}]},
     "scenarios[0].add_nodes[0].count: must be >= 1, got 0"),
    ({"base": BASE, "scenarios": [{"name": "a", "demand_scale": -1}]}, "scenarios[0].demand_scale: must be > 0, got -1"),
    ({"base": BASE, "scenarios": [{"name": "a", "outages": ["region:x"]}]},
     "scenarios[0].outages[0]: outage 'region:x': expected TARGET@START_DAY[+HOURS]"),
    ({"base": {**BASE, "policy": "sjf"}, "scenarios": [{"name": "a"}]},
     "base.policy: expected cpsat, fifo, las or las2d-ideal, got 'sjf'"),
    ({"base": BASE, "scenarios": [{"name": "a", "policy": "sjf"}]}, "scenarios[0].policy: expected cpsat"),
    ({"base": {**BASE, "epoch": 3}, "scenarios": [{"name": "a"}]}, "base.epoch: unknown key"),
    ({"base": {**BASE, "seed": True}, "scenarios": [{"name": "a"}]}, "base.seed: expected an integer, got true"),
    # values are shown as the YAML file spells them, not as Python does (True, None, datetime.date(...))
    ({"base": {**BASE, "seed": datetime.date(2024, 1, 1)}, "scenarios": [{"name": "a"}]},
     "base.seed: expected an integer, got 2024-01-01"),
    ({"base": BASE, "scenarios": [{"name": None}]}, "scenarios[0].name: expected a non-empty string, got null"),
    ({"base": BASE, "scenarios": [{"name": "a"}], "find_min_capacity": [True]},
     "find_min_capacity: expected a mapping, got [true]"),
    ({"base": {**BASE, "epoch_s": "300"}, "scenarios": [{"name": "a"}]}, "base.epoch_s: expected a number, got '300'"),
    ({"base": {"fleet": "single:1x8"}, "scenarios": [{"name": "a"}]}, "scenarios[0].trace: required"),
    ({"base": BASE, "scenarios": [{"name": "a"}], "find_min_capacity": {"cluster": "c", "accelerator": "G",
                                                                         "devices": 8, "targets": {"gold": 1}}},
     "find_min_capacity.targets.gold: expected premium, standard or basic, got 'gold'"),
    ({"base": BASE, "scenarios": [{"name": "a"}], "find_min_capacity": {"scenario": "b", "cluster": "c",
                                                                         "accelerator": "G", "devices": 8,
                                                                         "targets": {"premium": 0.9}}},
     "find_min_capacity.scenario: no scenario named 'b'"),
])
def test_parse_errors_name_the_field(doc, message):
    with pytest.raises(ScenarioError) as exc:
        parse_scenarios(doc)
    assert str(exc.value).startswith(message)


def test_fleet_changes_add_and_remove():
    f = synthetic_fleet(regions=2, clusters_per_region=1, nodes_per_cluster=4, accelerators=("A100",), seed=0)
    n0 = f.clusters[0].node_groups[0].count
    g = edit_fleet(f, [AddNodes(cluster="r0c0", accelerator="H100", devices=8, count=3),
                       AddNodes(cluster="new", region="region-1", accelerator="H100", devices=4, count=1)],
                   [RemoveNodes(cluster="r0c0", accelerator="A100", count=2)])
    c0 = next(c for c in g.clusters if c.name == "r0c0")
    assert [(x.accelerator, x.count) for x in c0.node_groups] == [("A100", n0 - 2), ("H100", 3)]
    assert next(c for c in g.clusters if c.name == "new").region == "region-1"
    with pytest.raises(FleetEditError, match="remove_nodes\\[0\\].count: r0c0 has"):
        edit_fleet(f, [], [RemoveNodes(cluster="r0c0", accelerator="A100", count=99)])


@pytest.mark.parametrize("accelerator, message", [
    ("A100|V100", ("add_nodes[0].accelerator: must not contain '|' (a trace's '|' separates alternative GPU types, "
                   "so no job could match it), got 'A100|V100'")),
    ("A100/2", "add_nodes[0].accelerator: accelerator 'A100/2': only slice types MODEL:1/K may contain '/'"),
])
def test_added_nodes_follow_the_fleets_accelerator_name_rules(accelerator, message):
    f = synthetic_fleet(regions=1, clusters_per_region=1, nodes_per_cluster=2, accelerators=("A100",), seed=0)
    with pytest.raises(FleetEditError) as exc:
        edit_fleet(f, [AddNodes(cluster="r0c0", accelerator=accelerator, devices=8, count=1)])
    assert str(exc.value) == message


def test_demand_scale_copies_and_thins_by_seed():
    specs = to_job_specs(synthetic_trace(days=1, seed=1))
    double = scale_demand(specs, 2.0, seed=0)
    assert len(double) == 2 * len(specs) and len({s.id for s in double}) == len(double)
    half = scale_demand(specs, 0.5, seed=0)
    assert abs(len(half) / len(specs) - 0.5) < 0.1
    assert half == scale_demand(specs, 0.5, seed=0)
    assert {s.id for s in half} <= {s.id for s in specs}


def test_scenarios_run_in_parallel_processes_and_more_capacity_helps(tmp_path):
    scs, _ = parse_scenarios({"base": {**BASE, "replications": 1}, "scenarios": [
        {"name": "one-node"},
        {"name": "three-nodes", "add_nodes": [{"cluster": "cluster-0", "accelerator": "GPU", "devices": 8, "count": 2}]}]})
    out = run_scenarios(scs, str(tmp_path), workers=2)
    assert [s["scenario"] for s in out] == ["one-node", "three-nodes"]
    assert [s["devices"] for s in out] == [8, 24]
    assert out[1]["avg_jct_s"] < out[0]["avg_jct_s"]
    assert (tmp_path / "three-nodes" / "summary.json").exists()


def test_find_min_capacity_returns_the_least_count_that_meets():
    scs, search = parse_scenarios({"base": BASE, "scenarios": [{"name": "s"}], "find_min_capacity": {
        "cluster": "cluster-0", "accelerator": "GPU", "devices": 8, "max_nodes": 6,
        "targets": {"standard": 0.9}}})
    res = find_min_capacity(scs[0].model_copy(update={"replications": 1}), search, workers=1)
    best = res.least_nodes
    assert best is not None and best >= 1
    assert meets(res.rows[best], search.attainment_targets)
    # no monotonicity assumed: every smaller count was replayed, and missed
    assert sorted(res.rows) == list(range(best + 1))
    assert not any(meets(res.rows[n], search.attainment_targets) for n in range(best))
    assert not meets(run_scenario(scs[0], None, False, best - 1, search), search.attainment_targets)


def test_example_scenario_file_parses():
    from pathlib import Path

    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "whatif.yaml").read_text())
    scs, search = parse_scenarios(doc)
    assert len(scs) == 4 and search is not None and search.scenario == "demand-x1.5"


def test_base_may_turn_backfill_off_or_set_its_window():
    scs, _ = parse_scenarios({"base": {**BASE, "backfill": False}, "scenarios": [
        {"name": "grid"}, {"name": "events", "backfill": True, "backfill_window_s": 10}]})
    assert scs[0].setup().backfill_window_s is None
    assert scs[1].setup().backfill_window_s == 10.0
    with pytest.raises(ScenarioError, match=r"scenarios\[0\].backfill_window_s"):
        parse_scenarios({"base": BASE, "scenarios": [{"name": "a", "backfill_window_s": 0}]})


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "whatif.yaml"
TIMING = ("wall_s", "cpu_s", "wall_s_total", "planner_s_p50", "planner_s_p99", "planner_s_total", "scenario")


def _untimed(row: dict) -> dict:
    """The row without what measures this machine: top-level timings and the backfill block's planner times."""
    out = {k: v for k, v in row.items() if k not in TIMING}
    if isinstance(out.get("backfill"), dict):
        out["backfill"] = {k: v for k, v in out["backfill"].items() if not k.startswith("planner_s")}
    return out


def test_the_plus_zero_candidate_reproduces_the_scenario_of_the_example_file():
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["base"]["trace"] = "synthetic:0.25"         # the example file's scenario and search, on 6 hours
    scs, search = parse_scenarios(doc)
    sc = next(s for s in scs if s.name == search.scenario).model_copy(update={"replications": 2})
    (scenario_row,) = run_scenarios([sc], None, workers=1)
    res = find_min_capacity(sc, search.model_copy(update={"max_nodes": 1}), workers=1)
    candidate = res.rows[0]
    assert candidate["scenario"] == "demand-x1.5+0x8H100"
    assert candidate["sla_targets"] == {"premium": 0.95, "standard": 0.70}      # the scenario's rule, kept
    assert _untimed(candidate) == _untimed(scenario_row)


def test_the_old_targets_key_loads_as_attainment_targets():
    fm = {"cluster": "cluster-0", "accelerator": "GPU", "devices": 8}
    _, old = parse_scenarios({"base": BASE, "scenarios": [{"name": "a"}],
                              "find_min_capacity": {**fm, "targets": {"standard": 0.9}}})
    _, new = parse_scenarios({"base": BASE, "scenarios": [{"name": "a"}],
                              "find_min_capacity": {**fm, "attainment_targets": {"standard": 0.9}}})
    assert old == new and new.attainment_targets == {"standard": 0.9}
    with pytest.raises(ScenarioError, match="find_min_capacity.targets: the old name of attainment_targets"):
        parse_scenarios({"base": BASE, "scenarios": [{"name": "a"}], "find_min_capacity": {
            **fm, "targets": {"standard": 0.9}, "attainment_targets": {"standard": 0.9}}})


def test_replication_zero_is_todays_single_run(tmp_path):
    from datasets.fleets import single_cluster_fleet
    from replay.inputs import load_specs
    from replay.report import replay_and_report

    scs, _ = parse_scenarios({"base": {**BASE, "replications": 1}, "scenarios": [{"name": "a"}]})
    (row,) = run_scenarios(scs, str(tmp_path), workers=1)
    specs, _ = load_specs("synthetic:0.25", "philly", 2)
    plain = replay_and_report(specs, single_cluster_fleet(1, 8), scs[0].setup(), scs[0].window())
    assert _untimed({k: row[k] for k in plain}) == _untimed(plain)
    assert row["replications"] == 1 and row["avg_jct_s_ci95"] is None
    assert row["sla_attainment_ci95"] == {"premium": None, "standard": None}
    assert not (tmp_path / "a" / "replication-1").exists()


def test_replications_differ_and_carry_intervals_identical_for_any_worker_count(tmp_path):
    scs, _ = parse_scenarios({"base": {**BASE, "fleet": "single:1x4", "replications": 3},
                              "scenarios": [{"name": "a"}]})
    (one,) = run_scenarios(scs, str(tmp_path / "w1"), workers=1)
    (two,) = run_scenarios(scs, str(tmp_path / "w2"), workers=2)
    assert _untimed(one) == _untimed(two)
    jcts = one["replication_values"]["avg_jct_s"]
    assert len(jcts) == 3 and len(set(jcts)) == 3
    lo, hi = one["avg_jct_s_ci95"]
    assert lo < one["avg_jct_s"] == sum(jcts) / 3 < hi
    for tier, (lo, hi) in one["sla_attainment_ci95"].items():
        assert 0.0 <= lo <= one["sla_attainment"][tier] <= hi <= 1.0
    assert (tmp_path / "w1" / "a" / "replication-2" / "summary.json").exists()


def test_replications_draw_arrivals_tiers_and_outages_the_same_way_for_every_scenario():
    from replay.outages import Outage
    from replay.replications import attribute_seed, jitter_arrivals, jitter_outages

    specs = to_job_specs(synthetic_trace(days=0.5, seed=1))
    assert jitter_arrivals(specs, 300.0, 7, 0) == specs
    moved = jitter_arrivals(specs, 300.0, 7, 1)
    assert moved == jitter_arrivals(specs, 300.0, 7, 1) != jitter_arrivals(specs, 300.0, 7, 2)
    before = {s.id: s.submit_s for s in specs}
    assert all(abs(s.submit_s - before[s.id]) <= 150.0 for s in moved) and moved != specs
    assert attribute_seed(7, 0) == 7 and attribute_seed(7, 1) == attribute_seed(7, 1) != attribute_seed(7, 2)
    o = [Outage("region:r", 86400.0, 86400.0 + 43200.0)]
    assert jitter_outages(o, 7, 0) == o
    (j,) = jitter_outages(o, 7, 1)
    assert abs(j.start_s - 86400.0) <= 6 * 3600 and j.end_s - j.start_s == 43200.0


def test_a_candidate_meets_only_when_the_lower_end_of_its_interval_does():
    from replay.intervals import aggregate

    row = aggregate([{"sla_attainment": {"standard": v}} for v in (1.0, 0.96, 1.0)])
    assert row["sla_attainment"]["standard"] > 0.95
    assert row["sla_attainment_lower95"]["standard"] < 0.95
    assert not meets(row, {"standard": 0.95}) and meets(row, {"standard": 0.9})
    assert meets(aggregate([{"sla_attainment": {"standard": 1.0}}] * 3), {"standard": 1.0})


def test_more_capacity_that_lowers_attainment_is_reported():
    from replay.intervals import aggregate
    from replay.whatif import monotonicity_breaks

    rows = {n: aggregate([{"sla_attainment": {"standard": v}} for v in vs])
            for n, vs in {0: (0.90, 0.91, 0.92), 1: (0.80, 0.82, 0.81), 2: (0.95, 0.96, 0.97)}.items()}
    (brk,) = monotonicity_breaks(rows, {"standard": 0.99})
    assert (brk["from_nodes"], brk["to_nodes"], brk["tier"], brk["significant"]) == (0, 1, "standard", True)


def test_t_intervals():
    from replay.intervals import ci95, lower95, t_quantile

    lo, hi = ci95([1.0, 2.0, 3.0])
    assert (lo, hi) == pytest.approx((2 - 4.303 / 3**0.5, 2 + 4.303 / 3**0.5))
    assert lower95([1.0, 2.0, 3.0]) == pytest.approx(2 - 2.920 / 3**0.5)
    assert ci95([5.0]) is None and ci95([0.99, 1.0], share=True)[1] == 1.0
    assert t_quantile(0.975, 60) == pytest.approx(2.000, abs=2e-3)
    assert t_quantile(0.95, 120) == pytest.approx(1.658, abs=2e-3)


def test_a_worker_failure_is_one_picklable_line_with_the_trace_file_and_line(tmp_path, fixtures):
    import pickle

    from datasets.errors import TraceFormatError
    from replay.runner import RunError, RunSpec, local_runner

    err = pickle.loads(pickle.dumps(TraceFormatError("t.csv", 4, "num_gpus: expected an integer, got 'x'")))
    assert (err.path, err.line, str(err)) == ("t.csv", 4, "t.csv line 4: num_gpus: expected an integer, got 'x'")
    bad = tmp_path / "bad.csv"
    lines = (fixtures / "philly_small.csv").read_text().splitlines()
    bad.write_text("\n".join(lines[:3] + [lines[3].replace(",8,", ",x,")] + lines[4:]) + "\n")
    scs, _ = parse_scenarios({"base": {**BASE, "trace": str(bad), "fleet": "single:2x8"},
                              "scenarios": [{"name": "a"}]})
    with pytest.raises(RunError) as exc:
        local_runner(2)([RunSpec(scs[0], 0), RunSpec(scs[0], 1)])
    assert str(exc.value).startswith(f"a replication 0: {bad} line 4: num_gpus")
