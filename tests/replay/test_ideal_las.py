"""The ideal 2D-LAS reference (`replay.ideal_las`): event-driven, free and instant preemption, Tiresias's
queues on attained GPU-seconds; exact completion times on small traces, then a slice of the real trace."""

import pytest

from datasets import AttributeRules, load_trace, to_job_specs
from datasets.fleets import parse_fleet, single_cluster_fleet
from datasets.rows import TraceJob
from replay.harness import ReplaySetup, Window, run_replay
from replay.metrics import job_rows, summarize
from tests.support import checker
from tests.support.invariants import check_invariants

IDEAL = ReplaySetup(scheduler="las2d-ideal")
WHOLE = Window(None, None, 0)


def specs(*rows: tuple) -> list:
    """(id, submit s, duration s, GPUs[, min GPUs]) rows as the replay reads a trace."""
    jobs = [TraceJob(r[0], r[1], r[2], r[3], min_gpus=r[4] if len(r) > 4 else None) for r in rows]
    return to_job_specs(jobs, AttributeRules(seed=0))


def replay(fleet, *rows: tuple):
    run = run_replay(specs(*rows), fleet, IDEAL, WHOLE)
    check_invariants(run)
    return run


def jobs(run):
    return run.state.jobs


def test_a_short_job_preempts_a_demoted_long_one_at_once_and_finishes_after_its_duration():
    run = replay(single_cluster_fleet(1, 1), ("long", 0, 100_000, 1), ("short", 5_000, 100, 1))
    j = jobs(run)
    assert j["short"].first_start_s == 5_000 and j["short"].finish_s == 5_100
    assert j["long"].finish_s == 100_100
    assert j["long"].actions["preempt"] == 1 and j["short"].actions["preempt"] == 0


def test_a_job_still_in_the_first_queue_is_not_preempted_by_a_later_arrival():
    # "long" holds 1 GPU: it leaves queue 0 at 3,600 GPU-seconds, i.e. at t = 3,600; FIFO before that
    run = replay(single_cluster_fleet(1, 1), ("long", 0, 100_000, 1), ("short", 1_000, 100, 1))
    j = jobs(run)
    assert j["short"].first_start_s == 3_600 and j["short"].finish_s == 3_700
    assert j["long"].finish_s == 100_100


def test_attained_service_is_counted_in_gpu_seconds():
    # 4 GPUs pass the 3,600 GPU-second threshold after 900 s, 1 GPU after 3,600 s of holding it
    run = replay(single_cluster_fleet(1, 4), ("wide", 0, 2_000, 4), ("narrow", 10, 5_000, 1))
    j = jobs(run)
    assert j["narrow"].first_start_s == 900            # "wide" demoted at 900 s and preempted
    assert j["wide"].finish_s == 4_500 + 1_100         # resumes when "narrow" is demoted (900 + 3,600)
    assert j["narrow"].finish_s == 5_600 + 1_400       # then runs its last 1,400 s
    assert j["wide"].actions["preempt"] == 1 and j["narrow"].actions["preempt"] == 1
    assert j["wide"].attained_device_s == pytest.approx(8_000) and j["narrow"].attained_device_s == pytest.approx(5_000)


def test_a_gang_waits_for_room_on_whole_nodes_not_for_free_devices():
    # two nodes of 6 GPUs; "gang" is 2 replicas of 4 (8 GPUs, min 4); with "x" (4 GPUs) running, 8 devices
    # are free (2 + 6) but no two nodes hold 4 each: it waits until "x" is demoted (900 s), then preempts it
    fleet = parse_fleet({"regions": [{"name": "r"}], "clusters": [{"name": "c", "region": "r", "node_groups": [
        {"prefix": "n", "count": 2, "accelerator": "GPU", "devices": 6}]}]})
    run = replay(fleet, ("x", 0, 1_000, 4), ("gang", 10, 100, 8, 4))
    j = jobs(run)
    assert run.specs["gang"].devices_per_replica == 4 and run.specs["gang"].max_replicas == 2
    assert j["gang"].first_start_s == 900 and j["gang"].finish_s == 1_000
    assert j["x"].finish_s == 1_100 and j["x"].actions["preempt"] == 1


def test_a_whole_node_job_starts_at_once_where_a_free_repack_clears_a_node():
    # 2 x 8 GPUs: a (4) and b (4) on one node, c (4) and d (4) on the other; b and c finish at 100, leaving
    # 4 + 4 free devices on two nodes; the 8-GPU job arriving at 200 starts at once, a or d moved for free
    run = replay(single_cluster_fleet(2, 8), ("a", 0, 10_000, 4), ("b", 0, 100, 4), ("c", 0, 100, 4),
                 ("d", 0, 10_000, 4), ("whole", 200, 500, 8))
    j = jobs(run)
    assert j["whole"].first_start_s == 200 and j["whole"].finish_s == 700
    assert j["a"].actions["move"] + j["d"].actions["move"] == 1
    assert all(j[x].actions["preempt"] == 0 for x in "abcd")
    assert summarize(run, 0.0)["moves"] == 1


