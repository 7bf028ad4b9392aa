"""What-if scenarios: parsing with named errors, fleet changes, demand scaling, the capacity search."""

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
    ({"base": BASE, "scenarios": [{"name": "a", "add_nodes": [{"cluster": "c", "accelerator": "G", "devices": 8,
                                                               "count": 0}]}]},
     "scenarios[0].add_nodes[0].count: must be >= 1, got 0"),
    ({"base": BASE, "scenarios": [{"name": "a", "demand_scale": -1}]}, "scenarios[0].demand_scale: must be > 0, got -1"),
    ({"base": BASE, "scenarios": [{"name": "a", "outages": ["region:x"]}]},
     "scenarios[0].outages[0]: outage 'region:x': expected TARGET@START_DAY[+HOURS]"),
    ({"base": {**BASE, "policy": "sjf"}, "scenarios": [{"name": "a"}]},
     "base.policy: expected cpsat, fifo or las, got 'sjf'"),
    ({"base": BASE, "scenarios": [{"name": "a", "policy": "sjf"}]}, "scenarios[0].policy: expected cpsat"),
    ({"base": {**BASE, "epoch": 3}, "scenarios": [{"name": "a"}]}, "base.epoch: unknown key"),
    ({"base": {**BASE, "seed": True}, "scenarios": [{"name": "a"}]}, "base.seed: expected an integer, got True"),
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


def test_demand_scale_copies_and_thins_by_seed():
    specs = to_job_specs(synthetic_trace(days=1, seed=1))
    double = scale_demand(specs, 2.0, seed=0)
    assert len(double) == 2 * len(specs) and len({s.id for s in double}) == len(double)
    half = scale_demand(specs, 0.5, seed=0)
    assert abs(len(half) / len(specs) - 0.5) < 0.1
    assert half == scale_demand(specs, 0.5, seed=0)
    assert {s.id for s in half} <= {s.id for s in specs}


def test_scenarios_run_in_parallel_processes_and_more_capacity_helps(tmp_path):
    scs, _ = parse_scenarios({"base": BASE, "scenarios": [
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
    best, tried = find_min_capacity(scs[0], search, workers=1)
    assert best is not None and best >= 1
    assert meets(tried[best], search.targets)
    below = tried.get(best - 1) or run_scenario(scs[0], None, False, best - 1, search)
    assert not meets(below, search.targets)


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
