"""Shared by the service tests: the contract's independent checker, the example request, and a real
`meridian serve` process on a loopback port."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

from tests.support import checker

REPO = Path(__file__).resolve().parents[2]
SHARED, PLANCHECK = checker.SHARED, checker.PLANCHECK
EXAMPLE = REPO / "examples" / "two-regions.json"
PG_ENV = "MERIDIAN_TEST_PG_URL"
PG_SKIP_REASON = f"{PG_ENV} is not set (CI's .ci/run starts a local PostgreSQL and sets it)"


def pg_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def example_request() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text())


def plancheck(request: dict[str, Any], response: dict[str, Any], lp: bool = True) -> dict[str, Any]:
    """The checker's verdict, exactly as `plancheck.py REQUEST RESPONSE [--lp]` prints it."""
    mod = checker.load()
    assert mod is not None, checker.MISSING
    with tempfile.TemporaryDirectory() as d:
        rq, rs = Path(d, "req.json"), Path(d, "resp.json")
        rq.write_text(json.dumps(request))
        rs.write_text(json.dumps(response))
        out = io.StringIO()
        argv = sys.argv
        sys.argv = ["plancheck.py", str(rq), str(rs)] + (["--lp"] if lp else [])
        try:
            with contextlib.redirect_stdout(out):
                mod.main()
        finally:
            sys.argv = argv
    return json.loads(out.getvalue().strip().splitlines()[-1])


def assert_plan_passes(request: dict[str, Any], response: dict[str, Any], lp: bool = True) -> dict[str, Any]:
    """Every verdict plancheck gives must hold: valid, objective/breakdown/actions as the contract computes,
    every job placed or unplaced, bound and gap true, optimal only when proven, within the LP bound."""
    v = plancheck(request, response, lp=lp)
    assert "bad_request" not in v, v
    if response["status"] == "infeasible":
        assert v["infeasible_refuted"] is False, v
        return v
    for key in ("valid", "objective_matches", "breakdown_matches", "actions_match", "unplaced_complete",
                "bound_ok"):
        assert v[key] is True, (key, v)
    for key in ("gap_matches", "optimal_ok", "within_lp"):
        if key in v:
            assert v[key] is True, (key, v)
    return v


OPENSSL_SKIP_REASON = "openssl is not installed (makes the test certificate)"
HAS_OPENSSL = shutil.which("openssl") is not None


def self_signed(tmp: Path, ip: str = "127.0.0.1", passphrase: str | None = None) -> tuple[Path, Path]:
    """A fresh certificate for `ip` and its P-256 key in `tmp` (the key encrypted with `passphrase` when
    given), made by the openssl command: (cert.pem, key.pem)."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    secret = ["-passout", f"pass:{passphrase}"] if passphrase else ["-nodes"]
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", *secret,
                    "-days", "1", "-subj", "/CN=meridian-test", "-addext", f"subjectAltName=IP:{ip}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


# -- a real server process ------------------------------------------------------------------------------


class Server:
    """`meridian serve` as a subprocess on 127.0.0.1 and a port it picks itself (read from its log)."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None, name: str = "server"):
        self.tmp = tmp
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.starts = 0

    def start(self, timeout_s: float = 60.0) -> Server:
        self.starts += 1
        self.log_path = self.tmp / f"{self.name}-{self.starts}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", "0", *self.args],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            for line in self.log().splitlines():
                if '"listening"' in line:
                    self.port = json.loads(line)["port"]
                    return self
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"server did not start in {timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def conn(self, timeout_s: float = 60.0) -> http.client.HTTPConnection:
        assert self.port is not None
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout_s: float = 60.0) -> tuple[int, dict[str, str], bytes]:
        c = self.conn(timeout_s)
        try:
            c.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def kill(self) -> None:
        """kill -9: no shutdown of any kind."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def terminate(self, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def json_client(app: Any, **kwargs: Any) -> Any:
    """A TestClient that declares every body JSON, as a control plane does (POST /plan refuses others, 415)."""
    from fastapi.testclient import TestClient

    return TestClient(app, headers={"Content-Type": "application/json"}, **kwargs)
