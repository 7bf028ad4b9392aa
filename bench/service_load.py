#!/usr/bin/env python3
"""Load benchmark of `meridian serve` on loopback (issues 3 and 10), printing figures and ratios.

Scenarios (each request varied so nothing is cached; no Idempotency-Keys; every plan durably recorded):
  latency     two-regions.json, one client: p50/p99 end to end (target 10 / 50 ms), beside the engine
              alone in-process and one raw durable SQLite commit, both measured in the same run, and
              the server's CPU per plan (what decides throughput on a shared machine)
  throughput  two-regions.json, eight clients: plans/s (target 200) and errors, server CPU per plan
  medium      64 clients, medium requests (1,500 devices, 600 jobs) for --medium-duration s: share of
              requests answered with a valid plan within 30 s, the rest 429; timeouts; /healthz p99
  kill        kill -9 of the server at random moments under load, restart: acknowledged plans lost,
              log records inconsistent

    .venv/bin/python bench/service_load.py                       # everything, about 2.5 minutes
    .venv/bin/python bench/service_load.py --scenarios latency,throughput --seed 7

Every server and client is on 127.0.0.1; every loop is bounded. The seed is printed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

EXAMPLE = REPO / "examples" / "two-regions.json"
PLANCHECK = Path(os.environ.get("MERIDIAN_SHARED", REPO.parent / "shared")) / "spec" / "plancheck.py"


# -- the server under test --------------------------------------------------------------------------


class ServerProcess:
    """`meridian serve` on 127.0.0.1 and a port of its choosing (read from its `listening` log line)."""

    def __init__(self, workdir: Path, args: list[str]):
        self.workdir = workdir
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0

    def start(self, timeout_s: float = 60) -> None:
        self.starts += 1
        self.log_path = self.workdir / f"server-{self.starts}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1",
                                          "--port", "0", "--log-level", "warning", *self.args],
                                         cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}: {self.log_path.read_text()}")
            for line in self.log_path.read_text(errors="replace").splitlines():
                if '"listening"' in line:
                    self.port = json.loads(line)["port"]
                    return
            time.sleep(0.05)
        self.kill()
        raise SystemExit(f"server did not start within {timeout_s} s")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.kill()


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects after an error."""

    IDLE_S = 4.0          # the server closes idle keep-alive connections after 5 s; never reuse one that old

    def __init__(self, port: int, timeout_s: float):
        self.port, self.timeout_s = port, timeout_s
        self.conn: http.client.HTTPConnection | None = None
        self.last_used = 0.0

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        if self.conn is not None and time.monotonic() - self.last_used > self.IDLE_S:
            self.close()
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
        try:
            self.conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            r = self.conn.getresponse()
            data = r.read()
            self.last_used = time.monotonic()
            if r.getheader("connection", "").lower() == "close":
                self.close()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# -- requests, each one different -------------------------------------------------------------------


class Variants:
    """Distinct bodies from one template: job 0's priority is nudged per request (a different plan request,
    the same work), so no cache or idempotency layer could answer from memory."""

    MARK = 7654321.125      # stands in for job 0's priority in the serialized template

    def __init__(self, template: dict[str, Any]):
        self.counter = 0
        self.lock = threading.Lock()
        self.base = float(template["jobs"][0].get("priority", 1.0))
        req = {**template, "jobs": [{**template["jobs"][0], "priority": self.MARK}, *template["jobs"][1:]]}
        head, tail = json.dumps(req, separators=(",", ":")).encode().split(repr(self.MARK).encode())
        self.head, self.tail = head, tail       # serialized once: the client's CPU goes to the server

    def next(self) -> bytes:
        with self.lock:
            self.counter += 1
            n = self.counter
        return self.head + repr(round(self.base * (1 + (n % 99991) * 1e-7), 12)).encode() + self.tail


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def ms(x: float) -> float:
    return round(x * 1000, 2)


def report(name: str, figures: dict[str, Any]) -> dict[str, Any]:
    print(json.dumps({"scenario": name, **figures}), flush=True)
    return figures


# -- scenarios ---------------------------------------------------------------------------------------


def engine_baseline(n: int) -> dict[str, float]:
    """The engine alone, in this process: what the service adds is the rest."""
    from models import parse_request_json
    from placement import plan

    variants = Variants(json.loads(EXAMPLE.read_text()))
    for _ in range(20):                                   # the same warm-up the service gets
        plan(parse_request_json(variants.next()))
    times = []
    for _ in range(n):
        body = variants.next()
        t0 = time.perf_counter()
        plan(parse_request_json(body))
        times.append(time.perf_counter() - t0)
    return {"p50_ms": ms(pct(times, 50)), "p99_ms": ms(pct(times, 99))}


