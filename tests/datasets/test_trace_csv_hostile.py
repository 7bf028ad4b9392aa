"""Traces and machine lists a fuzzing pass broke (2026-12-03): malformed CSV, odd headers, types the
sharing rules cannot read, contradictory ranges, numbers in other notations, machines listed twice.
Each is one TraceFormatError naming the file and line (or a bad row `--on-bad skip` counts), never an
internal error and never rows silently lost."""

from pathlib import Path

import pytest

from datasets import TraceFormatError
from datasets.alibaba import load_alibaba2023
from datasets.canonical import load_canonical
from datasets.fleets import alibaba_fleet, philly_fleet
from datasets.philly import load_philly
from datasets.rows import open_csv
from replay.harness import world_size_replicas

PHILLY = "job_id,submit_time_s,duration_s,num_gpus,tenant,gpu_type\n"
CANONICAL = "job_id,submit_time_s,duration_s,num_gpus,tenant,min_gpus,max_gpus\n"
ALIBABA = "name,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"


def write(tmp_path: Path, text: str, name: str = "t.csv") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_a_quote_left_open_is_an_error_on_its_line_not_rows_swallowed(tmp_path):
    rows = "".join(f"{i},{i},10,1,a,\n" for i in range(2, 30))
    path = write(tmp_path, PHILLY + '1,0,10,1,"a,\n' + rows)
    with pytest.raises(TraceFormatError) as exc:
        load_philly(path, on_bad="skip")
    assert exc.value.line == 2
    assert "not valid CSV: unexpected end of data (the row starting here runs on to line 30" in str(exc.value)


def test_a_field_past_the_csv_limit_names_its_line(tmp_path):
    path = write(tmp_path, PHILLY + "1,0,10,1,a,\n2,0,10,1," + "x" * 200_000 + ",\n")
    with pytest.raises(TraceFormatError, match=r"line 3: not valid CSV: field larger than field limit"):
        load_philly(path)


def test_blank_header_names_still_count_as_columns(tmp_path):
    path = write(tmp_path, "job_id,submit_time_s,duration_s,num_gpus,tenant,,,gpu_type\n1,0,10,1,a,,\n")
    with pytest.raises(TraceFormatError) as exc:
        load_philly(path)
    assert str(exc.value) == f"{path} line 2: row: expected 8 columns, got 7"


@pytest.mark.parametrize("gpu_type", ["A/B", "T4:1/0"])
def test_a_philly_type_the_sharing_rules_cannot_read_is_a_bad_row(tmp_path, gpu_type):
    path = write(tmp_path, PHILLY + f"1,0,10,1,a,{gpu_type}\n2,0,10,1,a,V100\n")
    with pytest.raises(TraceFormatError, match=r"line 2: gpu_type: accelerator "):
        load_philly(path)
    res = load_philly(path, on_bad="skip")
    assert [j.job_id for j in res.rows] == ["2"] and dict(res.skipped) == {"gpu_type": 1}


def test_an_alibaba_spec_that_is_already_a_slice_is_a_bad_row(tmp_path):
    path = write(tmp_path, ALIBABA + "p1,1,100,T4:1/2,LS,Running,0,100,10\n")
    with pytest.raises(TraceFormatError, match=r"line 2: gpu_type: accelerator 'T4:1/2:1/8'"):
        load_alibaba2023(path)


def test_an_unknown_pod_phase_is_a_bad_row(tmp_path):
    path = write(tmp_path, ALIBABA + "p1,1,1000,T4,LS,Exploded,0,100,10\n")
    with pytest.raises(TraceFormatError, match=r"line 2: pod_phase: expected one of Pending, Running, Succeeded, "
                                               r"Failed, Unknown \(or empty\), got 'Exploded'"):
        load_alibaba2023(path)


def test_num_gpus_outside_its_own_range_is_a_bad_row(tmp_path):
    path = write(tmp_path, CANONICAL + "1,0,10,2,a,8,16\n")
    with pytest.raises(TraceFormatError) as exc:
        load_canonical(path)
    assert str(exc.value) == (f"{path} line 2: num_gpus: 2 lies outside the job's range [min_gpus, max_gpus] "
                              "= [8, 16]")


@pytest.mark.parametrize("text", ["1_000", "\u0663"])
def test_numbers_are_plain_ascii_decimals(tmp_path, text):
    path = write(tmp_path, PHILLY + f"1,0,10,{text},a,\n")
    with pytest.raises(TraceFormatError, match=r"line 2: num_gpus: expected an integer"):
        load_philly(path)


def test_a_number_of_thousands_of_digits_is_named_not_the_interpreters_limit(tmp_path):
    path = write(tmp_path, PHILLY + f"1,0,10,{'9' * 5000},a,\n")
    with pytest.raises(TraceFormatError) as exc:
        load_philly(path)
    assert "num_gpus: expected an integer, got 5000 characters" in str(exc.value)
    assert "set_int_max_str_digits" not in str(exc.value)


def test_integral_floats_and_exponents_still_read(tmp_path):
    path = write(tmp_path, PHILLY + "1,1e3,2.5E2,8.0,a,\n")
    job = load_philly(path).rows[0]
    assert (job.submit_time_s, job.duration_s, job.num_gpus) == (1000.0, 250.0, 8)


def test_a_machine_listed_twice_is_refused(tmp_path):
    path = write(tmp_path, "machine_id,num_gpus,gpu_mem_gb\nm0,8,24\nm0,8,24\n")
    with pytest.raises(TraceFormatError) as exc:
        philly_fleet(path)
    assert str(exc.value) == f"{path} line 3: machine_id: duplicate 'm0' (first on line 2)"


def test_a_short_machine_row_names_the_columns_it_lacks(tmp_path):
    path = write(tmp_path, "machine_id,num_gpus,gpu_mem_gb\nm0,8\n")
    with pytest.raises(TraceFormatError) as exc:
        philly_fleet(path)
    assert str(exc.value) == f"{path} line 2: row: expected 3 columns, got 2"


def test_an_alibaba_node_listed_twice_is_refused(tmp_path):
    path = write(tmp_path, "sn,gpu,model\nn1,8,V100\nn1,8,V100\n")
    with pytest.raises(TraceFormatError, match=r"line 3: sn: duplicate 'n1' \(first on line 2\)"):
        alibaba_fleet(path)


def test_a_world_size_near_the_limit_grants_exactly_its_divisors_in_order():
    # 3 x 5^2 x 11 x 31 x 41: 48 divisors, found in about a thousand steps rather than a million
    r = world_size_replicas(4, 2**20 - 1)
    assert r.allowed == [d for d in range(4, 2**20) if (2**20 - 1) % d == 0]
    assert len(r.allowed) == 46 and r.allowed[:4] == [5, 11, 15, 25]


def test_a_device_of_nul_bytes_is_refused_at_its_first_chunk_not_after_a_gib():
    with pytest.raises(TraceFormatError) as exc:
        open_csv("/dev/zero")
    assert str(exc.value) == "/dev/zero line 1: a NUL character: not a text file"


def test_a_fleet_file_error_names_the_file_once(tmp_path):
    from datasets.fleets import load_fleet
    from models import BadRequest

    path = write(tmp_path, "", "fleet.json")
    with pytest.raises(BadRequest) as exc:
        load_fleet(path)
    assert exc.value.errors[0].message == (f"fleet {path}: not valid JSON: Expecting value: line 1 column 1 "
                                           "(char 0)")
