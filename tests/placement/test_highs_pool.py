"""HiGHS keeps one thread pool per process, sized by its first run: the engine's LP (and the exact
node model) must still solve after another HiGHS user in the process started that pool at its own
size, instead of silently losing the LP bound. Each case runs in a fresh process, where the pool is
not started yet."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from datasets.requests import generate_family
from placement.bound import _thread_highs, lp_bound
from placement.candidates import build_options
from placement.instance import compile_instance
from tests.support.requests import parsed

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
sys.path.insert(0, {repo!r})
import highspy
h = highspy.Highs()                      # another HiGHS user, first in this process: default threads
h.setOptionValue("output_flag", False)
h.addVars(1, [0.0], [1.0])
h.changeColsCost(1, [0], [-1.0])
h.run()
from models import parse_request_json
from placement import plan
from placement.bound import lp_bound
from placement.candidates import build_options
from placement.exact import node_milp
from placement.instance import compile_instance
req = parse_request_json(open({example!r}).read())
resp = plan(req)
inst = compile_instance(req)
opts = build_options(inst)
lps = [lp_bound(inst, opts, time_limit_s=5.0) for _ in range(2)]   # the second on the thread's reused instance
print(json.dumps({{"lp": [None if lp is None else round(lp.value, 4) for lp in lps], "status": resp.status,
                  "exact": node_milp(inst, opts, seconds=30).status}}))
"""


def test_the_lp_still_solves_after_another_highs_user_sized_the_thread_pool() -> None:
    code = SCRIPT.format(repo=str(REPO), example=str(REPO / "examples" / "two-regions.json"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == '{"lp": [1326.4596, 1326.4596], "status": "optimal", "exact": "Optimal"}'


def test_the_lp_still_solves_once_the_threads_reused_highs_has_run_past_its_limit_in_all() -> None:
    # HiGHS's time limit counts an instance's run time over all its solves, and the thread's instance
    # serves every LP of a long-running process (the service, a replay): each LP gets its own limit
    inst = compile_instance(parsed(generate_family("medium", 0)))
    opts = build_options(inst)
    t = time.perf_counter()
    first = lp_bound(inst, opts, time_limit_s=60.0)
    limit = max(0.05, 3 * (time.perf_counter() - t))   # several times one solve
    while _thread_highs().getRunTime() <= limit:         # the instance's solves so far pass that limit
        assert lp_bound(inst, opts, time_limit_s=60.0) is not None
    again = lp_bound(inst, opts, time_limit_s=limit)
    assert first is not None and again is not None
    assert again.value == first.value
