"""`meridian serve` as a real process on a loopback port: the README's example, graceful shutdown,
and kill -9 under load losing nothing that was acknowledged."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Self

import pytest

from datasets.requests import generate_size
from models import parse_request
from service.app.store import PlanStore, request_digest
from tests.support.service import (
    EXAMPLE,
    PG_SKIP_REASON,
    Server,
    assert_plan_passes,
    example_request,
    pg_url,
)


def test_readme_example_plans_and_sigterm_exits_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "plans.sqlite"
    with Server(tmp_path, "--db-path", str(db)) as srv:
        status, headers, body = srv.request("POST", "/plan", EXAMPLE.read_bytes())
        assert status == 200, body
        plan = json.loads(body)
        assert_plan_passes(example_request(), plan)
        status, _, stored = srv.request("GET", headers["location"])
        assert status == 200 and json.loads(stored)["response"] == plan
        assert srv.request("GET", "/healthz")[0] == 200
        assert srv.request("GET", "/readyz")[0] == 200
        assert srv.terminate() == 0
        lines = [json.loads(line) for line in srv.log().splitlines() if line.startswith("{")]
    access = [ln for ln in lines if ln.get("msg") == "request" and ln.get("path") == "/plan"]
    assert access and access[0]["status"] == 200 and access[0]["request_id"] == headers["x-request-id"]
    assert any(ln.get("msg") == "planned" and ln.get("request_id") == headers["x-request-id"] for ln in lines)
    assert lines[-1]["msg"].startswith("Finished server process")


def _medium_request(seed: int, time_limit_s: float) -> dict[str, Any]:
    """A request the engine works on for its whole time limit (1,500 devices, 600 jobs)."""
    return generate_size("medium", seed=seed, time_limit_s=time_limit_s)


def test_sigterm_finishes_in_flight_plans_before_exiting(tmp_path: Path) -> None:
    db = tmp_path / "plans.sqlite"
    bodies = [json.dumps(_medium_request(seed, 1.5)).encode() for seed in (1, 2, 3)]
    results: list[tuple[int, bytes]] = []
    with Server(tmp_path, "--db-path", str(db), "--workers", "2") as srv:
        def send(body: bytes) -> None:
            status, _, resp = srv.request("POST", "/plan", body, timeout_s=60)
            results.append((status, resp))

        threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:        # wait until both workers are solving and the third is queued
            metrics = srv.request("GET", "/metrics")[2].decode()
            if "meridian_solves_in_progress 2.0" in metrics and "meridian_queue_depth 1.0" in metrics:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the plans never started solving")
        assert srv.terminate(timeout_s=60) == 0
        for t in threads:
            t.join(60)
    assert sorted(s for s, _ in results) == [200, 200, 200]
    store = PlanStore(f"sqlite:///{db}")
    try:
        for _, resp in results:
            rec = store.get(json.loads(resp)["plan_id"])
            assert rec is not None and rec.response == resp.decode()
    finally:
        store.close()


# -- kill -9 under load -------------------------------------------------------------------------------


class Load:
    """Client threads posting distinct requests (some with Idempotency-Keys) until told to stop or the
    server goes away; they remember every plan acknowledged to them."""

    def __init__(self, port: int, clients: int, seed: int, counter_start: int):
        self.port = port
        self.stop = threading.Event()
        self.acked: list[tuple[str, str | None, bytes, bytes]] = []   # plan_id, key, request, response
        self.lock = threading.Lock()
        self.counter = counter_start
        self.threads = [threading.Thread(target=self._run, args=(random.Random(seed * 100 + i),), daemon=True)
                        for i in range(clients)]

    def _next_body(self) -> bytes:
        with self.lock:
            self.counter += 1
            n = self.counter
        req = example_request()
        req["jobs"][0]["priority"] = 1.0 + n / 1000.0
        return json.dumps(req).encode()

    def _run(self, rng: random.Random) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            while not self.stop.is_set():
                body = self._next_body()
                key = uuid.uuid4().hex if rng.random() < 0.3 else None
                headers = {"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})}
                try:
                    conn.request("POST", "/plan", body=body, headers=headers)
                    r = conn.getresponse()
                    resp = r.read()
                except (OSError, http.client.HTTPException):
                    return                      # the server was killed
                if r.status == 200:
                    with self.lock:
                        self.acked.append((json.loads(resp)["plan_id"], key, body, resp))
        finally:
            conn.close()

    def __enter__(self) -> Self:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def _check_log_consistent(url: str, plan_ids: set[str]) -> int:
    """Every record parses, its digest is its request's, its response names it; returns how many of
    `plan_ids` it holds."""
    store = PlanStore(url)
    found = 0
    try:
        for rec in store.records():
            if rec.plan_id not in plan_ids:
                continue
            found += 1
            resp = json.loads(rec.response)
            assert resp["plan_id"] == rec.plan_id and resp["status"] == rec.status
            req = parse_request(json.loads(rec.request))
            assert request_digest(req) == rec.request_digest
    finally:
        store.close()
    return found


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_under_load_loses_no_acknowledged_plan(tmp_path: Path, backend: str) -> None:
    if backend == "postgresql":
        if pg_url() is None:
            pytest.skip(PG_SKIP_REASON)
        url = pg_url()
        args = ["--db-url", url]
    else:
        url = f"sqlite:///{tmp_path / 'plans.sqlite'}"
        args = ["--db-path", str(tmp_path / "plans.sqlite")]
    rounds = 3 if backend == "sqlite" else 2
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    print(f"kill -9 test seed {seed}")
    started = time.monotonic()
    srv = Server(tmp_path, *args, "--workers", "2")
    acked: list[tuple[str, str | None, bytes, bytes]] = []
    try:
        for rnd in range(rounds):
            srv.start()
            with Load(srv.port, clients=4, seed=seed + rnd, counter_start=rnd * 100_000) as load:
                time.sleep(rng.uniform(0.4, 1.5))
                srv.kill()
            acked += load.acked
        assert len(acked) >= 10, f"too little load reached the server to test anything (seed {seed})"

        srv.start()
        conn = srv.conn()
        for plan_id, key, body, resp in acked:
            conn.request("GET", f"/plans/{plan_id}")
            r = conn.getresponse()
            stored = r.read()
            assert r.status == 200, f"acknowledged plan {plan_id} lost (seed {seed})"
            rec = json.loads(stored)
            assert rec["response"] == json.loads(resp)
            assert rec["request"] == json.loads(body)
            if key is not None:                 # the key still answers with the same plan
                conn.request("POST", "/plan", body=body, headers={"Content-Type": "application/json", "Idempotency-Key": key})
                r = conn.getresponse()
                again = r.read()
                assert r.status == 200 and r.getheader("idempotent-replayed") == "true"
                assert json.loads(again)["plan_id"] == plan_id
        conn.close()
        assert srv.terminate() == 0
    finally:
        srv.kill()
    assert _check_log_consistent(url, {a[0] for a in acked}) == len(acked)
    print(f"{len(acked)} acknowledged plans over {rounds} kills survived ({time.monotonic() - started:.1f} s)")


def test_a_body_that_does_not_arrive_in_time_is_408(tmp_path: Path) -> None:
    import socket

    body = EXAMPLE.read_bytes()
    with Server(tmp_path, "--db-path", str(tmp_path / "plans.sqlite"), "--body-timeout-s", "0.5") as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
            s.sendall(b"POST /plan HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:100])
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        head, _, payload = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408")
        assert json.loads(payload)["error"] == "request_timeout"
        assert srv.request("GET", "/healthz")[0] == 200
