"""The request family (datasets.requests.generate_family): the shapes issue 10 asks for, drawn per
seed, every member a valid request, the same seed the same request."""

from __future__ import annotations

import json
from collections import Counter

from datasets.requests import FAMILY_ACCELS, FAMILY_SIZES, family_shape, generate_family
from models import parse_request_json

SEEDS = range(6)


def _members() -> list[dict]:
    return [generate_family("medium", s) for s in SEEDS]


def test_a_seed_gives_the_same_request():
    assert json.dumps(generate_family("medium", 3)) == json.dumps(generate_family("medium", 3))
    assert json.dumps(generate_family("medium", 3)) != json.dumps(generate_family("medium", 4))


def test_every_member_is_a_valid_request_of_its_size():
    lo, hi = FAMILY_SIZES["medium"]["devices"]
    for data in _members():
        parse_request_json(json.dumps(data).encode())   # validated: running jobs fit, names exist
        devices = sum(g["count"] * g["devices"] for c in data["fleet"]["clusters"] for g in c["node_groups"])
        assert 0.9 * lo <= devices <= 1.1 * hi
        assert len(data["jobs"]) == FAMILY_SIZES["medium"]["jobs"]


def test_fleet_shapes():
    for data in _members():
        per_region = Counter(c["region"] for c in data["fleet"]["clusters"])
        assert all(4 <= n <= 8 for n in per_region.values())
        for c in data["fleet"]["clusters"]:
            assert 1 <= len(c["node_groups"]) <= 3
            assert {g["devices"] for g in c["node_groups"]} <= {2, 4, 8}
        regions = [r["name"] for r in data["fleet"]["regions"]]
        pairs = len(regions) * (len(regions) - 1) // 2
        assert len(data["fleet"]["links"]) <= pairs
        assert data["fleet"]["down_nodes"]
        assert 120 <= data["epoch_s"] <= 600 and 20 <= data["policy"]["restart_overhead_s"] <= 60
    names = {a for a, _ in FAMILY_ACCELS}
    assert len(names) == 6 and any("g." in a for a in names) and any(not a[0] in "AHLV" for a in names)
    seen = {g["accelerator"] for d in _members() for c in d["fleet"]["clusters"] for g in c["node_groups"]}
    assert seen == names


def test_workload_shapes():
    jobs = [j for d in _members() for j in d["jobs"]]
    assert all(1 <= len(j["speed"]) <= 4 for j in jobs)
    assert max(j["replicas"]["max"] for j in jobs if j["devices_per_replica"] == 8) >= 16
    assert all(j["replicas"]["max"] <= 32 for j in jobs)
    rigid = sum(j["replicas"]["min"] == j["replicas"]["max"] for j in jobs) / len(jobs)
    assert 0.2 <= rigid <= 0.45
    tiers = {q["tier"] for d in _members() for q in d["quotas"]}
    assert {"premium", "standard"} <= tiers
    assert any("current" in j for j in jobs)


def test_load_follows_the_drawn_shape():
    for s in SEEDS:
        data = generate_family("medium", s)
        capacity = sum(g["count"] * g["devices"] for c in data["fleet"]["clusters"] for g in c["node_groups"])
        demand = sum(j["replicas"]["max"] * j["devices_per_replica"] for j in data["jobs"])
        load = family_shape(s)["load"]
        assert 0.8 <= load <= 2.0
        assert demand >= 0.95 * load * capacity
