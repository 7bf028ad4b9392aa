"""Contract v1 types: the plan request and response, and their validation. No solver, no I/O."""

from models.errors import BadRequest, FieldError
from models.request import (
    TIERS,
    Cluster,
    Fleet,
    Job,
    Link,
    NodeGroup,
    Placement,
    PlanRequest,
    Policy,
    Quota,
    Region,
    Replicas,
    Tier,
    TierWeights,
)
from models.response import Action, Assignment, Breakdown, PlanResponse, SolverStats, Unplaced
from models.validate import (
    MAX_NODES,
    Limits,
    decode_json,
    parse_request,
    parse_request_json,
    validate_request,
)

__all__ = [
    "MAX_NODES",
    "TIERS",
    "Action",
    "Assignment",
    "BadRequest",
    "Breakdown",
    "Cluster",
    "FieldError",
    "Fleet",
    "Job",
    "Limits",
    "Link",
    "NodeGroup",
    "Placement",
    "PlanRequest",
    "PlanResponse",
    "Policy",
    "Quota",
    "Region",
    "Replicas",
    "SolverStats",
    "Tier",
    "TierWeights",
    "Unplaced",
    "decode_json",
    "parse_request",
    "parse_request_json",
    "validate_request",
]