def test_outages_are_refused():
    from replay.harness import ReplaySetup as Setup

    with pytest.raises(ValueError, match="las2d-ideal: outages and quotas"):
        run_replay(specs(("a", 0, 10, 1)), single_cluster_fleet(1, 1),
                   Setup(scheduler="las2d-ideal", outages=lambda t: set()), WHOLE)


@pytest.fixture(scope="module")
def philly_specs():
    path = checker.TRACES / "philly_jobs.csv"
    if not path.exists():
        pytest.skip(f"the shared traces are not at {checker.TRACES}")
    return to_job_specs(load_trace(str(path), "philly").rows)


def test_on_a_philly_slice_the_same_jobs_floor_and_columns_as_las(philly_specs):
    window = Window(start_day=30.5, days=0.05, warmup_days=0.05)
    fleet = single_cluster_fleet(6, 8)
    ideal = run_replay(philly_specs, fleet, ReplaySetup(scheduler="las2d-ideal", max_days=1.0), window)
    las = run_replay(philly_specs, fleet, ReplaySetup(scheduler="las", max_days=1.0), window)
    check_invariants(ideal)
    assert ideal.measured == las.measured and len(ideal.measured) > 100
    si, sl = summarize(ideal, 0.0), summarize(las, 0.0)
    assert set(si) >= set(sl) - {"backfill"} and si["policy"] == "las2d-ideal"
    assert list(job_rows(ideal)[0]) == list(job_rows(las)[0])
    done_i = {r["job_id"] for r in job_rows(ideal) if r["measured"] and r["status"] == "done"}
    done_l = {r["job_id"] for r in job_rows(las) if r["measured"] and r["status"] == "done"}
    assert len(done_i) > 0.9 * len(ideal.measured)
    if done_i == done_l:        # the floor: the mean trace duration of the same completed measured jobs
        assert si["avg_duration_s"] == pytest.approx(sl["avg_duration_s"])
    # no job runs faster than its trace; one that never waited finishes exactly then
    for r in job_rows(ideal):
        if r["measured"] and r["status"] == "done":
            assert r["jct_s"] >= r["duration_s"] - 1e-6
            if r["queue_s"] == 0:
                assert r["jct_s"] == pytest.approx(r["duration_s"])


def _queue_order_case(order: str):
    # 2 GPUs: "p" (2 GPUs) and "r" (1) submitted together; "p" runs first, is demoted at 1,800 s and
    # preempted for "r"; "s" (1 GPU) arrives at 5,000, "r" is demoted at 5,400 (p waits: 1 GPU free);
    # when "s" finishes at 5,500, 2 GPUs would hold "p" if "r" stopped
    setup = ReplaySetup(scheduler="las2d-ideal", ideal_order=order)
    run = run_replay(specs(("p", 0, 10_000, 2), ("r", 0, 20_000, 1), ("s", 5_000, 500, 1)),
                     single_cluster_fleet(1, 2), setup, WHOLE)
    check_invariants(run)
    return jobs(run)


def test_tiresias_order_a_waiting_job_of_the_same_queue_never_preempts_a_running_one():
    j = _queue_order_case("tiresias")
    assert j["s"].finish_s == 5_500
    assert j["r"].finish_s == 5_500 + 16_300 and j["r"].actions["preempt"] == 0
    assert j["p"].finish_s == 21_800 + 8_200


def test_fifo_order_the_older_job_of_the_same_queue_preempts_the_younger():
    j = _queue_order_case("fifo")
    assert j["p"].finish_s == 5_500 + 8_200
    assert j["r"].finish_s == 13_700 + 16_300 and j["r"].actions["preempt"] == 1


def _srpt(fleet, *rows: tuple):
    run = run_replay(specs(*rows), fleet, ReplaySetup(scheduler="las2d-ideal", ideal_order="srpt"), WHOLE)
    check_invariants(run)
    return jobs(run)


def test_srpt_order_an_arrival_with_less_work_left_preempts_the_running_job_at_once():
    j = _srpt(single_cluster_fleet(1, 1), ("long", 0, 10_000, 1), ("short", 5_000, 100, 1))
    assert j["short"].first_start_s == 5_000 and j["short"].finish_s == 5_100
    assert j["long"].finish_s == 10_100 and j["long"].actions["preempt"] == 1


def test_srpt_order_a_running_job_whose_work_left_shrank_below_the_arrival_keeps_running():
    # at 500 s "a" has 500 s left against "b"'s 800: "a" ran ahead of it although it started longer
    j = _srpt(single_cluster_fleet(1, 1), ("a", 0, 1_000, 1), ("b", 500, 800, 1))
    assert j["a"].finish_s == 1_000 and j["a"].actions["preempt"] == 0
    assert j["b"].first_start_s == 1_000 and j["b"].finish_s == 1_800


def test_srpt_order_ranks_by_device_seconds_left_not_time_left():
    # 2 GPUs: "wide" needs 2 GPUs for 300 s (600 GPU-seconds), "narrow" 1 GPU for 500 s (500): narrow first
    j = _srpt(single_cluster_fleet(1, 2), ("wide", 0, 300, 2), ("narrow", 0, 500, 1), ("other", 0, 550, 1))
    assert j["narrow"].first_start_s == 0 and j["other"].first_start_s == 0
    assert j["wide"].first_start_s == 550 and j["wide"].finish_s == 850
