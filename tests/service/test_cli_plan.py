"""`meridian plan` from the command line: files, stdin, -o, and clean refusals."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

from tests.support.processes import fresh_python

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "two-regions.json"


def meridian(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], input=stdin, capture_output=True, check=False,
                          cwd=ROOT, timeout=120)


def test_plans_the_bundled_example_to_stdout():
    p = meridian("plan", str(EXAMPLE))
    assert p.returncode == 0, p.stderr
    resp = json.loads(p.stdout)
    assert resp["status"] == "optimal"
    assert {a["job"] for a in resp["assignments"]} | {u["job"] for u in resp["unplaced"]} == {
        "llm-pretrain", "vision-ft", "speech-sweep-1", "speech-sweep-2", "rl-agent", "eu-resident"}


def test_reads_standard_input_and_writes_the_output_file(tmp_path):
    out = tmp_path / "plan.json"
    p = meridian("plan", "-", "-o", str(out), stdin=EXAMPLE.read_bytes())
    assert p.returncode == 0 and p.stdout == b""
    assert json.loads(out.read_text())["objective"] > 0


def test_the_plan_is_never_written_over_its_own_request(tmp_path):
    req = tmp_path / "req.json"
    req.write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "link.json").symlink_to(req)
    p = meridian("plan", str(req), "-o", str(tmp_path / "link.json"))
    assert p.returncode == 2 and p.stderr.decode().strip() == (
        f"meridian plan: -o {tmp_path / 'link.json'}: {tmp_path / 'link.json'} is the input file {req}: "
        "writing there would replace it")
    assert req.read_bytes() == EXAMPLE.read_bytes()


def test_greedy_flag_plans_with_the_greedy_alone():
    p = meridian("plan", str(EXAMPLE), "--greedy")
    assert p.returncode == 0, p.stderr
    stats = json.loads(p.stdout)["stats"]
    # the greedy's plan, and neither the LP nor CP-SAT ran (the full planner also picks the greedy's
    # plan on this example, so the engine's name alone cannot tell the two apart)
    assert stats["engine"] == "greedy"
    assert stats["cpsat_status"] is None and stats["cpsat_variables"] == 0
    assert not {"lp", "lp_rounding", "cpsat"} & set(stats["phases_s"])


def test_bad_request_exits_2_with_the_field_and_no_traceback(tmp_path):
    data = json.loads(EXAMPLE.read_text())
    data["jobs"][0]["replicas"]["min"] = 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    p = meridian("plan", str(bad))
    assert p.returncode == 2
    assert b"jobs[0].replicas.min" in p.stderr and b"Traceback" not in p.stderr


def test_missing_file_exits_2_cleanly():
    p = meridian("plan", "/nonexistent/request.json")
    assert p.returncode == 2 and b"cannot read" in p.stderr and b"Traceback" not in p.stderr


def test_malformed_json_exits_2_cleanly():
    p = meridian("plan", "-", stdin=b"{not json")
    assert p.returncode == 2 and b"not valid JSON" in p.stderr and b"Traceback" not in p.stderr


def test_planning_from_the_command_line_loads_no_web_stack(tmp_path):
    # every command builds the `serve` parser; the app behind it (FastAPI, the pages, the plan log) is
    # for `meridian serve` alone
    code = ("import runpy, sys\n"
            f"sys.argv = ['meridian', 'plan', {str(EXAMPLE)!r}, '-o', {str(tmp_path / 'plan.json')!r}]\n"
            "try:\n    runpy.run_module('service.cli', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "web = sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette', 'jinja2', 'sqlalchemy'})\n"
            "print(','.join(web))\n")
    assert fresh_python(code) == ""
