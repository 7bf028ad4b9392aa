"""Every bad request of the contract's list is refused before planning, naming the field path and value."""

from __future__ import annotations

import copy
import json
import math
import pathlib

import pytest

from models import BadRequest, parse_request, parse_request_json

EXAMPLE = json.loads((pathlib.Path(__file__).resolve().parents[2] / "examples" / "two-regions.json").read_text())


def refused(mutate) -> list:
    data = copy.deepcopy(EXAMPLE)
    mutate(data)
    with pytest.raises(BadRequest) as exc:
        parse_request(data)
    return [(e.path, e.value) for e in exc.value.errors]


def test_the_example_is_accepted():
    assert len(parse_request(copy.deepcopy(EXAMPLE)).jobs) == 6


def test_unknown_region_of_a_cluster():
    assert refused(lambda d: d["fleet"]["clusters"][0].update(region="mars")) == [("fleet.clusters[0].region", "mars")]


def test_unknown_region_in_a_link():
    assert refused(lambda d: d["fleet"]["links"][0].update(b="mars")) == [("fleet.links[0].b", "mars")]


def test_unknown_data_region():
    assert refused(lambda d: d["jobs"][0].update(data_region="mars")) == [("jobs[0].data_region", "mars")]


def test_unknown_allowed_region():
    assert refused(lambda d: d["jobs"][4].update(regions=["us-east", "mars"])) == [("jobs[4].regions[1]", "mars")]


def test_unknown_checkpoint_region():
    assert refused(lambda d: d["jobs"][3].update(checkpoint_region="mars")) == [("jobs[3].checkpoint_region", "mars")]


def test_unknown_current_cluster():
    assert ("jobs[0].current.cluster", "nowhere") in refused(lambda d: d["jobs"][0]["current"].update(cluster="nowhere"))


def test_unknown_node_in_current():
    def m(d):
        d["jobs"][0]["current"]["nodes"] = {"use-a-h100-9": 8}
    assert refused(m) == [("jobs[0].current.nodes.use-a-h100-9", 8)]


def test_unknown_down_node():
    assert refused(lambda d: d["fleet"]["down_nodes"].append("ghost-0")) == [("fleet.down_nodes[1]", "ghost-0")]


def test_current_node_outside_its_cluster():
    def m(d):
        d["jobs"][0]["current"]["nodes"] = {"use-b-a100-0": 4}
    errs = refused(m)
    assert errs == [("jobs[0].current.nodes.use-b-a100-0", 4)]


def test_current_node_with_another_accelerator():
    def m(d):
        d["jobs"][1]["current"]["nodes"] = {"use-b-mig-0": 2}
    assert refused(m) == [("jobs[1].current.nodes.use-b-mig-0", 2)]


def test_current_accelerator_not_in_speed():
    def m(d):
        d["jobs"][5]["speed"] = {"H100": 1.0}
    assert ("jobs[5].current.accelerator", "V100") in refused(m)


def test_running_jobs_overfill_a_node():
    def m(d):
        d["jobs"][5]["current"]["nodes"] = {"euw-a-v100-0": 4}
        d["jobs"][2]["current"] = {"cluster": "euw-a", "accelerator": "V100", "nodes": {"euw-a-v100-0": 1}}
    assert refused(m) == [("fleet.nodes.euw-a-v100-0", 5)]


def test_duplicate_job_id():
    assert refused(lambda d: d["jobs"][1].update(id="llm-pretrain")) == [("jobs[1].id", "llm-pretrain")]


def test_duplicate_node_name():
    def m(d):
        d["fleet"]["clusters"][1]["node_groups"][0]["prefix"] = "use-a-h100-"
    assert refused(m)[0][0] == "fleet.clusters[1].node_groups[0].prefix"


def test_duplicate_link():
    assert refused(lambda d: d["fleet"]["links"].append({"a": "eu-west", "b": "us-east", "gbps": 1})) == [
        ("fleet.links[1]", "eu-west-us-east")]


def test_duplicate_quota():
    assert refused(lambda d: d["quotas"].append({"tenant": "vc-vision", "tier": "standard", "devices": 3})) == [
        ("quotas[1]", "vc-vision/standard")]


def test_min_above_max():
    assert refused(lambda d: d["jobs"][1].update(replicas={"min": 5, "max": 2})) == [
        ("jobs[1].replicas", {"min": 5, "max": 2})]


def test_min_below_one():
    assert refused(lambda d: d["jobs"][1]["replicas"].update(min=0)) == [("jobs[1].replicas.min", 0)]


def test_empty_regions_list():
    assert refused(lambda d: d["jobs"][4].update(regions=[])) == [("jobs[4].regions", [])]


@pytest.mark.parametrize("path,value", [
    (("jobs", 0, "checkpoint_gb"), -1.0), (("jobs", 0, "priority"), -2.0), (("fleet", "links", 0, "gbps"), -0.5),
    (("fleet", "regions", 0, "storage_gbps"), 0.0), (("quotas", 0, "devices"), -1),
    (("policy", "restart_overhead_s"), -30.0), (("policy", "migration_budget_gb"), -1.0),
])
def test_negative_numbers(path, value):
    def m(d):
        node = d
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    want = ".".join(str(p) for p in path).replace(".0.", "[0].").replace(".0", "[0]")
    assert refused(m) == [(want, value)]


