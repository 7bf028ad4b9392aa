"""Replays under the GPU-sharing rules: every job on a type its rule allows, read back from jobs.csv.

The rule is checked here from the raw pod list (`gpu_milli`), independently of the loader and the rule's code.
"""

import csv
from fractions import Fraction

import pytest

from datasets import load_trace, to_job_specs
from datasets.fleets import alibaba_fleet, parse_carve, parse_fleet
from datasets.rows import TraceJob
from replay.harness import ReplaySetup, Window, run_replay
from replay.metrics import summarize, write_outputs
from tests.support import checker
from tests.support.invariants import check_invariants

PODS = checker.TRACES / "alibaba_openb2023_pods_gpushare100.csv"
NODES = checker.TRACES / "alibaba_openb2023_nodes.csv"


def one_cluster(*groups):
    return parse_fleet({"regions": [{"name": "r"}], "clusters": [{"name": "c", "region": "r", "node_groups": [
        {"prefix": f"n{i}-", "count": n, "accelerator": acc, "devices": d} for i, (acc, n, d) in enumerate(groups)]}]})


def test_an_eight_gpu_pod_is_rejected_by_a_node_of_slices_not_run_on_it():
    specs = to_job_specs([TraceJob("big", 0.0, 3600.0, 8)])
    run = run_replay(specs, one_cluster(("GPU:1/8", 1, 16)), ReplaySetup(scheduler="cpsat", time_limit_s=0.3))
    st = run.state.jobs["big"]
    assert st.status == "rejected"
    assert st.reject_reason == "no cluster holds 1 replica(s) of 8 device(s) on GPU"
    s = summarize(run, 0.0)
    assert (s["jobs_rejected"], s["rejected_by_reason"]) == (1, {st.reject_reason: 1})


@pytest.mark.parametrize("policy", ["fifo", "las", "cpsat"])
def test_a_half_gpu_pod_runs_on_a_whole_gpu_when_the_fleet_has_no_slice(policy):
    specs = to_job_specs([TraceJob("half", 0.0, 600.0, 1, gpu_type="GPU:1/2", gpu_share=0.46)])
    run = run_replay(specs, one_cluster(("G2", 1, 8)), ReplaySetup(scheduler=policy, time_limit_s=0.3))
    st = run.state.jobs["half"]
    assert st.status == "done" and list(st.placed_on) == [("c", "G2")]
    assert st.finish_s - st.first_start_s == pytest.approx(600.0 + 30.0)    # its duration plus the start pause


def pod_milli() -> dict[str, int]:
    with open(PODS, newline="") as f:
        return {r["name"]: int(r["gpu_milli"]) for r in csv.DictReader(f) if r["num_gpu"] != "0"}


def allowed(milli: int, accelerator: str) -> bool:
    """The documented rule, spelled independently: a slice 1/K only for a pod needing at most 1000/K milli-GPU."""
    if ":1/" not in accelerator:
        return True                           # a whole GPU: every pod of this list names no model
    k = int(accelerator.rsplit("/", 1)[1])
    return milli < 1000 and Fraction(1000, k) >= milli


@pytest.fixture(scope="module")
def alibaba_specs():
    if not PODS.exists() or not NODES.exists():
        pytest.skip(f"the shared traces are not at {checker.TRACES}")
    return to_job_specs(load_trace(str(PODS), "alibaba2023").rows)


@pytest.mark.parametrize(("policy", "days"), [("fifo", 2.0), ("las", 2.0), ("cpsat", 1.0)])
def test_on_the_shared_pod_list_every_job_runs_on_a_type_its_rule_allows(alibaba_specs, tmp_path, policy, days):
    # a contended fleet from the node list: 1 G2 node in halves, 1 whole G2, 1 T4 node in halves (28 devices)
    fleet = alibaba_fleet(str(NODES), parse_carve("2:0.5"), scale=0.003)
    run = run_replay(alibaba_specs, fleet, ReplaySetup(scheduler=policy, time_limit_s=0.3, max_days=5.0),
                     Window(start_day=125.0, days=days, warmup_days=0.0))
    check_invariants(run)
    summary = summarize(run, 0.0)
    write_outputs(run, summary, str(tmp_path))
    with open(tmp_path / "jobs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    milli = pod_milli()
    assert len(rows) > 100
    assert summary["jobs_rejected"] == 0 and summary["rejected_by_reason"] == {}
    ran = [r for r in rows if r["accelerators"]]
    assert len(ran) == len(rows)                        # every job ran (the replay goes on until all are done)
    bad = [(r["job_id"], milli[r["job_id"]], a) for r in ran for a in r["accelerators"].split(";")
           if not allowed(milli[r["job_id"]], a)]
    assert bad == []
    assert {a for r in ran for a in r["accelerators"].split(";")} >= {"G2", "G2:1/2"}
    assert {r["clusters"] for r in ran} == {"alibaba"}


def test_no_sharing_job_is_rejected_on_whole_gpus_of_the_node_list(alibaba_specs):
    fleet = alibaba_fleet(str(NODES), scale=0.003)          # 2 whole G2 nodes and 1 whole T4 node, no slice
    run = run_replay(alibaba_specs, fleet, ReplaySetup(scheduler="las", max_days=5.0),
                     Window(start_day=125.0, days=1.0, warmup_days=0.0))
    assert summarize(run, 0.0)["jobs_rejected"] == 0
    assert all(a in ("G2", "T4") for st in run.state.jobs.values() for _, a in st.placed_on)


def test_pool_shares_weigh_a_slice_by_the_share_of_a_gpu_it_is():
    from executor.loop import EpochRecord
    from replay.pools import held_share, held_share_gpus

    records = [EpochRecord(t_s=0.0, dt_s=100.0), EpochRecord(t_s=100.0, dt_s=100.0)]
    held = {0.0: {"G2:1/2": 100.0}, 100.0: {"G2": 100.0}}          # one half slice, then the whole GPU, busy
    devices = {"G2": 1, "G2:1/2": 2}                                 # two physical GPUs, one carved in halves
    assert held_share(records, held, devices, 0.0, 200.0) == {"G2": 0.5, "G2:1/2": 0.25}
    assert held_share_gpus(records, held, devices, 0.0, 200.0) == (50.0 + 100.0) / 400.0
    assert held_share_gpus(records, held, devices, 0.0, 100.0) == 50.0 / 200.0
