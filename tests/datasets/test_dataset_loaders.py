"""Trace loaders: rows as documented, bad rows named by line or skipped and counted."""

from pathlib import Path

import pytest

from datasets import TraceFormatError, load_trace
from datasets.alibaba import slice_type
from datasets.canonical import load_canonical, write_canonical
from datasets.philly import load_philly
from datasets.rows import TraceJob


def write(tmp_path: Path, text: str, name: str = "t.csv") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


PHILLY_HEADER = "job_id,submit_time_s,start_time_s,end_time_s,duration_s,queue_s,num_gpus,gpu_type,tenant,status,job_type\n"


def test_philly_fixture_reads_every_row(fixtures):
    res = load_philly(str(fixtures / "philly_small.csv"))
    assert [j.job_id for j in res.rows] == ["0", "1", "2", "3", "4", "5"]
    assert res.rows[3] == TraceJob(job_id="3", submit_time_s=400.0, duration_s=300.0, num_gpus=16, tenant="vc-b")
    assert res.rows[5].tenant == "default"
    assert res.skipped_total == 0


def test_philly_bad_row_names_its_line(tmp_path):
    path = write(tmp_path, PHILLY_HEADER + "0,0,,,600,,1,,a,,\n1,10,,,600,,two,,a,,\n")
    with pytest.raises(TraceFormatError) as exc:
        load_philly(path)
    assert exc.value.line == 3
    assert str(exc.value) == f"{path} line 3: num_gpus: expected an integer, got 'two'"


def test_philly_skip_counts_bad_rows_by_column(tmp_path):
    path = write(tmp_path, PHILLY_HEADER + "0,0,,,600,,1,,a,,\n1,10,,,0,,1,,a,,\n2,x,,,5,,1,,a,,\n3,5,,,5,,1,,a,,\n"
                 "3,6,,,5,,1,,a,,\n")
    res = load_philly(path, on_bad="skip")
    assert [j.job_id for j in res.rows] == ["0", "3"]
    assert dict(res.skipped) == {"duration_s": 1, "submit_time_s": 1, "job_id": 1}
    assert res.examples[0] == "line 3: duration_s: must be > 0, got '0'"
    assert res.examples[2] == "line 6: job_id: duplicate '3' (first on line 5)"


def test_missing_header_column_is_line_one(tmp_path):
    path = write(tmp_path, "job_id,submit_time_s,duration_s\n0,0,1\n")
    with pytest.raises(TraceFormatError, match=r"line 1: header lacks column\(s\) num_gpus, tenant"):
        load_trace(path, "canonical")


def test_real_philly_trace_loads_clean(shared_traces):
    res = load_philly(str(shared_traces / "philly_jobs.csv"))
    assert len(res.rows) == 82247
    assert res.skipped_total == 0
    assert res.rows[0] == TraceJob(job_id="0", submit_time_s=0.0, duration_s=2240194.0, num_gpus=8, tenant="7f04ca")


def test_canonical_fixture_optional_columns(fixtures):
    rows = load_canonical(str(fixtures / "canonical_small.csv")).rows
    a, b, c, d = rows
    assert (a.tier, a.gpu_type, a.data_region, a.min_gpus) == ("premium", "H100", "us-east", None)
    assert (b.min_gpus, b.max_gpus, b.checkpoint_gb, b.tier) == (2, 8, 10.0, None)
    assert c.gpu_type == "A100|H100"
    assert (d.submit_time_s, d.tenant, d.checkpoint_gb) == (3600.5, "default", 0.5)


def test_canonical_rejects_unknown_tier_with_line(tmp_path):
    path = write(tmp_path, "job_id,submit_time_s,duration_s,num_gpus,tenant,tier\na,0,1,1,t,gold\n")
    with pytest.raises(TraceFormatError, match="line 2: tier: expected premium, standard or basic, got 'gold'"):
        load_canonical(path)


def test_canonical_min_above_max_is_bad(tmp_path):
    path = write(tmp_path, "job_id,submit_time_s,duration_s,num_gpus,tenant,min_gpus,max_gpus\na,0,1,4,t,8,4\n")
    res = load_canonical(path, on_bad="skip")
    assert res.rows == [] and dict(res.skipped) == {"min_gpus": 1}


def test_canonical_round_trip(tmp_path, fixtures):
    rows = load_canonical(str(fixtures / "canonical_small.csv")).rows
    out = tmp_path / "out.csv"
    write_canonical(str(out), rows)
    assert load_canonical(str(out)).rows == rows


def test_alibaba_pods_become_jobs_and_skips_are_counted(fixtures):
    res = load_trace(str(fixtures / "alibaba2023_small.csv"), "alibaba2023")
    by = {j.job_id: j for j in res.rows}
    assert sorted(by) == [f"openb-pod-000{i}" for i in range(6)]
    assert by["openb-pod-0000"] == TraceJob(job_id="openb-pod-0000", submit_time_s=0.0, duration_s=7140.0,
                                            num_gpus=1, tenant="LS", gpu_type="V100M32")
    assert by["openb-pod-0001"].gpu_type == "GPU:1/8"
    assert by["openb-pod-0002"].gpu_type == "T4:1/4"
    assert by["openb-pod-0003"].gpu_type == "A10:1/2|T4:1/2"
    assert by["openb-pod-0004"].gpu_type == "G2"
    assert (by["openb-pod-0005"].num_gpus, by["openb-pod-0005"].gpu_type) == (8, "V100M16|V100M32")
    assert dict(res.skipped) == {"no_gpu": 1, "unscheduled": 1, "not_deleted": 1, "zero_duration": 1}


def test_alibaba_fractional_multi_gpu_is_a_bad_row(tmp_path):
    header = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
    path = write(tmp_path, header + "p0,1,1,2,500,,LS,Running,0,10,0\n")
    with pytest.raises(TraceFormatError, match="line 2: gpu_milli: a pod with 2 GPUs takes whole GPUs"):
        load_trace(path, "alibaba2023")


@pytest.mark.parametrize(("milli", "expected"), [(1, "T4:1/8"), (125, "T4:1/8"), (126, "T4:1/4"), (250, "T4:1/4"),
                                                 (251, "T4:1/2"), (500, "T4:1/2"), (501, "T4"), (1000, "T4")])
def test_slice_table_edges(milli, expected):
    assert slice_type("T4", milli) == expected


def test_unknown_format_names_the_choices():
    with pytest.raises(ValueError, match="unknown trace format 'csv': expected one of philly, canonical, alibaba2023"):
        load_trace("x", "csv")
