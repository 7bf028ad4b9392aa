"""Which stage runs at which size (placement/params.py): the full pool-level CP-SAT model only where it is
small enough to prove something in the limit; above that its time goes to the search's moves."""

from __future__ import annotations

from datasets.requests import generate_family
from placement import plan
from placement.candidates import build_options
from placement.instance import compile_instance
from placement.params import DEFAULT
from tests.support.requests import check, parsed


def test_a_medium_request_of_some_thousand_options_skips_the_full_cpsat_model():
    data = generate_family("medium", 5)
    data["policy"]["deterministic"] = True          # work units, not the clock, decide what runs
    req = parsed(data)
    assert DEFAULT.cpsat_full_max_options < len(build_options(compile_instance(req))) <= 3_000
    resp = plan(req)
    check(data, resp)
    assert resp.stats.cpsat_variables == 0 and resp.stats.cpsat_status == "FEASIBLE"   # neighbourhoods only