def raw_commit_baseline(work: Path, n: int = 200) -> dict[str, float]:
    """One durable SQLite commit (WAL, synchronous=FULL, a plan-sized row) on the disk the plan log uses:
    the floor a durably recorded plan cannot go under, measured in the same run."""
    import sqlite3

    conn = sqlite3.connect(work / "raw-commit.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (body TEXT)")
    row = "x" * 4000
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (?)", (row,))
        conn.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    conn.close()
    return {"p50_ms": ms(pct(times, 50)), "p99_ms": ms(pct(times, 99))}


def server_cpu_s(srv: ServerProcess) -> float:
    """CPU seconds (user + system) the server process has used so far (Linux /proc), 0 elsewhere."""
    try:
        fields = Path(f"/proc/{srv.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, AttributeError, IndexError, ValueError):
        return 0.0


def scenario_latency(srv: ServerProcess, n: int) -> dict[str, Any]:
    load = round(os.getloadavg()[0], 2)
    base = engine_baseline(n)
    raw = raw_commit_baseline(srv.workdir)
    variants = Variants(json.loads(EXAMPLE.read_text()))
    c = Client(srv.port, 30)
    for _ in range(20):                                   # warm up connection, pools, caches of imports
        c.call("POST", "/plan", variants.next())
    lat, errors = [], 0
    cpu0 = server_cpu_s(srv)
    for _ in range(n):
        body = variants.next()
        t0 = time.perf_counter()
        status, _, _ = c.call("POST", "/plan", body)
        lat.append(time.perf_counter() - t0)
        errors += status != 200
    cpu_ms = (server_cpu_s(srv) - cpu0) / n * 1000
    c.close()
    p50, p99 = pct(lat, 50), pct(lat, 99)
    return report("latency", {
        "requests": n, "errors": errors, "p50_ms": ms(p50), "p99_ms": ms(p99),
        "target_p50_ms": 10, "target_p99_ms": 50,
        "p50_vs_target": round(p50 * 1000 / 10, 3), "p99_vs_target": round(p99 * 1000 / 50, 3),
        "engine_alone_p50_ms": base["p50_ms"], "engine_alone_p99_ms": base["p99_ms"],
        "p50_vs_engine_alone": round(ms(p50) / base["p50_ms"], 2) if base["p50_ms"] else None,
        "raw_durable_commit_p50_ms": raw["p50_ms"], "raw_durable_commit_p99_ms": raw["p99_ms"],
        "server_cpu_ms_per_plan": round(cpu_ms, 2),
        "load_before": load, "load_after": round(os.getloadavg()[0], 2),
        "met": errors == 0 and p50 <= 0.010 and p99 <= 0.050,
    })


def _closed_loop(port: int, clients: int, duration_s: float, variants: Variants, timeout_s: float,
                 keep_bodies: bool = False) -> dict[str, Any]:
    """`clients` threads each sending one request after another for `duration_s`, honouring Retry-After."""
    stop_at = time.monotonic() + duration_s
    lock = threading.Lock()
    out: dict[str, Any] = {"lat_ok": [], "status": {}, "timeouts": 0, "conn_errors": 0, "late": 0, "kept": []}

    def run(i: int) -> None:
        c = Client(port, timeout_s)
        while time.monotonic() < stop_at:
            body = variants.next()
            t0 = time.perf_counter()
            try:
                status, headers, data = c.call("POST", "/plan", body)
            except TimeoutError:
                with lock:
                    out["timeouts"] += 1
                continue
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    out["conn_errors"] += 1
                    out.setdefault("conn_error_kinds", {}).setdefault(type(exc).__name__, 0)
                    out["conn_error_kinds"][type(exc).__name__] += 1
                time.sleep(0.1)
                continue
            dt = time.perf_counter() - t0
            with lock:
                out["status"][status] = out["status"].get(status, 0) + 1
                if status == 200:
                    out["lat_ok"].append(dt)
                    if dt > 30:
                        out["late"] += 1
                    if keep_bodies:
                        out["kept"].append((body, data))
            if status == 429:
                wait = float(headers.get("retry-after", "1"))
                time.sleep(min(wait, max(0.0, stop_at - time.monotonic())))
        c.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + timeout_s + 30)
    out["elapsed_s"] = time.monotonic() - t0
    return out


