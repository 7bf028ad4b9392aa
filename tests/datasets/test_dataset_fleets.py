"""Fleets: FLEET.json is the contract's fleet object; builders for Philly and synthetic fleets."""

import json

import pytest

from datasets.fleets import (
    fleet_accelerators,
    fleet_devices,
    load_fleet,
    philly_fleet,
    single_cluster_fleet,
    synthetic_fleet,
)
from models import BadRequest


def test_philly_machine_list(shared_traces):
    f = philly_fleet(str(shared_traces / "machines_philly.csv"))
    groups = [(g.count, g.devices, g.accelerator) for g in f.clusters[0].node_groups]
    assert groups == [(321, 2, "GPU-12GB"), (231, 8, "GPU-24GB")]
    assert fleet_devices(f) == 2490


def test_contended_benchmark_fleet():
    f = single_cluster_fleet(80, 8)
    assert fleet_devices(f) == 640 and len(f.regions) == 1 and len(f.clusters) == 1


def test_synthetic_fleet_is_seeded_and_meshed():
    a = synthetic_fleet(regions=3, seed=5)
    assert a == synthetic_fleet(regions=3, seed=5)
    assert len(a.links) == 3 and len(a.clusters) == 6
    assert set(fleet_accelerators(a)) <= {"H100", "A100"}


def test_fleet_file_round_trip(tmp_path):
    f = synthetic_fleet(regions=2, seed=1)
    p = tmp_path / "fleet.json"
    p.write_text(f.model_dump_json())
    assert load_fleet(str(p)) == f


def test_fleet_file_errors_name_the_field(tmp_path):
    p = tmp_path / "fleet.json"
    p.write_text(json.dumps({"regions": [{"name": "a"}], "clusters": [{"name": "c", "region": "nowhere"}]}))
    with pytest.raises(BadRequest) as exc:
        load_fleet(str(p))
    assert [(e.path, e.value) for e in exc.value.errors] == [("fleet.clusters[0].region", "nowhere")]


@pytest.mark.parametrize("text, value", [("null", None), ('"x"', "x"), ("3", 3), ("[]", "list")])
def test_a_fleet_file_that_is_not_an_object_names_its_value(tmp_path, text, value):
    p = tmp_path / "fleet.json"
    p.write_text(text)
    with pytest.raises(BadRequest) as exc:
        load_fleet(str(p))
    assert [(e.path, e.value, e.message) for e in exc.value.errors] == [("fleet", value, "a fleet is a JSON object")]
