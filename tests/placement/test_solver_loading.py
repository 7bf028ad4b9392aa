"""The engine loads OR-Tools only when a plan searches with CP-SAT: its CP-SAT module imports pandas,
0.2 s of every `meridian plan`, and a request small enough to prove without search never needs it."""

from __future__ import annotations

from tests.support.processes import ROOT, fresh_python

EXAMPLE = ROOT / "examples" / "two-regions.json"


def test_planning_the_bundled_example_loads_no_cp_sat():
    code = ("import sys\n"
            "from models import parse_request_json\n"
            "from placement import plan\n"
            f"r = plan(parse_request_json(open({str(EXAMPLE)!r}).read()))\n"
            "print(r.status, sorted({m.split('.')[0] for m in sys.modules} & {'ortools', 'pandas'}))\n")
    assert fresh_python(code) == "optimal []"


def test_the_solver_is_still_there_when_asked_for():
    from placement import cpsat
    from placement.cpsat.solve import solve_pool_model

    assert cpsat.solve_pool_model is solve_pool_model


def test_the_service_loads_the_solver_with_the_engine_before_any_request():
    code = ("import sys\n"
            "from service.app.planning import _load_engine\n"
            "_load_engine()\n"
            "print('placement.cpsat.solve' in sys.modules)\n")
    assert fresh_python(code) == "True"