def scenario_throughput(srv: ServerProcess, duration_s: float) -> dict[str, Any]:
    load = round(os.getloadavg()[0], 2)
    variants = Variants(json.loads(EXAMPLE.read_text()))
    cpu0 = server_cpu_s(srv)
    r = _closed_loop(srv.port, 8, duration_s, variants, timeout_s=30)
    cpu_s = server_cpu_s(srv) - cpu0
    ok = r["status"].get(200, 0)
    errors = sum(v for k, v in r["status"].items() if k != 200) + r["timeouts"] + r["conn_errors"]
    rate = ok / duration_s
    return report("throughput", {
        "clients": 8, "duration_s": duration_s, "plans": ok, "plans_per_s": round(rate, 1), "errors": errors,
        "status": r["status"], "p50_ms": ms(pct(r["lat_ok"], 50)), "p99_ms": ms(pct(r["lat_ok"], 99)),
        "server_cpu_ms_per_plan": round(cpu_s / max(ok, 1) * 1000, 2),
        "load_before": load, "load_after": round(os.getloadavg()[0], 2),
        "target_plans_per_s": 200, "vs_target": round(rate / 200, 3), "met": errors == 0 and rate >= 200,
    })


def _plancheck(request: bytes, response: bytes) -> bool:
    """The contract's checker (without --lp) on one plan: valid and scored as the contract scores it."""
    with tempfile.TemporaryDirectory() as d:
        rq, rs = Path(d, "q.json"), Path(d, "s.json")
        rq.write_bytes(request)
        rs.write_bytes(response)
        out = subprocess.run([sys.executable, str(PLANCHECK), str(rq), str(rs)], capture_output=True, text=True,
                             timeout=300, check=False)
    v = json.loads(out.stdout.strip().splitlines()[-1])
    if json.loads(response)["status"] == "infeasible":
        return v.get("infeasible_refuted") is False
    return all(v.get(k) is True for k in ("valid", "objective_matches", "breakdown_matches", "actions_match",
                                          "unplaced_complete", "bound_ok"))


