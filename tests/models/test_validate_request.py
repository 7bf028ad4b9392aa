"""The one door: a request built in memory (as the replay loop builds them) passes the same rules as JSON."""

from __future__ import annotations

import pytest

from models import BadRequest, PlanRequest, validate_request
from tests.support.requests import cluster, fleet, job, parsed, request

GOOD = request(fleet(cluster("a", "us", ("a-", 2, "H100", 8))), [job("j", 1)])


def test_a_request_built_from_validated_parts_passes_and_is_returned_as_is():
    req = parsed(GOOD)
    built = PlanRequest.model_construct(epoch_s=req.epoch_s, fleet=req.fleet, jobs=req.jobs, quotas=[],
                                        policy=req.policy)
    assert validate_request(built) is built


def test_a_built_request_naming_a_missing_node_is_refused_with_the_field_and_value():
    req = parsed(GOOD)
    built = PlanRequest.model_construct(epoch_s=req.epoch_s, fleet=req.fleet.model_copy(update={"down_nodes": ["a-2"]}),
                                        jobs=req.jobs, quotas=[], policy=req.policy)
    with pytest.raises(BadRequest) as exc:
        validate_request(built)
    assert [(e.path, e.value, e.message) for e in exc.value.errors] == [("fleet.down_nodes[0]", "a-2", "unknown node")]
