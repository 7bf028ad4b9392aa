"""Values past the engine's documented limits are refused at validation, naming the field path and value;
lone surrogates anywhere in the text are refused with their path; values at the limits still plan."""

from __future__ import annotations

import copy
import json
import pathlib

import pytest

from models import BadRequest, limits, parse_request, parse_request_json

EXAMPLE = json.loads((pathlib.Path(__file__).resolve().parents[2] / "examples" / "two-regions.json").read_text())


def refused(mutate) -> list[tuple[str, object]]:
    data = copy.deepcopy(EXAMPLE)
    mutate(data)
    with pytest.raises(BadRequest) as exc:
        parse_request(data)
    return [(e.path, e.value) for e in exc.value.errors]


def job(d: dict, i: int = 0) -> dict:
    return d["jobs"][i]


@pytest.mark.parametrize(("mutate", "path", "value"), [
    (lambda d: d["fleet"]["clusters"][0]["node_groups"][0].update(devices=2**62),
     "fleet.clusters[0].node_groups[0].devices", 2**62),
    (lambda d: d["fleet"]["clusters"][0]["node_groups"][0].update(devices=2**63 - 1),
     "fleet.clusters[0].node_groups[0].devices", 2**63 - 1),
    (lambda d: d["fleet"]["clusters"][0]["node_groups"][0].update(count=10**30),
     "fleet.clusters[0].node_groups[0].count", 10**30),
    (lambda d: job(d)["replicas"].update(max=10**30), "jobs[0].replicas.max", 10**30),
    (lambda d: job(d).update(devices_per_replica=10**30), "jobs[0].devices_per_replica", 10**30),
    (lambda d: d["quotas"].append({"tenant": "x", "tier": "basic", "devices": 10**30}), "quotas[1].devices", 10**30),
    (lambda d: d["policy"].update(migration_budget_gb=1e16), "policy.migration_budget_gb", 1e16),
    (lambda d: job(d).update(checkpoint_gb=1e15), "jobs[0].checkpoint_gb", 1e15),
    (lambda d: job(d).update(priority=1e308), "jobs[0].priority", 1e308),
    (lambda d: job(d).update(speed={"H100": 1e10}), "jobs[0].speed.H100", 1e10),
    (lambda d: d["policy"]["tier_weights"].update(premium=1e300), "policy.tier_weights.premium", 1e300),
    (lambda d: d["policy"].update(time_limit_s=1e300), "policy.time_limit_s", 1e300),
    (lambda d: d.update(epoch_s=1e300), "epoch_s", 1e300),
    (lambda d: d["fleet"]["regions"][0].update(storage_gbps=1e-300), "fleet.regions[0].storage_gbps", 1e-300),
    (lambda d: d["fleet"]["links"][0].update(gbps=1e300), "fleet.links[0].gbps", 1e300),
])
def test_values_past_the_engine_limits_are_refused_with_their_path(mutate, path, value) -> None:
    assert (path, value) in refused(mutate)


def test_the_issue_priority_and_speed_that_made_nan_are_refused() -> None:
    def mutate(d: dict) -> None:
        job(d).update(priority=1e300, speed={"H100": 1e10})

    assert refused(mutate) == [("jobs[0].priority", 1e300), ("jobs[0].speed.H100", 1e10)]


@pytest.mark.parametrize(("field", "escaped"), [("tenant", "\\udfff"), ("id", "speech-\\ud800")])
def test_a_lone_surrogate_escape_is_refused_with_its_path(field: str, escaped: str) -> None:
    data = copy.deepcopy(EXAMPLE)
    data["jobs"][0][field] = "PLACEHOLDER"
    body = json.dumps(data).replace('"PLACEHOLDER"', f'"{escaped}"')
    with pytest.raises(BadRequest) as exc:
        parse_request_json(body)
    [err] = exc.value.errors
    assert err.path == f"jobs[0].{field}"
    assert err.value == escaped          # written as its escape, so it prints
    assert "surrogate" in err.message
    str(err).encode("utf-8")        # printable as it stands


def test_a_lone_surrogate_in_a_key_is_refused() -> None:
    body = json.dumps(EXAMPLE).replace('"speed": {', '"speed": {"\\udc80": 1.0, ', 1)
    with pytest.raises(BadRequest) as exc:
        parse_request_json(body)
    assert [e.path for e in exc.value.errors] == ["jobs[0].speed.\\udc80"]


def test_a_surrogate_pair_escape_is_a_character_and_accepted() -> None:
    data = copy.deepcopy(EXAMPLE)
    data["jobs"][0]["tenant"] = "team-\U0001f600"
    body = json.dumps(data)          # ensure_ascii: the emoji travels as \\ud83d\\ude00
    assert "\\ud83d\\ude00" in body
    assert parse_request_json(body).jobs[0].tenant == "team-\U0001f600"


def test_text_that_is_not_utf8_is_refused_and_a_bom_is_ignored() -> None:
    raw = json.dumps(EXAMPLE).encode()
    with pytest.raises(BadRequest) as exc:
        parse_request_json(raw.replace(b'"default"', b'"d\xe9faut"', 1) if b'"default"' in raw else raw[:20] + b"\xff")
    assert "not UTF-8" in exc.value.errors[0].message
    assert len(parse_request_json(b"\xef\xbb\xbf" + raw).jobs) == len(EXAMPLE["jobs"])


def test_values_at_the_limits_are_accepted() -> None:
    data = copy.deepcopy(EXAMPLE)
    data["fleet"]["clusters"][0]["node_groups"][0]["devices"] = limits.MAX_NODE_DEVICES
    data["jobs"][0].update(priority=limits.MAX_WEIGHT, checkpoint_gb=limits.MAX_CHECKPOINT_GB)
    data["policy"].update(migration_budget_gb=limits.MAX_MIGRATION_BUDGET_GB, time_limit_s=limits.MAX_TIME_LIMIT_S)
    data["quotas"].append({"tenant": "x", "tier": "basic", "devices": limits.MAX_QUOTA_DEVICES})
    req = parse_request(data)
    assert req.fleet.clusters[0].node_groups[0].devices == limits.MAX_NODE_DEVICES