def test_non_finite_number():
    errs = refused(lambda d: d["jobs"][0].update(checkpoint_gb=math.inf))
    assert errs == [("jobs[0].checkpoint_gb", math.inf)]


def test_nan_literal_in_json_text():
    text = json.dumps(EXAMPLE).replace('"checkpoint_gb": 120', '"checkpoint_gb": NaN')
    with pytest.raises(BadRequest) as exc:
        parse_request_json(text)
    assert "NaN" in str(exc.value)


def _refused_text(text: str) -> list:
    with pytest.raises(BadRequest) as exc:
        parse_request_json(text)
    return [(e.path, e.value, e.message) for e in exc.value.errors]


TWICE = "given more than once in one object (JSON leaves which one counts to the reader)"


def test_a_key_given_twice_is_refused_naming_where():
    text = json.dumps(EXAMPLE).replace('"max": ', '"max": 1, "max": ', 1)
    assert _refused_text(text) == [("jobs[0].replicas.max", "max", TWICE)]


def test_a_top_level_key_given_twice_is_refused_whatever_the_values():
    text = json.dumps(EXAMPLE)[:-1] + ', "epoch_s": ' + json.dumps(EXAMPLE["epoch_s"]) + "}"
    assert _refused_text(text) == [("epoch_s", "epoch_s", TWICE)]


def test_the_same_key_in_two_objects_is_no_duplicate():
    text = json.dumps(EXAMPLE)
    assert text.count('"id": ') > 1 and len(parse_request_json(text).jobs) == 6


def test_epoch_not_positive():
    assert refused(lambda d: d.update(epoch_s=0)) == [("epoch_s", 0)]


def test_time_limit_not_positive():
    assert refused(lambda d: d["policy"].update(time_limit_s=-1)) == [("policy.time_limit_s", -1)]


@pytest.mark.parametrize("value", [1.0, -0.1])
def test_remote_data_penalty_outside_unit_interval(value):
    assert refused(lambda d: d["policy"].update(remote_data_penalty=value)) == [("policy.remote_data_penalty", value)]


def test_unknown_field_is_named():
    assert refused(lambda d: d["jobs"][0].update(replica=3)) == [("jobs[0].replica", 3)]


def test_wrong_type_is_named():
    assert refused(lambda d: d["jobs"][0]["replicas"].update(max="8")) == [("jobs[0].replicas.max", "8")]


def test_null_means_default():
    data = copy.deepcopy(EXAMPLE)
    data["jobs"][0]["tier"] = None
    data["epoch_s"] = None
    req = parse_request(data)
    assert req.jobs[0].tier == "standard" and req.epoch_s == 300


def test_a_null_mode_is_a_bad_request():
    # v1.1: "any other value of mode is a bad request"; the checker refuses it too
    assert refused(lambda d: d["policy"].update(mode=None)) == [("policy.mode", None)]


def test_a_null_policy_number_or_weight_is_a_bad_request():
    # the checker reads these as null, not as their defaults (it cannot price a plan with them)
    assert refused(lambda d: d["policy"].update(restart_overhead_s=None, remote_data_penalty=None)) == [
        ("policy.restart_overhead_s", None), ("policy.remote_data_penalty", None)]
    assert refused(lambda d: d["policy"].update(tier_weights={"premium": None})) == [
        ("policy.tier_weights.premium", None)]


def test_a_null_policy_or_tier_weights_still_means_the_defaults():
    for mutate in (lambda d: d.update(policy=None), lambda d: d["policy"].update(tier_weights=None)):
        data = copy.deepcopy(EXAMPLE)
        mutate(data)
        assert parse_request(data).policy.tier_weights.premium == 100


def test_every_fault_is_reported_at_once():
    def m(d):
        d["jobs"][0]["checkpoint_gb"] = -1
        d["jobs"][1]["replicas"]["min"] = 0
    assert refused(m) == [("jobs[0].checkpoint_gb", -1), ("jobs[1].replicas.min", 0)]


def test_every_cross_field_fault_is_reported_at_once():
    def m(d):
        d["jobs"][0]["data_region"] = "mars"
        d["jobs"][1]["id"] = "llm-pretrain"
    assert refused(m) == [("jobs[0].data_region", "mars"), ("jobs[1].id", "llm-pretrain")]


def test_malformed_json_is_refused_cleanly():
    with pytest.raises(BadRequest) as exc:
        parse_request_json(b'{"fleet": ')
    assert "not valid JSON" in str(exc.value)


def test_an_integer_of_thousands_of_digits_is_named_without_the_interpreters_advice():
    with pytest.raises(BadRequest) as exc:
        parse_request_json(b'{"fleet": ' + b"9" * 5000 + b"}")
    assert exc.value.errors[0].message == "not valid JSON: an integer of more than 4,300 digits"


