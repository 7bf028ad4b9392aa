"""Outage reach: which regions a failure takes down, which it cuts off from each other, whose data it strands."""

from dataclasses import replace

from datasets.attributes import to_job_specs
from datasets.fleets import parse_fleet
from datasets.synthetic import synthetic_trace
from replay.outages import parse_outage
from replay.reach import cut_off, describe, outage_reach, region_graph


def chain_fleet():
    """west - mid - east in a chain (no west-east link), one 2-node cluster each, plus `lab` (no nodes)."""
    regions = [{"name": n} for n in ("west", "mid", "east", "lab")]
    links = [{"a": "west", "b": "mid", "gbps": 1.0}, {"a": "mid", "b": "east", "gbps": 1.0},
             {"a": "east", "b": "lab", "gbps": 1.0}]
    clusters = [{"name": f"{n}-c", "region": n, "node_groups": [{"prefix": f"{n}-", "count": 2, "accelerator": "G",
                                                                 "devices": 8}]} for n in ("west", "mid", "east")]
    return parse_fleet({"regions": regions, "links": links, "clusters": clusters})


def test_a_failed_middle_region_cuts_the_ends_apart():
    g = region_graph(chain_fleet())
    assert cut_off(g, {"mid"}) == {"east": ["west"], "lab": ["west"], "west": ["east", "lab"]}
    assert cut_off(g, {"west"}) == {}


def test_outage_reach_per_outage_with_the_jobs_whose_data_is_stranded():
    fleet = chain_fleet()
    specs = to_job_specs(synthetic_trace(days=0.1, seed=0))
    specs = [replace(s, data_region=("mid" if i % 3 == 0 else "west")) for i, s in enumerate(specs)]
    stranded = sum(1 for s in specs if s.data_region == "mid")
    reach = outage_reach(fleet, [parse_outage("mid-0@0.5"), parse_outage("region:mid@1+2")], specs)
    # one node of mid down: the region is still up, nothing is cut off
    assert reach[0] == {"target": "mid-0", "start_s": 43200.0, "end_s": None, "regions_down": [],
                        "cut_off": {}, "jobs_data_unreachable": 0}
    assert reach[1]["regions_down"] == ["mid"]
    assert reach[1]["cut_off"] == {"east": ["west"], "lab": ["west"], "west": ["east", "lab"]}
    assert reach[1]["jobs_data_unreachable"] == stranded > 0
    assert describe(reach[1]).startswith("region:mid from day 1: regions down mid; east cut off from west;")
