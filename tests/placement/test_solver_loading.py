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



# A request of 20 jobs that the quick proof leaves open; `loaded()` says whether OR-Tools was imported
SMALL = ("import json, sys, dataclasses\n"
         "from datasets.requests import generate\n"
         "from models import parse_request_json\n"
         "from placement import load_solver, plan\n"
         "from placement.params import DEFAULT\n"
         "def request(deterministic=False):\n"
         "    r = generate(devices=64, jobs=20, regions=2, seed=0, time_limit_s=10.0)\n"
         "    r['policy']['deterministic'] = deterministic\n"
         "    return parse_request_json(json.dumps(r))\n"
         "def loaded():\n"
         "    return 'ortools' in {m.split('.')[0] for m in sys.modules}\n")


def test_a_plan_starts_no_cp_sat_stage_without_the_time_its_import_takes():
    code = SMALL + ("r = plan(request(), dataclasses.replace(DEFAULT, cpsat_load_s=1e6, exact_max_node_vars=0))\n"
                    "print(r.status in ('optimal', 'feasible'), loaded())\n")
    assert fresh_python(code) == "True False"


def test_without_time_for_cp_sats_import_the_exact_model_still_proves_a_small_request():
    code = SMALL + ("r = plan(request(), dataclasses.replace(DEFAULT, cpsat_load_s=1e6))\n"
                    "print(r.status, r.stats.bound_method, loaded())\n")
    assert fresh_python(code) == "optimal node_milp False"


def test_with_cp_sat_loaded_the_same_request_searches_with_it_first():
    code = SMALL + ("load_solver()\n"
                    "r = plan(request(), dataclasses.replace(DEFAULT, cpsat_load_s=1e6))\n"
                    "print(r.status, r.stats.cpsat_status)\n")
    assert fresh_python(code) == "optimal OPTIMAL"


def test_a_deterministic_plan_is_the_same_whether_or_not_cp_sat_was_loaded_before_it():
    code = SMALL + ("LOAD"
                    "r = plan(request(deterministic=True), dataclasses.replace(DEFAULT, cpsat_load_s=1e6))\n"
                    "print(r.objective, [(a.job, a.nodes) for a in r.assignments], r.stats.cpsat_status)\n")
    cold = fresh_python(code.replace("LOAD", ""))
    warm = fresh_python(code.replace("LOAD", "load_solver()\n"))
    assert cold == warm
    assert cold.endswith("OPTIMAL")
