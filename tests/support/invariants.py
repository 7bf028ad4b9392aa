"""The replay's invariants, checked on a finished run (shared by the fixture and real-trace tests)."""

from __future__ import annotations

import math
from collections import Counter


def check_invariants(run, speed_one: bool = True) -> None:
    """Every completed job received exactly its work; no job is lost or finishes twice; busy + paused + idle
    device-seconds equal capacity every epoch; every measured job finished or was rejected unless the
    replay hit its safety stop (`max_days` past the window); with speed 1 and no remote data, busy
    device-seconds equal the work done."""
    st = run.state
    received: Counter[str] = Counter()
    completions: Counter[str] = Counter()
    for rec in run.records:
        for jid, w in rec.work.items():
            received[jid] += w
        total = rec.busy_device_s + rec.paused_device_s + rec.idle_device_s
        assert math.isclose(total, rec.capacity_device_s, rel_tol=1e-9, abs_tol=1e-6), (rec.t_s, total)
        assert rec.busy_device_s >= 0 and rec.paused_device_s >= 0 and rec.idle_device_s >= -1e-6
    for jid in run.executor.finished:
        completions[jid] += 1
    done = [j for j, s in st.jobs.items() if s.status == "done"]
    assert sorted(done) == sorted(completions) and all(c == 1 for c in completions.values())
    assert sum(r.completions for r in run.records) == len(done)
    for jid in done:
        assert math.isclose(received[jid], run.specs[jid].work, rel_tol=1e-9), jid
        sp = run.specs[jid]
        fastest = sp.max_replicas * sp.devices_per_replica * max((sp.speed or {"": 1.0}).values())
        assert st.jobs[jid].finish_s >= sp.submit_s + sp.work / fastest - 1e-6
    for jid, spec in run.specs.items():
        s = st.jobs.get(jid)
        if s is None:               # never arrived: only possible after the loop stopped
            assert spec.submit_s >= st.now_s
            continue
        assert s.status in ("done", "rejected", "pending", "running"), jid
        if s.status in ("pending", "running"):
            assert received[jid] < spec.work
    unfinished = sorted(j for j in run.measured if j not in st.jobs or st.jobs[j].status not in ("done", "rejected"))
    if unfinished:
        end = run.measure_until_s if math.isfinite(run.measure_until_s) else max(s.submit_s for s in run.specs.values())
        safety_stop = end + run.setup.max_days * 86400.0
        assert st.now_s >= safety_stop, (f"replay stopped at {st.now_s} before its safety stop {safety_stop} "
                                         f"with measured jobs unfinished: {unfinished[:5]}")
    if speed_one:
        busy = sum(r.busy_device_s for r in run.records)
        assert math.isclose(busy, sum(received.values()), rel_tol=1e-9)