def scenario_medium(srv: ServerProcess, duration_s: float, time_limit_s: float, seed: int,
                    check: int) -> dict[str, Any]:
    from datasets.requests import generate_size

    templates = [Variants(generate_size("medium", seed=seed + k, time_limit_s=time_limit_s)) for k in range(4)]
    rr = {"i": 0}

    class Mixed(Variants):
        def __init__(self) -> None:
            self.lock = threading.Lock()

        def next(self) -> bytes:
            with self.lock:
                rr["i"] += 1
                v = templates[rr["i"] % len(templates)]
            return v.next()

    # /healthz is probed from its own process, so the 64 client threads' GIL does not delay the probe.
    prober = subprocess.Popen([sys.executable, __file__, "--probe-healthz", str(srv.port)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    r = _closed_loop(srv.port, 64, duration_s, Mixed(), timeout_s=60, keep_bodies=True)
    probed = json.loads(prober.communicate("", timeout=60)[0])
    probe, probe_errors = probed["latencies_s"], [probed["errors"]]

    total = sum(r["status"].values()) + r["timeouts"] + r["conn_errors"]
    ok = r["status"].get(200, 0) - r["late"]
    rejected = r["status"].get(429, 0)
    other = total - ok - rejected
    rng = random.Random(seed)
    sample = rng.sample(r["kept"], min(check, len(r["kept"])))
    valid = sum(_plancheck(b, d) for b, d in sample)
    return report("medium", {
        "clients": 64, "duration_s": duration_s, "time_limit_s": time_limit_s, "requests": total,
        "plans_within_30s": ok, "rejected_429": rejected, "other": other, "timeouts": r["timeouts"],
        "status": r["status"], "connection_errors": r.get("conn_error_kinds", {}),
        "share_planned": round(ok / total, 3) if total else None,
        "plan_p50_s": round(pct(r["lat_ok"], 50), 2), "plan_p99_s": round(pct(r["lat_ok"], 99), 2),
        "plans_checked": len(sample), "plans_valid": valid,
        "healthz_probes": len(probe), "healthz_errors": probe_errors[0], "healthz_p99_ms": ms(pct(probe, 99)),
        "target_share_planned": 0.9, "share_vs_target": round(ok / total / 0.9, 3) if total else None,
        "target_healthz_p99_ms": 100, "healthz_p99_vs_target": round(ms(pct(probe, 99)) / 100, 3),
        "met": bool(total) and ok / total >= 0.9 and other == 0 and pct(probe, 99) < 0.1 and valid == len(sample),
    })


def scenario_kill(workdir: Path, args: list[str], rounds: int, seed: int) -> dict[str, Any]:
    from models import parse_request
    from service.app.store import PlanStore, request_digest

    rng = random.Random(seed)
    db = workdir / "kill.sqlite"
    srv = ServerProcess(workdir, [*args, "--db-path", str(db)])
    variants = Variants(json.loads(EXAMPLE.read_text()))
    acked: list[tuple[str, bytes]] = []
    try:
        for _ in range(rounds):
            srv.start()
            lock = threading.Lock()
            stop = threading.Event()

            def run(stop: threading.Event = stop, lock: threading.Lock = lock) -> None:
                c = Client(srv.port, 30)
                while not stop.is_set():
                    try:
                        status, _, data = c.call("POST", "/plan", variants.next())
                    except (OSError, http.client.HTTPException):
                        return
                    if status == 200:
                        with lock:
                            acked.append((json.loads(data)["plan_id"], data))

            threads = [threading.Thread(target=run, daemon=True) for _ in range(8)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.5, 3.0))
            srv.kill()
            stop.set()
            for t in threads:
                t.join(30)
        srv.start()
        c = Client(srv.port, 30)
        lost = 0
        for plan_id, data in acked:
            status, _, stored = c.call("GET", f"/plans/{plan_id}")
            lost += status != 200 or json.loads(stored)["response"] != json.loads(data)
        c.close()
    finally:
        srv.stop()
    store = PlanStore(f"sqlite:///{db}")
    records = inconsistent = 0
    for rec in store.records():
        records += 1
        resp = json.loads(rec.response)
        digest = request_digest(parse_request(json.loads(rec.request)))
        inconsistent += resp.get("plan_id") != rec.plan_id or digest != rec.request_digest
    store.close()
    return report("kill", {"kills": rounds, "acknowledged": len(acked), "lost": lost, "records": records,
                           "inconsistent_records": inconsistent, "met": lost == 0 and inconsistent == 0})


def probe_healthz(port: int, interval_s: float = 0.1) -> None:
    """GET /healthz every `interval_s` until standard input closes; print the latencies as JSON."""
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    lat: list[float] = []
    errors = 0
    c = Client(port, 10)
    while not done.is_set():
        t0 = time.perf_counter()
        try:
            status, _, _ = c.call("GET", "/healthz")
            lat.append(time.perf_counter() - t0)
            errors += status != 200
        except (OSError, http.client.HTTPException):
            errors += 1
        done.wait(interval_s)
    print(json.dumps({"latencies_s": lat, "errors": errors}))


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--probe-healthz":
        probe_healthz(int(sys.argv[2]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", default="latency,throughput,medium,kill")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--latency-requests", type=int, default=500)
    ap.add_argument("--throughput-duration", type=float, default=10.0)
    ap.add_argument("--medium-duration", type=float, default=60.0)
    ap.add_argument("--medium-time-limit", type=float, default=1.0,
                    help="policy.time_limit_s of the medium requests (datasets/requests.py default)")
    ap.add_argument("--check-plans", type=int, default=20, help="medium plans to run through plancheck")
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--server-args", default="", help="extra `meridian serve` flags, e.g. '--workers 2'")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(10**6)
    scenarios = a.scenarios.split(",")
    print(json.dumps({"bench": "service_load", "seed": seed, "cpus": os.cpu_count(), "scenarios": scenarios,
                      "loadavg_before": [round(x, 2) for x in os.getloadavg()]}), flush=True)
    extra = a.server_args.split()
    results = {}
    with tempfile.TemporaryDirectory(prefix="meridian-bench-") as d:
        work = Path(d)
        if any(s in scenarios for s in ("latency", "throughput", "medium")):
            srv = ServerProcess(work, ["--db-path", str(work / "plans.sqlite"), *extra])
            srv.start()
            try:
                if "latency" in scenarios:
                    results["latency"] = scenario_latency(srv, a.latency_requests)
                if "throughput" in scenarios:
                    results["throughput"] = scenario_throughput(srv, a.throughput_duration)
                if "medium" in scenarios:
                    results["medium"] = scenario_medium(srv, a.medium_duration, a.medium_time_limit, seed,
                                                        a.check_plans)
            finally:
                srv.stop()
        if "kill" in scenarios:
            results["kill"] = scenario_kill(work, extra, a.kills, seed)
    print(json.dumps({"summary": {k: v["met"] for k, v in results.items()}, "seed": seed,
                      "loadavg_after": [round(x, 2) for x in os.getloadavg()]}), flush=True)
    return 0 if all(v["met"] for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