def test_a_fleet_too_large_to_enumerate_is_refused_at_once():
    def m(d):
        d["fleet"]["clusters"][0]["node_groups"][0]["count"] = 10**12
    assert refused(m) == [("fleet.clusters[0].node_groups[0].count", 10**12)]   # past MAX_NODES in one group

    def two(d):
        d["fleet"]["clusters"][0]["node_groups"][0]["count"] = 1_500_000
        d["fleet"]["clusters"][1]["node_groups"][0]["count"] = 1_500_000
    [(path, value)] = refused(two)
    assert path == "fleet.clusters" and value > 3_000_000          # the total, counted without naming a node


def test_configured_limits_name_the_limit():
    from models import Limits

    with pytest.raises(BadRequest) as exc:
        parse_request(copy.deepcopy(EXAMPLE), Limits(max_jobs=5))
    assert [(e.path, e.value) for e in exc.value.errors] == [("jobs", 6)]
    assert "the limit is 5" in str(exc.value)


def test_allowed_replica_counts_empty_list():
    assert refused(lambda d: d["jobs"][1]["replicas"].update(allowed=[])) == [("jobs[1].replicas.allowed", [])]


def test_allowed_replica_counts_duplicate():
    def mutate(d):
        d["jobs"][1]["replicas"] = {"min": 1, "max": 4, "allowed": [1, 2, 2]}
    assert refused(mutate) == [("jobs[1].replicas.allowed[2]", 2)]


def test_allowed_replica_count_outside_min_max():
    def mutate(d):
        d["jobs"][3]["replicas"] = {"min": 2, "max": 4, "allowed": [2, 8, 1]}
    assert refused(mutate) == [("jobs[3].replicas.allowed[1]", 8), ("jobs[3].replicas.allowed[2]", 1)]


def test_allowed_replica_count_not_an_integer():
    def mutate(d):
        d["jobs"][1]["replicas"] = {"min": 1, "max": 4, "allowed": [1, 2.5]}
    assert refused(mutate) == [("jobs[1].replicas.allowed[1]", 2.5)]


def test_an_allowed_list_of_many_bad_counts_is_refused_on_its_first():
    # 200,000 zeros were 200,000 errors, held and listed (7,000,000 of them, a 14 MB body: 55 s and 12.7 GB)
    def mutate(d):
        d["jobs"][1]["replicas"] = {"min": 1, "max": 4, "allowed": [0] * 200_000}
    assert refused(mutate) == [("jobs[1].replicas.allowed[0]", 0)]


def test_an_allowed_list_longer_than_any_valid_one_is_refused_on_its_length():
    def mutate(d):
        d["jobs"][1]["replicas"] = {"min": 1, "max": 2**20, "allowed": list(range(1, 2**20 + 2))}
    assert refused(mutate) == [("jobs[1].replicas.allowed", "1048577 items")]


def test_down_nodes_of_many_bad_names_are_refused_on_the_first():
    assert refused(lambda d: d["fleet"].update(down_nodes=[7] * 200_000)) == [("fleet.down_nodes[0]", 7)]


def test_a_long_job_list_of_bad_entries_is_refused_on_the_first():
    # a million zeros (2 MB) were a million errors: 6 s and 1.9 GB to refuse
    assert refused(lambda d: d.update(jobs=[0] * 200_000)) == [("jobs[0]", 0)]


def test_a_speed_map_of_many_bad_entries_is_refused_on_the_first():
    def mutate(d):
        d["jobs"][2]["speed"] = {f"T{i}": 0 for i in range(200_000)}
    assert refused(mutate) == [("jobs[2].speed.T0", 0)]


def test_an_allowed_list_of_a_million_duplicates_lists_twenty_and_counts_the_rest():
    # each duplicate was an error: a million of them, 723 MB to refuse
    def mutate(d):
        d["jobs"][1]["replicas"] = {"min": 1, "max": 16, "allowed": [4] * 1_000_000}
    assert refused(mutate) == ([(f"jobs[1].replicas.allowed[{i}]", 4) for i in range(1, 21)]
                               + [("jobs[1].replicas.allowed", "999979 more")])


def test_unknown_down_nodes_past_twenty_are_counted_not_listed():
    assert refused(lambda d: d["fleet"].update(down_nodes=[f"ghost-{i}" for i in range(30)])) == (
        [(f"fleet.down_nodes[{i}]", f"ghost-{i}") for i in range(20)] + [("fleet.down_nodes", "10 more")])


def test_a_current_count_outside_allowed_is_accepted():
    data = copy.deepcopy(EXAMPLE)
    running = next(j for j in data["jobs"] if j.get("current"))
    r0 = sum(running["current"]["nodes"].values())
    running["replicas"] = {"min": 1, "max": r0 + 1, "allowed": [r0 + 1]}
    assert parse_request(data).jobs[data["jobs"].index(running)].replicas.allowed == [r0 + 1]


def test_an_epoch_shorter_than_a_millisecond_is_a_bad_request():
    # at 5e-324 s a job's value times the epoch underflowed to 0, and so did its disruption
    assert refused(lambda d: d.update(epoch_s=5e-324)) == [("epoch_s", 5e-324)]
