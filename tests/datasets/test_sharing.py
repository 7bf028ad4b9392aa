"""GPU sharing rules (datasets/sharing.py): slice types, where a job may run, the Alibaba fleet's carve and scale."""

from fractions import Fraction

import pytest

from datasets.alibaba import load_alibaba2023
from datasets.attributes import to_job_spec
from datasets.canonical import load_canonical, write_canonical
from datasets.errors import TraceFormatError
from datasets.fleets import alibaba_fleet, fleet_devices, parse_carve
from datasets.rows import TraceJob
from datasets.sharing import allowed_speeds, need_of, split_type

FLEET = ["A10", "G2", "G2:1/2", "G2:1/4", "G2:1/8", "GPU:1/2", "T4", "T4:1/2", "T4:1/4", "V100M32"]


def test_a_slice_type_is_a_fraction_of_one_gpu_of_a_model():
    assert split_type("T4:1/4") == ("T4", Fraction(1, 4))
    assert split_type("GPU:1/8") == ("GPU", Fraction(1, 8))
    assert split_type("H100") == ("H100", Fraction(1))
    assert split_type("GPU-24GB") == ("GPU-24GB", Fraction(1))


@pytest.mark.parametrize("name", ["T4/2", "T4:2/4", "a/b", "T4:1/0"])
def test_no_other_accelerator_name_contains_a_slash(name):
    with pytest.raises(ValueError, match="only slice types MODEL:1/K may contain '/'"):
        split_type(name)


def test_a_whole_gpu_job_never_runs_on_a_slice():
    assert allowed_speeds(None, None, FLEET) == {"A10": 1.0, "G2": 1.0, "T4": 1.0, "V100M32": 1.0}


def test_a_whole_gpu_job_naming_its_types_keeps_exactly_those():
    assert allowed_speeds("V100M16|V100M32", None, FLEET) == {"V100M16": 1.0, "V100M32": 1.0}


def test_a_sharing_job_of_unknown_model_runs_on_any_slice_at_least_its_share_or_any_whole_gpu():
    assert allowed_speeds("GPU:1/2", 0.46, FLEET) == {t: 1.0 for t in
                                                     ["A10", "G2", "G2:1/2", "GPU:1/2", "T4", "T4:1/2", "V100M32"]}
    assert allowed_speeds("GPU:1/4", 0.2, FLEET) == {t: 1.0 for t in ["A10", "G2", "G2:1/2", "G2:1/4", "GPU:1/2",
                                                                     "T4", "T4:1/2", "T4:1/4", "V100M32"]}


def test_a_sharing_job_keeps_to_its_models():
    assert allowed_speeds("T4:1/4", 0.25, FLEET) == {"T4": 1.0, "T4:1/2": 1.0, "T4:1/4": 1.0}
    assert allowed_speeds("A10:1/2|T4:1/2", 0.46, FLEET) == {"A10": 1.0, "T4": 1.0, "T4:1/2": 1.0}


def test_the_share_comes_from_the_slice_name_when_the_trace_gives_no_exact_share():
    assert need_of("T4:1/4", None) == (0.25, ("T4",))
    assert need_of("GPU:1/8", None) == (0.125, None)
    assert need_of("G2", 0.7) == (0.7, ("G2",))
    assert need_of("G2", None) == (None, None)


def test_a_sharing_job_the_fleet_cannot_hold_keeps_its_nominal_type_so_the_replay_names_it():
    assert allowed_speeds("T4:1/2", 0.46, ["G2", "G2:1/2"]) == {"T4:1/2": 1.0}
    assert allowed_speeds(None, None, ["G2:1/8"]) == {"GPU": 1.0}


def test_job_specs_carry_the_share_and_resolve_against_the_fleet_later():
    spec = to_job_spec(TraceJob("p", 0.0, 60.0, 1, gpu_type="GPU:1/2", gpu_share=0.46))
    assert (spec.speed, spec.gpu_share, spec.work) == (None, 0.46, 60.0)
    whole = to_job_spec(TraceJob("w", 0.0, 60.0, 8, gpu_type="V100M16|V100M32"))
    assert whole.speed == {"V100M16": 1.0, "V100M32": 1.0} and whole.gpu_share is None


def test_alibaba_pods_carry_their_exact_share(fixtures):
    by = {j.job_id: j for j in load_alibaba2023(str(fixtures / "alibaba2023_small.csv")).rows}
    assert [by[f"openb-pod-000{i}"].gpu_share for i in range(6)] == [None, 0.1, 0.25, 0.46, 0.7, None]


HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"


@pytest.mark.parametrize(("row", "reason", "message"), [
    ("p0,1,1,1,500,,LS,Failed,0,5,10", "deleted_before_scheduled",
     "line 2: deletion_time: pod p0 deleted at 5, before it was scheduled at 10"),
    ("p0,1,1,1,500,,LS,Running,20,50,10", "scheduled_before_created",
     "line 2: scheduled_time: pod p0 scheduled at 10, before it was created at 20"),
])
def test_impossible_pod_times_are_bad_rows_not_silent_skips(tmp_path, row, reason, message):
    path = tmp_path / "pods.csv"
    path.write_text(HEADER + row + "\n")
    with pytest.raises(TraceFormatError, match=message):
        load_alibaba2023(str(path))
    res = load_alibaba2023(str(path), on_bad="skip")
    assert res.rows == [] and dict(res.skipped) == {reason: 1}


def test_canonical_gpu_share_round_trips_and_a_bad_type_names_the_column(tmp_path):
    rows = [TraceJob("a", 0.0, 10.0, 1, gpu_type="GPU:1/2", gpu_share=0.46), TraceJob("b", 1.0, 10.0, 2)]
    out = tmp_path / "c.csv"
    write_canonical(str(out), rows)
    assert load_canonical(str(out)).rows == rows
    bad = tmp_path / "bad.csv"
    bad.write_text("job_id,submit_time_s,duration_s,num_gpus,tenant,gpu_type\na,0,1,1,t,T4/2\n")
    with pytest.raises(TraceFormatError, match="line 2: gpu_type: accelerator 'T4/2': only slice types"):
        load_canonical(str(bad))


NODES = ("sn,cpu_milli,memory_mib,gpu,model\n" + "".join(f"c{i},1,1,0,\n" for i in range(3))
         + "".join(f"g{i},1,1,8,G2\n" for i in range(10)) + "".join(f"t{i},1,1,2,T4\n" for i in range(4)))


def test_alibaba_fleet_groups_nodes_by_model_and_leaves_cpu_nodes_out(tmp_path):
    path = tmp_path / "nodes.csv"
    path.write_text(NODES)
    f = alibaba_fleet(str(path))
    assert [(g.accelerator, g.count, g.devices) for g in f.clusters[0].node_groups] == [("G2", 10, 8), ("T4", 4, 2)]


def test_alibaba_fleet_carve_and_scale(tmp_path):
    path = tmp_path / "nodes.csv"
    path.write_text(NODES)
    f = alibaba_fleet(str(path), carve=parse_carve("2:0.5,8:0.25"), scale=0.5)
    # 5 G2 nodes: 2.5 -> 3 in halves, 3.75 -> 4 cumulatively: 1 in eighths, 1 whole; 2 T4 nodes: 1, 1.5 -> 2: 1, 0
    assert [(g.accelerator, g.count, g.devices) for g in f.clusters[0].node_groups] == [
        ("G2:1/2", 3, 16), ("G2:1/8", 1, 64), ("G2", 1, 8), ("T4:1/2", 1, 4), ("T4:1/8", 1, 16)]


def test_the_shared_node_list_as_a_fleet(tmp_path):
    from tests.support import checker

    path = checker.TRACES / "alibaba_openb2023_nodes.csv"
    if not path.exists():
        pytest.skip(f"the shared traces are not at {checker.TRACES}")
    assert fleet_devices(alibaba_fleet(str(path))) == 6212          # 1,213 GPU nodes; 310 CPU-only left out
    small = alibaba_fleet(str(path), parse_carve("2:0.5"), scale=0.003)
    assert [(g.accelerator, g.count, g.devices) for g in small.clusters[0].node_groups] == [
        ("G2:1/2", 1, 16), ("G2", 1, 8), ("T4:1/2", 1, 4)]


@pytest.mark.parametrize(("text", "message"), [
    ("2", "carve '2': expected K:SHARE"), ("1:0.5", "carve '1:0.5': expected K:SHARE"),
    ("2:0", "carve '2:0': expected K:SHARE"), ("2:0.5,2:0.1", "1/2 slices given twice"),
    ("2:0.6,4:0.6", "the shares add up to 1.2, more than 1"),
])
def test_a_bad_carve_names_the_part(text, message):
    with pytest.raises(ValueError, match=message):
        parse_carve(text)
