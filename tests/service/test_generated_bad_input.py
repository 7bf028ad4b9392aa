"""Generated bad input (issue 9) for `meridian plan`, `meridian run` and `POST /plan`: one hostile change
to a valid document (an extreme number, a lone surrogate, a wrong type, a wrong encoding, a truncated or
empty file) gets exit 0 or exit 2 with one line per fault, never a traceback; the service answers 200 or
a 4xx, never a 5xx. Bounded and derandomized: the same cases every run, a few seconds per test."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from service.app import Settings, create_app
from tests.support.hostile import GENERATED, assert_clean_refusal, hostile_csv, hostile_json, run_cli
from tests.support.service import json_client

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((REPO / "examples" / "two-regions.json").read_text())
EXAMPLE["policy"]["time_limit_s"] = 0.2
RUN_FLEET = json.loads((REPO / "examples" / "run-fleet.json").read_text())
RUN_JOBS = json.loads((REPO / "examples" / "run-jobs.json").read_text())


@given(body=hostile_json(EXAMPLE))
@settings(GENERATED, max_examples=40)
def test_plan_cli_answers_hostile_requests_in_one_line(body: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "request.json")
        Path(path).write_bytes(body)
        code, out, err = run_cli(["plan", path, "--time-limit", "0.2"])
        assert_clean_refusal(code, err, "plan")
        if code == 0:
            assert json.loads(out)["status"] in ("optimal", "feasible", "fallback", "infeasible")


@given(body=hostile_json(RUN_JOBS), which=st.sampled_from(["jobs", "fleet"]))
@settings(GENERATED, max_examples=40)
def test_run_cli_answers_hostile_inputs_in_one_line(body: bytes, which: str) -> None:
    """`--json` names a folder that does not exist: checked after the inputs, so a valid input is refused
    there (exit 2) and no training process ever starts."""
    with tempfile.TemporaryDirectory() as d:
        fleet, jobs = Path(d, "fleet.json"), Path(d, "jobs.json")
        fleet.write_text(json.dumps(RUN_FLEET))
        jobs.write_text(json.dumps(RUN_JOBS))
        if which == "jobs":
            jobs.write_bytes(body)
        else:
            fleet.write_bytes(body.replace(b'"jobs"', b'"fleet"') if body.startswith(b"[") else body)
        code, _, err = run_cli(["run", str(fleet), str(jobs), "--json", os.path.join(d, "nodir", "out.json")])
        assert_clean_refusal(code, err, "run")
        assert code == 2


SERVICE_DIR = tempfile.mkdtemp(prefix="meridian-hostile-")


@given(body=hostile_json(EXAMPLE))
@settings(GENERATED, max_examples=60)
def test_service_answers_hostile_requests_with_200_or_4xx(body: bytes) -> None:
    with json_client(create_app(Settings(db_path=SERVICE_DIR + "/plans.sqlite", max_time_limit_s=1.0))) as c:
        r = c.post("/plan", content=body)
        assert r.status_code in (200, 413, 422), (r.status_code, r.text[:500])
        if r.status_code == 422:
            errs = r.json()["errors"]
            assert errs and all("path" in e and "value" in e for e in errs)
            r.text.encode("utf-8")


# -- replay and whatif -----------------------------------------------------------------------------------

TRACE_HEADER = ["job_id", "submit_time_s", "duration_s", "num_gpus", "tenant", "tier", "checkpoint_gb", "data_region"]
TRACE_ROWS = [["j1", "0", "600", "2", "a", "premium", "4", "r"], ["j2", "60", "1200", "4", "b", "", "", ""],
              ["j3", "120", "300", "1", "a", "basic", "1.5", "r"]]
REPLAY_FLEET = {"regions": [{"name": "r"}],
                "clusters": [{"name": "c", "region": "r",
                              "node_groups": [{"prefix": "n", "count": 2, "accelerator": "GPU", "devices": 8}]}]}


@given(body=hostile_csv(TRACE_HEADER, TRACE_ROWS))
@settings(GENERATED, max_examples=40)
def test_replay_cli_answers_hostile_traces_in_one_line(body: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        Path(d, "t.csv").write_bytes(body)
        Path(d, "fleet.json").write_text(json.dumps(REPLAY_FLEET))
        code, _, err = run_cli(["replay", "--trace", str(Path(d, "t.csv")), "--format", "canonical",
                                "--fleet", str(Path(d, "fleet.json")), "--policy", "fifo", "--epoch-s", "60",
                                "--max-days", "1", "--no-plots", "--out", str(Path(d, "out"))])
        assert_clean_refusal(code, err, "replay")
        if code == 2:
            assert not Path(d, "out", "summary.json").exists()


@given(body=hostile_json(REPLAY_FLEET))
@settings(GENERATED, max_examples=30)
def test_replay_cli_answers_hostile_fleets_in_one_line(body: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        Path(d, "t.csv").write_text("\n".join(",".join(r) for r in [TRACE_HEADER, *TRACE_ROWS]) + "\n")
        Path(d, "fleet.json").write_bytes(body)
        code, _, err = run_cli(["replay", "--trace", str(Path(d, "t.csv")), "--format", "canonical",
                                "--fleet", str(Path(d, "fleet.json")), "--policy", "fifo", "--epoch-s", "60",
                                "--max-days", "1", "--no-plots", "--out", str(Path(d, "out"))])
        assert_clean_refusal(code, err, "replay")


WHATIF = {"base": {"trace": "synthetic:1", "fleet": "single:2x8", "policy": "fifo", "warmup_days": 0,
                   "epoch_s": 300, "time_limit_s": 0.3, "sla_targets": {"premium": 0.95}},
          "scenarios": [{"name": "today"}, {"name": "more", "add_nodes": [{"cluster": "cluster-0", "accelerator": "GPU",
                                                                            "devices": 8, "count": 2}]},
                        {"name": "down", "outages": ["region:region-0@0.5+1"], "demand_scale": 1.5}],
          "find_min_capacity": {"cluster": "cluster-0", "accelerator": "GPU", "devices": 8, "max_nodes": 4,
                                "targets": {"premium": 0.9}}}


@given(body=hostile_json(WHATIF))
@settings(GENERATED, max_examples=60)
def test_whatif_cli_answers_hostile_files_in_one_line(body: bytes) -> None:
    """JSON is YAML: the file is a valid what-if file with one hostile change. `--out` names a regular
    file, checked after the whole file is: a valid file is refused there (exit 2) and nothing replays."""
    with tempfile.TemporaryDirectory() as d:
        Path(d, "s.yaml").write_bytes(body)
        Path(d, "taken").write_text("")
        code, _, err = run_cli(["whatif", str(Path(d, "s.yaml")), "--jobs", "1", "--no-plots",
                                "--out", str(Path(d, "taken"))])
        assert_clean_refusal(code, err, "whatif")
        assert code == 2
        assert sorted(p.name for p in Path(d).iterdir()) == ["s.yaml", "taken"]


# -- serve and executor-check: hostile flag values ---------------------------------------------------------

FLAG_VALUES = ["0", "-1", "1", "1e400", "nan", "inf", "-inf", str(10**30), "9" * 5000, "abc", "", " ", "0x10",
               "1e-9", "2.5", "/proc/x", "/dev/null", "\u00e9"]
SERVE_FLAGS = ["--port", "--workers", "--queue", "--max-wait-s", "--min-budget-s", "--solver-nice",
               "--max-body-bytes", "--body-timeout-s", "--max-jobs", "--max-nodes", "--max-devices",
               "--max-time-limit-s", "--shutdown-grace-s", "--log-level", "--api-token-file", "--tls-cert"]


@given(flags=st.lists(st.tuples(st.sampled_from(SERVE_FLAGS), st.sampled_from(FLAG_VALUES)), min_size=1, max_size=3))
@settings(GENERATED, max_examples=40)
def test_serve_answers_hostile_flags_in_one_line(flags: list[tuple[str, str]]) -> None:
    """The plan log's folder is a regular file: a server whose flags are all fine is refused there (exit 2)
    before it listens, so no case starts a server."""
    with tempfile.TemporaryDirectory() as d:
        Path(d, "file").write_text("")
        argv = ["serve", "--db-path", str(Path(d, "file", "plans.sqlite"))]
        for flag, value in flags:
            argv += [flag, value]
        code, _, err = run_cli(argv)
        assert_clean_refusal(code, err, "serve")
        assert code == 2


@given(flags=st.lists(st.tuples(st.sampled_from(["--steps", "--hidden", "--seed"]), st.sampled_from(FLAG_VALUES)),
                      max_size=3))
@settings(GENERATED, max_examples=30)
def test_executor_check_answers_hostile_flags_in_one_line(flags: list[tuple[str, str]]) -> None:
    """--workdir is a folder that is not empty: checked after the flags, so a valid set is refused there
    (exit 2) and no training starts."""
    with tempfile.TemporaryDirectory() as d:
        Path(d, "taken").write_text("")
        argv = ["executor-check", "--workdir", d]
        for flag, value in flags:
            argv += [flag, value]
        code, _, err = run_cli(argv)
        assert_clean_refusal(code, err, "executor-check")
        assert code == 2
