"""The cases of issue 9 for `meridian plan` and `meridian run`, each one line and exit 2, checked before any
work: a bad `-o`, an input without end, a lone surrogate, an unbounded flag, a train spec that would hang."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.hostile import run_cli
from tests.support.service import HAS_OPENSSL, OPENSSL_SKIP_REASON, self_signed

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "examples" / "two-regions.json")
RUN_FLEET = str(REPO / "examples" / "run-fleet.json")
RUN_JOBS = json.loads((REPO / "examples" / "run-jobs.json").read_text())


def one_line(argv: list[str]) -> str:
    code, out, err = run_cli(argv)
    assert code == 2, (code, err)
    assert "Traceback" not in err and out == ""
    lines = err.strip().splitlines()
    assert len(lines) <= 2, err
    return err.strip()


def test_plan_output_in_a_missing_folder_is_refused_before_planning(tmp_path: Path) -> None:
    assert one_line(["plan", EXAMPLE, "-o", str(tmp_path / "nodir" / "out.json")]) == \
        f"meridian plan: -o {tmp_path}/nodir/out.json: no folder {tmp_path}/nodir"


def test_plan_output_naming_a_folder_is_refused(tmp_path: Path) -> None:
    assert one_line(["plan", EXAMPLE, "-o", str(tmp_path)]) == \
        f"meridian plan: -o {tmp_path}: {tmp_path} is a folder, not a file"


def test_plan_of_dev_zero_stops_at_the_input_cap() -> None:
    assert one_line(["plan", "/dev/zero"]) == \
        "meridian plan: request /dev/zero is larger than 256 MiB (the most a command reads)"


def test_plan_time_limit_must_be_finite() -> None:
    assert "--time-limit must be > 0 and at most 86400 s, got inf" in one_line(["plan", EXAMPLE, "--time-limit", "inf"])


def test_plan_with_a_lone_surrogate_prints_its_escape(tmp_path: Path) -> None:
    data = json.loads(Path(EXAMPLE).read_text())
    data["jobs"][0]["tenant"] = "PLACEHOLDER"
    path = tmp_path / "req.json"
    path.write_text(json.dumps(data).replace('"PLACEHOLDER"', '"\\udfff"'))
    err = one_line(["plan", str(path)])
    assert "jobs[0].tenant: holds a lone surrogate" in err


def test_plan_output_file_gets_the_usual_mode(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    code, _, err = run_cli(["plan", EXAMPLE, "--greedy", "-o", str(out)])
    assert code == 0, err
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    import os

    old = os.umask(0o022)
    os.umask(old)
    return old


@pytest.mark.parametrize(("field", "value", "words"), [
    ("world_size", 10**12, "'world_size' must be at most 1024"),
    ("hidden", 2**20, "parameters; at most 2,000,000,000"),
    ("lr", 1e309, "'lr' must be a finite number >= 0"),
])
def test_run_refuses_a_train_spec_that_would_hang_or_not_fit(tmp_path: Path, field: str, value, words: str) -> None:
    jobs = json.loads(json.dumps(RUN_JOBS))
    jobs[0]["train"][field] = value
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(jobs).replace("Infinity", "1e309"))
    code, _, err = run_cli(["run", RUN_FLEET, str(path)])
    assert code == 2 and words in err and "Traceback" not in err


def test_run_refuses_an_unbounded_submit_time(tmp_path: Path) -> None:
    jobs = json.loads(json.dumps(RUN_JOBS))
    jobs[1]["submit_s"] = 1e300
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(jobs))
    code, _, err = run_cli(["run", RUN_FLEET, str(path)])
    assert code == 2 and "jobs[1].submit_s" in err


@pytest.mark.parametrize(("flags", "words"), [
    (["--epoch-s", "1e-9"], "--epoch-s must be between 1 and 1e+07 s"),
    (["--time-limit", "inf"], "--time-limit must be > 0 and at most 86400"),
    (["--max-epochs", "10000000000"], "--max-epochs must be between 1 and 100000"),
])
def test_run_flags_are_bounded(flags: list[str], words: str, tmp_path: Path) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(RUN_JOBS))
    assert words in one_line(["run", RUN_FLEET, str(path), *flags])


def test_run_json_output_is_checked_before_the_run(tmp_path: Path) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(RUN_JOBS))
    assert "no folder" in one_line(["run", RUN_FLEET, str(path), "--json", str(tmp_path / "no" / "x.json")])


# -- meridian replay -------------------------------------------------------------------------------------

HEADER = "job_id,submit_time_s,duration_s,num_gpus,tenant"


def _replay(tmp_path: Path, trace_bytes: bytes | None = None, *flags: str, fleet: str = "single:2x8") -> tuple:
    argv = ["replay", "--fleet", fleet, "--out", str(tmp_path / "out"), "--no-plots", "--policy", "fifo", *flags]
    if trace_bytes is None:
        argv += ["--trace", "synthetic:1"]
    else:
        (tmp_path / "t.csv").write_bytes(trace_bytes)
        argv += ["--trace", str(tmp_path / "t.csv"), "--format", "canonical"]
    return run_cli(argv)


@pytest.mark.parametrize(("body", "words"), [
    (f"{HEADER}\nj\xe9,0,100,1,a\n".encode("latin-1"), "line 2: not UTF-8: byte 0xe9"),
    (b"job_id,job_id,submit_time_s,duration_s,num_gpus,tenant\n", "line 1: header names column 'job_id' twice"),
    (f"{HEADER},data_region\nj1,0,100,1,a,mars\n".encode(), "job 'j1' has data_region 'mars', not a region of"),
    (f"{HEADER}\nj1,0,100,{10**30},a\n".encode(), "line 2: num_gpus: at most 1048576"),
    (f"{HEADER}\nj1,1e300,100,1,a\n".encode(), "line 2: submit_time_s: at most 1e+10 s"),
])
def test_replay_refuses_a_bad_trace_in_one_line(tmp_path: Path, body: bytes, words: str) -> None:
    code, _, err = _replay(tmp_path, body)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out" / "summary.json").exists()


def test_replay_accepts_a_byte_order_mark_in_the_header(tmp_path: Path) -> None:
    code, out, err = _replay(tmp_path, b"\xef\xbb\xbf" + f"{HEADER}\nj1,0,100,1,a\n".encode())
    assert code == 0, err
    assert "1/1 jobs done" in out


@pytest.mark.parametrize(("flags", "words"), [
    (["--epoch-s", "inf"], "--epoch-s must be a finite number, got inf"),
    (["--epoch-s", "1e-9"], "--epoch-s must be >= 1, got 1e-09"),
    (["--start-day", "nan"], "--start-day must be a finite number, got nan"),
    (["--start-day", "-5"], "--start-day must be >= 0, got -5.0"),
    (["--warmup-days", "nan"], "--warmup-days must be a finite number"),
    (["--max-days", "-1"], "--max-days must be > 0, got -1.0"),
    (["--time-limit", "inf"], "--time-limit must be a finite number"),
    (["--epoch-s", "2", "--max-days", "36000"], "epochs; at most 2,000,000"),
])
def test_replay_options_are_bounded(tmp_path: Path, flags: list[str], words: str) -> None:
    code, _, err = _replay(tmp_path, None, *flags)
    assert code == 2 and words in err, err


def test_replay_on_a_fleet_without_clusters_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fleet.json").write_text('{"regions": [{"name": "r"}], "clusters": []}')
    code, _, err = _replay(tmp_path, None, fleet=str(tmp_path / "fleet.json"))
    assert code == 2 and "fleet: it has no devices" in err


def test_replay_checks_its_outputs_before_it_starts(tmp_path: Path) -> None:
    (tmp_path / "out" / "jobs.csv").mkdir(parents=True)
    code, _, err = _replay(tmp_path, None)
    assert code == 2 and "jobs.csv is a folder" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["jobs.csv"]     # nothing else written


def test_replay_writes_the_summary_last_and_every_file_readable(tmp_path: Path) -> None:
    code, _, err = _replay(tmp_path, None)
    assert code == 0, err
    files = {p.name: p.stat() for p in (tmp_path / "out").iterdir()}
    assert set(files) == {"summary.json", "epochs.csv", "jobs.csv", "report.html"}
    assert max(files, key=lambda n: files[n].st_mtime_ns) == "summary.json"
    assert {s.st_mode & 0o777 for s in files.values()} == {0o666 & ~_umask()}


# -- meridian whatif -------------------------------------------------------------------------------------

WHATIF_BASE = "base: {trace: 'synthetic:1', fleet: 'single:2x8', policy: fifo, warmup_days: 0}\n"


def _whatif(tmp_path: Path, body: str | bytes, *flags: str) -> tuple:
    path = tmp_path / "s.yaml"
    path.write_bytes(body if isinstance(body, bytes) else (WHATIF_BASE + body).encode())
    return run_cli(["whatif", str(path), "--jobs", "1", "--no-plots", "--out", str(tmp_path / "out"), *flags])


@pytest.mark.parametrize(("body", "words"), [
    ('scenarios: [{name: "..", days: 1}, {name: b, days: 1}]', "scenarios[0].name: a scenario name is letters"),
    ('scenarios: [{name: "x/y"}, {name: x_y}]', "scenarios[0].name: a scenario name is letters"),
    ('scenarios: [{name: "x y"}, {name: x_y}]', "scenarios[1].name: 'x_y' would share the folder 'x_y'"),
    ('scenarios: [{name: a}, {name: A}]', "scenarios[1].name: 'A' would share the folder"),
    ('scenarios: [{name: a, epoch_s: 0}]', "scenarios[0].epoch_s: must be >= 1, got 0"),
    ('scenarios: [{name: a, epoch_s: .nan}]', "scenarios[0].epoch_s: must be a finite number, got .nan"),
    ('scenarios: [{name: a, epoch_s: -5}]', "scenarios[0].epoch_s: must be >= 1, got -5"),
    ('scenarios: [{name: a, epoch_s: 1.0e-9}]', "scenarios[0].epoch_s: must be >= 1"),
    ('scenarios: [{name: a, epoch_s: 1}]', "epochs; at most 2,000,000"),
    ('scenarios: [{name: a, days: 0}]', "scenarios[0].days: must be > 0, got 0"),
    ('scenarios: [{name: a, warmup_days: -1}]', "scenarios[0].warmup_days: must be >= 0, got -1"),
    ('scenarios: [{name: a, time_limit_s: 0}]', "scenarios[0].time_limit_s: must be > 0, got 0"),
    ('scenarios: [{name: a, time_limit_s: -1}]', "scenarios[0].time_limit_s: must be > 0, got -1"),
    ('scenarios: [{name: a, sla_targets: {gold: 2, premium: "x"}}]', "scenarios[0].sla_targets.gold: expected"),
    ('scenarios: [{name: a, trace: "\\udfff"}]', "scenarios[0].trace: holds a lone surrogate"),
    ("scenarios: [{name: a", "line 2: not valid YAML"),
    ("scenarios: [{name: a}]\nscenarios: [{name: b}]\n",
     "s.yaml line 3: not valid YAML: duplicate key 'scenarios' (also on line 2)"),
])
def test_whatif_refuses_a_bad_file_in_one_line_and_writes_nothing(tmp_path: Path, body: str, words: str) -> None:
    code, _, err = _whatif(tmp_path, body)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]        # nothing written, in --out or above


def test_whatif_refuses_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    code, _, err = _whatif(tmp_path, (WHATIF_BASE + "scenarios: [{name: caf\xe9}]\n").encode("latin-1"))
    assert code == 2 and "s.yaml line 2: not UTF-8: byte 0xe9" in err


def test_whatif_accepts_a_byte_order_mark_and_writes_only_under_out(tmp_path: Path) -> None:
    code, _out, err = _whatif(tmp_path, b"\xef\xbb\xbf" + (WHATIF_BASE + "scenarios: [{name: x y, days: 0.25}]\n").encode())
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s.yaml"]
    assert (tmp_path / "out" / "x_y" / "summary.json").exists()


def test_whatif_jobs_is_bounded(tmp_path: Path) -> None:
    code, _, err = _whatif(tmp_path, "scenarios: [{name: a}]", "--jobs", "100000")
    assert code == 2 and "--jobs must be between 1 and 64" in err


@pytest.mark.parametrize(("trace", "fleet", "words"), [
    ("synthetic:1e9", "single:2x8", "synthetic:DAYS: expected a number of days in (0, 365]"),
    ("synthetic:abc", "single:2x8", "synthetic:DAYS: expected a number of days"),
    ("synthetic:1", "synthetic:99999", "at most 64 regions of 10000 nodes per cluster"),
    ("synthetic:1", "single:99999999x8", "fleet.clusters[0].node_groups[0].count"),
])
def test_replay_builders_are_bounded(tmp_path: Path, trace: str, fleet: str, words: str) -> None:
    code, _, err = run_cli(["replay", "--trace", trace, "--fleet", fleet, "--out", str(tmp_path / "o")])
    assert code == 2 and words in err, err


def test_whatif_search_naming_a_missing_cluster_names_its_own_field(tmp_path: Path) -> None:
    code, _, err = _whatif(tmp_path, "scenarios: [{name: a}]\nfind_min_capacity: {cluster: nope, accelerator: H100, "
                           "devices: 8, targets: {premium: 0.9}}", "--find-min-capacity")
    assert code == 2 and "find_min_capacity.cluster" in err and "nope" in err and "add_nodes" not in err, err
    assert len(err.strip().splitlines()) == 1


def _meridian_sh(shell_tail: str) -> tuple[int, str]:
    import subprocess
    import sys

    cmd = f"{sys.executable} -m service.cli {shell_tail}"
    p = subprocess.run(["sh", "-c", cmd], capture_output=False, stderr=subprocess.PIPE, text=True, cwd=REPO,
                       timeout=120, check=False)
    return p.returncode, p.stderr.strip()


def test_a_plan_that_cannot_be_written_to_standard_output_is_one_line_and_exit_1() -> None:
    code, err = _meridian_sh(f"plan {EXAMPLE} > /dev/full")
    assert code == 1
    assert err == "meridian plan: cannot write the plan to standard output: No space left on device (give -o FILE)"


def test_a_plan_that_cannot_be_written_to_its_output_file_names_it_and_exits_1() -> None:
    code, err = _meridian_sh(f"plan {EXAMPLE} -o /dev/full")
    assert (code, err) == (1, "meridian plan: -o /dev/full: cannot write the plan: No space left on device")


def test_plan_output_given_empty_is_refused_before_planning() -> None:
    assert one_line(["plan", EXAMPLE, "-o", ""]) == "meridian plan: -o: must not be empty (a file for the plan)"


def test_a_plan_with_standard_output_closed_is_refused_before_planning() -> None:
    code, err = _meridian_sh(f"plan {EXAMPLE} >&-")
    assert (code, err) == (2, "meridian plan: standard output is closed: give -o FILE for the plan")


def test_serve_names_a_db_url_it_cannot_parse(tmp_path: Path) -> None:
    assert one_line(["serve", "--insecure-no-auth", "--port", "0", "--db-url", "::::"]) == (
        "meridian serve: --db-url ::::: not a SQLAlchemy URL (e.g. postgresql+psycopg://user:pw@127.0.0.1/meridian)")


def test_serve_names_a_host_it_cannot_listen_on(tmp_path: Path) -> None:
    err = one_line(["serve", "--insecure-no-auth", "--port", "0", "--host", "999.1.1.1",
                    "--db-path", str(tmp_path / "plans.sqlite")])
    # (the resolver's words vary: "Name or service not known", "Temporary failure in name resolution")
    assert err.startswith("meridian serve: --host 999.1.1.1: not an address to listen on (") and "\n" not in err


def test_serve_names_a_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = one_line(["serve", "--insecure-no-auth", "--port", str(port), "--db-path", str(tmp_path / "p.sqlite")])
    assert err == f"meridian serve: --host 127.0.0.1 --port {port}: cannot listen there (Address already in use)"


def test_serve_refuses_an_in_memory_sqlite_log() -> None:
    assert one_line(["serve", "--insecure-no-auth", "--port", "0", "--db-url", "sqlite:///:memory:"]) == (
        "meridian serve: --db-url sqlite:///:memory:: an in-memory SQLite plan log is not durable and each "
        "connection would see an empty one: give a file (--db-path, or sqlite:////path/to/file)")


def test_serve_names_a_database_driver_that_is_not_installed() -> None:
    assert one_line(["serve", "--insecure-no-auth", "--port", "0", "--db-url", "mysql://u:p@127.0.0.1:1/x"]) == (
        "meridian serve: --db-url mysql://u:***@127.0.0.1:1/x: its database driver is not installed (MySQLdb)")


def test_serve_reads_a_bounded_first_line_of_the_token_file() -> None:
    assert one_line(["serve", "--port", "0", "--api-token-file", "/dev/zero"]) == (
        "meridian serve: --api-token-file /dev/zero: its first line is longer than 4096 characters; the token "
        "is the first line")


def test_serve_db_path_flag_wins_over_the_db_url_variable(tmp_path: Path) -> None:
    from service.app.config import ConfigError, from_args
    from service.cli import build_parser

    args = build_parser().parse_args(["serve", "--db-path", str(tmp_path / "flag.sqlite")])
    settings = from_args(args, {"MERIDIAN_DB_URL": f"sqlite:///{tmp_path / 'env.sqlite'}"})
    assert settings.database_url() == f"sqlite:///{tmp_path / 'flag.sqlite'}"
    both = build_parser().parse_args(["serve", "--db-path", "a.sqlite", "--db-url", "sqlite:///b.sqlite"])
    with pytest.raises(ConfigError, match="--db-path and --db-url are both given"):
        from_args(both, {})


def test_serve_gives_up_on_a_database_that_accepts_and_never_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import service.app.store

    monkeypatch.setattr(service.app.store, "CONNECT_TIMEOUT_S", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        err = one_line(["serve", "--insecure-no-auth", "--port", "0", "--db-url",
                        f"postgresql+psycopg://u:p@127.0.0.1:{port}/x"])
    assert err.startswith(f"meridian serve: cannot open the plan log at postgresql+psycopg://u:***@127.0.0.1:{port}/x")


@pytest.mark.skipif(not HAS_OPENSSL, reason=OPENSSL_SKIP_REASON)
def test_serve_refuses_an_encrypted_tls_key_without_asking_for_its_passphrase(tmp_path: Path) -> None:
    """On a terminal too: OpenSSL would prompt there and wait, so the serve is run with a pseudo-terminal as
    its controlling terminal and nothing typed into it."""
    import fcntl
    import os
    import pty
    import subprocess
    import sys
    import termios

    cert, key = self_signed(tmp_path, passphrase="correct horse")
    primary, terminal = pty.openpty()

    def take_the_terminal() -> None:        # (runs in the child, after start_new_session's setsid)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "serve", "--port", "0", "--db-path", str(tmp_path / "p.sqlite"),
             "--tls-cert", str(cert), "--tls-key", str(key)],
            cwd=REPO, stdin=terminal, capture_output=True, text=True, timeout=60, check=False,
            start_new_session=True, preexec_fn=take_the_terminal)
    finally:
        os.close(primary)
        os.close(terminal)
    said = (f"meridian serve: --tls-key {key}: the private key is encrypted with a passphrase; serve needs an "
            f"unencrypted key (`openssl pkey -in {key} -out KEY.pem` writes one)\n")
    assert (done.returncode, done.stdout, done.stderr) == (2, "", said)


def test_serve_names_a_port_that_is_no_number() -> None:
    assert one_line(["serve", "--port", "http"]) == "meridian serve: --port http: must be a whole number, got 'http'"


def test_serve_names_a_duration_that_is_no_number() -> None:
    assert one_line(["serve", "--max-wait-s", "soon"]) == (
        "meridian serve: --max-wait-s soon: must be a number, got 'soon'")


def test_serve_refuses_a_folder_as_the_db_path(tmp_path: Path) -> None:
    assert one_line(["serve", "--port", "0", "--db-path", str(tmp_path)]) == (
        f"meridian serve: --db-path {tmp_path}: a folder, not the plan log's SQLite file "
        f"(e.g. {tmp_path}/meridian-plans.sqlite)")


def test_serve_refuses_a_folder_as_the_tls_key(tmp_path: Path) -> None:
    assert one_line(["serve", "--port", "0", "--db-path", str(tmp_path / "p.sqlite"), "--tls-cert", EXAMPLE,
                     "--tls-key", str(tmp_path)]) == f"meridian serve: --tls-key {tmp_path}: a folder, not a PEM file"


@pytest.mark.skipif(not HAS_OPENSSL, reason=OPENSSL_SKIP_REASON)
def test_serve_names_the_certificate_when_key_and_certificate_are_swapped(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    assert one_line(["serve", "--port", "0", "--db-path", str(tmp_path / "p.sqlite"), "--tls-cert", str(key),
                     "--tls-key", str(cert)]) == f"meridian serve: --tls-cert {key}: no PEM certificate in it"


@pytest.mark.skipif(not HAS_OPENSSL, reason=OPENSSL_SKIP_REASON)
def test_serve_names_a_tls_key_that_is_not_the_certificates(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, _ = self_signed(tmp_path / "a")
    _, other_key = self_signed(tmp_path / "b")
    assert one_line(["serve", "--port", "0", "--db-path", str(tmp_path / "p.sqlite"), "--tls-cert", str(cert),
                     "--tls-key", str(other_key)]) == (
        f"meridian serve: --tls-key {other_key}: not the private key of --tls-cert {cert}")
