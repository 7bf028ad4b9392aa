#!/usr/bin/env python3
"""Wall of one `POST /plan` on a planet-size request, from the request sent to the answer read.

Why: the contract's `time_limit_s` is what a control plane waits for; parsing a planet request is a
second of it, so the figure that matters is the whole round trip, not the engine's time alone.
`--tree` (repeatable) names source trees to compare (another checkout, e.g. `git archive main`
unpacked); their servers are alternated round by round so each pair shares the machine's load.

    .venv/bin/python bench/service_planet.py --rounds 2 --tree . --tree /tmp/main-tree
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def serve(tree: Path, db: Path, port_file: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`meridian serve` from `tree` with one worker; returns the process and its port."""
    log = open(port_file, "wb")     # noqa: SIM115 - the server writes it while it runs
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                             "--workers", "1", "--db-path", str(db), "--log-level", "warning"],
                            cwd=tree, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server from {tree} exited: {port_file.read_text(errors='replace')}")
        for line in port_file.read_text(errors="replace").splitlines():
            if '"listening"' in line:
                return proc, json.loads(line)["port"]
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"server from {tree} did not start")


def post(port: int, body: bytes) -> dict:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    c.request("POST", "/plan", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    wall = time.perf_counter() - t0
    resp = json.loads(data)
    stats = resp.get("stats") or {}
    return {"http": r.status, "wall_s": round(wall, 3), "solve_s": resp.get("solve_s"),
            "parse_phase_s": (stats.get("phases_s") or {}).get("parse"), "status": resp.get("status"),
            "objective": resp.get("objective"), "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="planet")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tree", action="append", type=Path, help="source tree to serve from (default: this one)")
    args = ap.parse_args()
    from datasets.requests import generate_family

    req = generate_family(args.family, args.seed)
    req["policy"]["time_limit_s"] = args.time_limit
    body = json.dumps(req).encode()
    trees = [t.resolve() for t in (args.tree or [REPO])]
    print(json.dumps({"bench": "service_planet", "family": args.family, "seed": args.seed, "bytes": len(body),
                      "jobs": len(req["jobs"]), "time_limit_s": args.time_limit, "loadavg": os.getloadavg()}))
    with tempfile.TemporaryDirectory(prefix="meridian-planet-") as tmp:
        for r in range(args.rounds):
            order = trees if r % 2 == 0 else trees[::-1]
            for i, tree in enumerate(order):
                proc, port = serve(tree, Path(tmp) / f"plans-{r}-{i}.sqlite", Path(tmp) / f"server-{r}-{i}.log")
                try:
                    print(json.dumps({"round": r, "tree": str(tree), **post(port, body)}), flush=True)
                finally:
                    proc.terminate()
                    proc.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
