"""Parsing the next request of a fleet (models/reparse.py): the jobs sent exactly as before are reused, the
request is the one a cold parse gives, and a bad request is refused exactly as a cold parse refuses it."""

from __future__ import annotations

import copy
import json

import pytest

from datasets.requests import generate
from models import BadRequest, parse_request
from models.reparse import MEMO_MIN_JOBS, memo_key, reparse_request, reparse_request_json


def _base() -> dict:
    """A 600-job request with running jobs (generated: about half run somewhere)."""
    return generate(2000, 600, 2, seed=3)


def _errors(data: dict, memo) -> list[tuple[str, object, str]]:
    with pytest.raises(BadRequest) as exc:
        reparse_request(data, memo)
    return [(e.path, e.value, e.message) for e in exc.value.errors]


def _cold_errors(data: dict) -> list[tuple[str, object, str]]:
    with pytest.raises(BadRequest) as exc:
        parse_request(data)
    return [(e.path, e.value, e.message) for e in exc.value.errors]


def _running(data: dict) -> list[int]:
    return [i for i, j in enumerate(data["jobs"]) if j.get("current")]


def test_a_request_sent_again_is_the_cold_parse_and_shares_every_job() -> None:
    base = _base()
    first, memo = reparse_request(base, None)
    again, _ = reparse_request(copy.deepcopy(base), memo)
    assert again.model_dump() == parse_request(copy.deepcopy(base)).model_dump()
    assert all(a is b for a, b in zip(again.jobs, first.jobs))


def test_a_changed_job_is_validated_again_and_the_others_are_shared() -> None:
    base = _base()
    first, memo = reparse_request(base, None)
    nxt = copy.deepcopy(base)
    nxt["jobs"][5]["priority"] = 7.5
    nxt["jobs"].append({**copy.deepcopy(base["jobs"][0]), "id": "new-job", "current": None})
    got, _ = reparse_request(nxt, memo)
    assert got.model_dump() == parse_request(copy.deepcopy(nxt)).model_dump()
    assert got.jobs[5].priority == 7.5 and got.jobs[5] is not first.jobs[5]
    assert got.jobs[4] is first.jobs[4] and got.jobs[-1].id == "new-job"


@pytest.mark.parametrize(("field", "was", "now"), [
    ("priority", 1, True),                 # Python calls them equal; the contract refuses a bool
    ("devices_per_replica", 1, 1.0),       # an integer field given a float
    ("checkpoint_gb", 0, False),
])
def test_a_value_equal_in_python_but_of_another_json_type_is_refused(field: str, was, now) -> None:
    base = _base()
    base["jobs"][7][field] = was
    _, memo = reparse_request(copy.deepcopy(base), None)
    nxt = copy.deepcopy(base)
    nxt["jobs"][7][field] = now
    assert _errors(nxt, memo) == _cold_errors(copy.deepcopy(nxt))
    assert _errors(nxt, memo)[0][0] == f"jobs[7].{field}"


def test_bad_new_jobs_are_refused_with_the_cold_parse_errors() -> None:
    base = _base()
    _, memo = reparse_request(copy.deepcopy(base), None)
    nxt = copy.deepcopy(base)
    nxt["jobs"][3]["data_region"] = "mars"                       # a cross-field rule of a changed job
    nxt["jobs"][9]["replicas"] = {"min": 3, "max": 2}
    waiting = next(i for i, j in enumerate(base["jobs"]) if not j.get("current") and i > 9)
    nxt["jobs"].append(copy.deepcopy(base["jobs"][waiting]))   # the same id twice (one reused, one new)
    assert _errors(nxt, memo) == _cold_errors(copy.deepcopy(nxt))
    assert [p for p, _, _ in _errors(nxt, memo)] == ["jobs[3].data_region", "jobs[9].replicas", "jobs[600].id"]


def test_a_changed_job_that_overfills_a_node_held_by_a_reused_job_is_refused() -> None:
    base = _base()
    _, memo = reparse_request(copy.deepcopy(base), None)
    nxt = copy.deepcopy(base)
    held = nxt["jobs"][_running(base)[0]]["current"]
    nodes = {n: 1000 for n in held["nodes"]}
    waiting = next(i for i, j in enumerate(nxt["jobs"]) if not j.get("current")
                   and held["accelerator"] in j["speed"])
    nxt["jobs"][waiting]["current"] = {**held, "nodes": nodes}
    nxt["jobs"][waiting]["replicas"] = {"min": 1, "max": 1000}
    errors = _errors(nxt, memo)
    assert errors == _cold_errors(copy.deepcopy(nxt))
    assert any(p.startswith("fleet.nodes.") for p, _, _ in errors)


def test_a_job_that_stopped_frees_its_node_for_the_next_request() -> None:
    base = _base()
    _, memo = reparse_request(copy.deepcopy(base), None)
    nxt = copy.deepcopy(base)
    a, b = _running(base)[:2]
    moved = copy.deepcopy(nxt["jobs"][a]["current"])
    nxt["jobs"][a]["current"] = None                      # a stopped ...
    nxt["jobs"][b]["current"] = moved                     # ... and b runs where a ran, as a did
    nxt["jobs"][b]["replicas"] = copy.deepcopy(nxt["jobs"][a]["replicas"])
    nxt["jobs"][b]["devices_per_replica"] = nxt["jobs"][a].get("devices_per_replica", 1)
    nxt["jobs"][b]["speed"] = copy.deepcopy(nxt["jobs"][a]["speed"])
    got, _ = reparse_request(nxt, memo)
    assert got.model_dump() == parse_request(copy.deepcopy(nxt)).model_dump()


def test_another_fleet_reuses_nothing() -> None:
    base = _base()
    first, memo = reparse_request(copy.deepcopy(base), None)
    nxt = copy.deepcopy(base)
    nxt["fleet"]["down_nodes"] = []
    nxt["fleet"]["regions"][0]["storage_gbps"] = 3.5
    got, _ = reparse_request(nxt, memo)
    assert got.model_dump() == parse_request(copy.deepcopy(nxt)).model_dump()
    assert not any(a is b for a, b in zip(got.jobs, first.jobs))


def test_the_json_path_decodes_then_reuses() -> None:
    base = _base()
    first, memo = reparse_request_json(json.dumps(base).encode(), None)
    got, _ = reparse_request_json(json.dumps(base).encode(), memo)
    assert got.jobs[0] is first.jobs[0]


def test_a_small_request_has_no_memo_key() -> None:
    base = _base()
    assert memo_key(base) is not None
    small = {**base, "jobs": base["jobs"][: MEMO_MIN_JOBS - 1]}
    assert memo_key(small) is None
