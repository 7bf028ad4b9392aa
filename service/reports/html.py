"""`report.html`: one self-contained page per replay (its summary, the per-tier table and its pictures,
embedded) and one per what-if comparison, readable offline and shareable as a single file. The replay
library calls `write_replay_report` before it writes summary.json (see replay/report.py's `Reporter`)."""

from __future__ import annotations

import base64
import os
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from datasets.files import write_atomic
from service.reports.table import cell

_ENV = Environment(loader=FileSystemLoader(os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)

TIERS = ("premium", "standard", "basic")

# (summary key, shown as, format) for the summary table; a key the summary lacks is left out.
_FACTS = [
    ("policy", "scheduler", "{}"), ("seed", "seed", "{}"), ("epoch_s", "epoch s", "{:g}"),
    ("time_limit_s", "planner time limit s", "{:g}"), ("jobs_submitted", "jobs measured", "{}"),
    ("jobs_completed", "completed", "{}"), ("jobs_rejected", "rejected", "{}"), ("jobs_unfinished", "unfinished", "{}"),
    ("avg_jct_s", "mean JCT s", "{:.0f}"), ("p50_jct_s", "p50 JCT s", "{:.0f}"), ("p99_jct_s", "p99 JCT s", "{:.0f}"),
    ("avg_queue_s", "mean queue s", "{:.0f}"), ("makespan_s", "makespan s", "{:.0f}"),
    ("utilization", "utilization (window)", "{:.1%}"), ("preemptions", "preemptions", "{}"),
    ("migrations", "migrations", "{}"), ("resizes", "resizes", "{}"), ("moves", "moves", "{}"),
    ("starts", "starts", "{}"), ("device_hours_lost", "device hours lost to pauses", "{:.1f}"),
    ("plans", "plans", "{}"), ("planner_s_p50", "planner p50 s", "{:.3f}"), ("planner_s_p99", "planner p99 s", "{:.3f}"),
    ("planner_fallback_rate", "planner fallback rate", "{:.1%}"), ("wall_s", "wall s", "{:.1f}"),
    ("cpu_s", "CPU s", "{:.1f}"),
]


def write_replay_report(summary: dict[str, Any], pictures: list[str], out_dir: str, label: str) -> str:
    """report.html under `out_dir` for one replay; the pictures are embedded, so the file stands alone."""
    facts = [(name, cell(summary[k], fmt) if summary[k] is not None else "-") for k, name, fmt in _FACTS
             if k in summary and not isinstance(summary[k], (dict, list))]
    html = _ENV.get_template("report.html").render(
        title=f"Replay: {label}", command="replay", summary=summary, facts=facts, tiers=tier_rows(summary),
        pictures=[_embedded(p) for p in pictures if os.path.exists(p)], rows=None)
    return _write(out_dir, html)


def write_comparison_report(rows: list[list[str]], links: dict[str, str], out_dir: str, verdict: str | None) -> str:
    """report.html under a what-if's `--out`: the comparison table, each scenario linked to its own report."""
    html = _ENV.get_template("report.html").render(title="What-if comparison", command="whatif", rows=rows,
                                                   links=links, verdict=verdict, summary=None, pictures=[])
    return _write(out_dir, html)


def tier_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """One row per tier: the JCT figures, the per-job SLA ratio target and the share of jobs reaching it.

    The target is a ratio each job should reach, attainment the share of jobs that did: two different notions,
    so the page shows both and judges neither against the other (a what-if's attainment targets judge shares)."""
    by_tier = summary.get("jct_by_tier") or {}
    targets = summary.get("sla_targets") or {}
    attain = summary.get("sla_attainment") or {}
    out = []
    for tier in [t for t in TIERS if t in by_tier] + [t for t in by_tier if t not in TIERS]:
        t = by_tier[tier]
        a, target = attain.get(tier), targets.get(tier)
        out.append({"tier": tier, "jobs": str(t.get("jobs", "")), "completed": str(t.get("completed", "")),
                    "avg_jct_s": cell(t.get("avg_jct_s")), "p50_jct_s": cell(t.get("p50_jct_s")),
                    "p99_jct_s": cell(t.get("p99_jct_s")), "avg_queue_s": cell(t.get("avg_queue_s")),
                    "avg_sla_ratio": cell(t.get("avg_sla_ratio"), "{:.2f}"), "target": cell(target, "{:.2f}"),
                    "attainment": cell(a, "{:.1%}")})
    return out


def _embedded(path: str) -> dict[str, str]:
    with open(path, "rb") as f:
        return {"name": os.path.basename(path), "data": base64.b64encode(f.read()).decode("ascii")}


def _write(out_dir: str, html: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "report.html")
    write_atomic(path, html)
    return path
