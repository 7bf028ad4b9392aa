"""PNG plots of a replay, one function per picture (matplotlib, Agg backend, imported lazily).

Made to be read at a glance: every title names the run (scheduler, fleet, window: the `label` the
caller passes), every y axis is scaled to its data (a 0.3 % line is not flat on the floor), lines of
different magnitude get their own panel, and utilization is shown per accelerator pool as well as in
total, so a reader sees which devices idle while jobs wait.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

MAX_POOLS = 8          # pools drawn one line each; the smaller ones are summed as "other"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str, dpi: int = 110) -> None:
    """The figure as PNG, written atomically (datasets.files.write_atomic): never half a picture."""
    import io

    from datasets.files import write_atomic

    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    write_atomic(path, buf.getvalue())


def _wrap(title: str, width: int = 95) -> str:
    """A long run title over several lines, broken at its ` · ` separators (a title cut off says nothing)."""
    lines: list[str] = []
    for part in title.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def _smooth(ys: Sequence[float], points: int = 200) -> tuple[list[float], int]:
    """A trailing moving average over k epochs, k chosen so about `points` windows span the series (k >= 1)."""
    k = max(1, len(ys) // points)
    if k == 1:
        return list(ys), 1
    out, acc = [], 0.0
    for i, y in enumerate(ys):
        acc += y
        if i >= k:
            acc -= ys[i - k]
        out.append(acc / min(i + 1, k))
    return out, k


def _top(ys: Sequence[float]) -> float:
    """An upper y limit a little above the data (at least a hair above zero)."""
    m = max(ys, default=0.0)
    return m * 1.08 if m > 0 else 1.0


def _pool_series(pools: Sequence[Sequence], days: Sequence[float]) -> dict[str, list[float]]:
    """Held share per pool per epoch day (`replay.pools` rows: t_s, day, accelerator, devices, held, capacity,
    share); beyond MAX_POOLS the smallest pools are summed into "other"."""
    held: dict[str, dict[float, float]] = {}
    cap: dict[str, dict[float, float]] = {}
    size: dict[str, int] = {}
    for _, day, acc, n, h, c, _share in pools:
        held.setdefault(acc, {})[day] = held.get(acc, {}).get(day, 0.0) + h
        cap.setdefault(acc, {})[day] = cap.get(acc, {}).get(day, 0.0) + c
        size[acc] = n
    names = sorted(size, key=lambda a: (-size[a], a))
    keep, rest = names[:MAX_POOLS - 1] if len(names) > MAX_POOLS else names, names[MAX_POOLS - 1:]
    groups = {f"{a} ({size[a]})": [a] for a in keep}
    if len(names) > MAX_POOLS:
        groups[f"other {len(rest)} types ({sum(size[a] for a in rest)})"] = rest
    out = {}
    for label, accs in groups.items():
        ys = []
        for d in days:
            c = sum(cap[a].get(d, 0.0) for a in accs)
            ys.append(sum(held[a].get(d, 0.0) for a in accs) / c if c else 0.0)
        out[label] = ys
    return out


def plot_utilization(epochs: list[list], path: str, title: str = "", pools: Sequence[Sequence] = ()) -> None:
    """Busy share of the up devices per epoch, against trace days; below it, each pool's held share (where
    the fleet has more than one accelerator type)."""
    plt = _plt()
    rows = [r for r in epochs if r[19]]
    xs = [r[1] for r in rows]
    ys = [r[16] / r[19] for r in rows]
    series = _pool_series(pools, xs) if len({row[2] for row in pools}) > 1 else {}     # one pool: the total says it
    n = 2 if series else 1
    fig, axes = plt.subplots(n, 1, figsize=(10, 3.2 * n), sharex=True, squeeze=False)
    ax = axes[0][0]
    ax.plot(xs, ys, lw=0.5, color="C0", alpha=0.35, label="per epoch")
    smooth, k = _smooth(ys)
    if k > 1:
        ax.plot(xs, smooth, lw=1.2, color="C0", label=f"mean of {k} epochs")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1))
    ax.set_ylabel("busy share, all devices")
    ax.set_ylim(0, _top(ys))
    ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    ax.set_title(_wrap(title or "Utilization over time"), fontsize=10)
    if series:
        ax2 = axes[1][0]
        tops = []
        for i, (label, s) in enumerate(series.items()):
            sm, k = _smooth(s)
            tops.extend(sm)
            ax2.plot(xs, sm, lw=1.0, label=label, color=f"C{i % 10}")
        ax2.set_ylabel("held share per pool" + (f"\n(mean of {k} epochs)" if k > 1 else ""))
        ax2.set_ylim(0, _top(tops))
        ax2.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
        ax2.legend(title="type (devices)", fontsize=7, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1))
    axes[-1][0].set_xlabel("trace day")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_queue(epochs: list[list], path: str, title: str = "") -> None:
    """Waiting and running jobs per epoch, each in its own panel scaled to its own data."""
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    days = [r[1] for r in epochs]
    for ax, col, name, color in ((axes[0], 9, "waiting", "C3"), (axes[1], 8, "running", "C0")):
        ys = [r[col] for r in epochs]
        ax.plot(days, ys, lw=0.8, color=color)
        ax.fill_between(days, ys, step=None, alpha=0.15, color=color)
        ax.set_ylabel(f"jobs {name}")
        ax.set_ylim(0, _top(ys))
    axes[0].set_title(_wrap(title or "Queue length"), fontsize=10)
    axes[1].set_xlabel("trace day")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_jct_cdf(job_rows: list[dict], path: str, title: str = "") -> None:
    """CDF of the measured jobs' JCT, one curve per tier (log time axis)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for tier in ("premium", "standard", "basic"):
        v = sorted(r["jct_s"] for r in job_rows if r["measured"] and r["jct_s"] is not None and r["tier"] == tier)
        if v:
            ax.step(v, [(i + 1) / len(v) for i in range(len(v))], where="post", label=f"{tier} ({len(v)})")
    ax.set_xscale("log")
    ax.set_xlabel("JCT (s)")
    ax.set_ylabel("share of jobs")
    ax.set_ylim(0, 1.02)
    ax.legend()
    ax.set_title(_wrap(title or "JCT by tier", 70), fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def write_plots(epochs: list[list], job_rows: list[dict], out_dir: str, label: str = "",
                pools: Sequence[Sequence] = ()) -> list[str]:
    """utilization.png, jct_cdf.png, queue.png under `out_dir`; `label` names the run in every title."""
    paths = [os.path.join(out_dir, n) for n in ("utilization.png", "jct_cdf.png", "queue.png")]
    plot_utilization(epochs, paths[0], f"Utilization: {label}" if label else "", pools)
    plot_jct_cdf(job_rows, paths[1], f"JCT by tier: {label}" if label else "")
    plot_queue(epochs, paths[2], f"Queue length: {label}" if label else "")
    return paths


def plot_intervals(rows: list[dict], path: str, title: str = "") -> None:
    """What-if comparison: mean JCT, utilization and SLA attainment per tier for each row, each a mean over
    the replications with its 95 % interval as an error bar (no bar where R = 1)."""
    plt = _plt()
    names = [r.get("scenario", r.get("policy", "")) for r in rows]
    tiers = [t for t in ("premium", "standard", "basic") if any(t in r.get("sla_attainment", {}) for r in rows)]
    panels = [("mean JCT (s)", lambda r: (r.get("avg_jct_s"), r.get("avg_jct_s_ci95"))),
              ("utilization", lambda r: (r.get("utilization"), r.get("utilization_ci95")))]
    panels += [(f"SLA attainment {t}", lambda r, t=t: (r["sla_attainment"].get(t),
                                                        (r.get("sla_attainment_ci95") or {}).get(t))) for t in tiers]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 0.35 * len(names) + 2.2), squeeze=False)
    for ax, (label, get) in zip(axes[0], panels):
        for i, r in enumerate(rows):
            v, ci = get(r)
            if v is None:
                continue
            err = [[v - ci[0]], [ci[1] - v]] if ci else None
            ax.errorbar([v], [i], xerr=err, fmt="o", color="C0", capsize=3, ms=4)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names if ax is axes[0][0] else [""] * len(names), fontsize=8)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    reps = sorted({r.get("replications", 1) for r in rows})
    fig.suptitle(title or f"What-if: means over {'/'.join(map(str, reps))} replication(s), 95 % intervals",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_comparison(runs: Sequence[tuple[str, list[list], list[dict]]], path: str, title: str = "") -> str:
    """One picture of several runs `(name, epoch rows, job rows)`: the measured jobs' JCT CDF (all tiers),
    the busy share over time and the jobs waiting over time, one colour per run, the mean JCT, utilization
    and mean queue length in the legends (runs that do the same work have the same utilization: the
    waiting jobs show where they differ)."""
    plt = _plt()
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(17, 4.6), gridspec_kw={"width_ratios": [1, 1.2, 1.2]})
    top = top_q = 0.0
    for i, (name, epochs, jobs) in enumerate(runs):
        v = sorted(r["jct_s"] for r in jobs if r["measured"] and r["jct_s"] is not None)
        color = f"C{i % 10}"
        if v:
            mean = sum(v) / len(v)
            a1.step(v, [(k + 1) / len(v) for k in range(len(v))], where="post", color=color,
                    label=f"{name}: mean {mean:,.0f} s ({len(v)} jobs)")
        rows = [r for r in epochs if r[19]]
        ys, k = _smooth([r[16] / r[19] for r in rows])
        busy, cap = sum(r[16] for r in rows), sum(r[19] for r in rows)
        a2.plot([r[1] for r in rows], ys, lw=1.0, color=color, alpha=0.85,
                label=f"{name}: {busy / cap:.1%} over the replay" if cap else name)
        top = max(top, _top(ys))
        a2.set_ylabel("busy share, all devices" + (f" (mean of {k} epochs)" if k > 1 else ""))
        waiting = [r[9] for r in epochs]
        qs, k = _smooth(waiting)
        a3.plot([r[1] for r in epochs], qs, lw=1.0, color=color, alpha=0.85,
                label=f"{name}: mean {sum(waiting) / len(waiting):.1f} per epoch" if waiting else name)
        top_q = max(top_q, _top(qs))
        a3.set_ylabel("jobs waiting" + (f" (mean of {k} epochs)" if k > 1 else ""))
    a1.set_xscale("log")
    a1.set_xlabel("JCT (s)")
    a1.set_ylabel("share of measured jobs")
    a1.set_ylim(0, 1.02)
    a1.legend(fontsize=8, loc="lower right")
    a1.set_title("JCT CDF", fontsize=10)
    a2.set_xlabel("trace day")
    a2.set_ylim(0, top or 1.0)
    a2.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    a2.legend(fontsize=8, loc="upper left")
    a2.set_title("Utilization", fontsize=10)
    a3.set_xlabel("trace day")
    a3.set_ylim(0, top_q or 1.0)
    a3.legend(fontsize=8, loc="upper left")
    a3.set_title("Queue", fontsize=10)
    fig.suptitle(_wrap(title or "Comparison", 130), fontsize=11)
    fig.tight_layout()
    _save(fig, path, dpi=90)
    plt.close(fig)
    return path


def plot_comparison_of_folders(out_dir: str, title: str = "") -> str | None:
    """`comparison.png` in `out_dir` from the run folders under it (each with epochs.csv and jobs.csv, as
    `meridian whatif --out` writes one per scenario), named by folder, in name order; None if fewer than 2."""
    import csv

    runs = []
    for name in sorted(os.listdir(out_dir)):
        d = os.path.join(out_dir, name)
        if not (os.path.isfile(os.path.join(d, "epochs.csv")) and os.path.isfile(os.path.join(d, "jobs.csv"))):
            continue
        with open(os.path.join(d, "epochs.csv"), newline="") as f:
            epochs = [[x if i == 5 else float(x or 0) for i, x in enumerate(row[:20])] for row in list(csv.reader(f))[1:]]
        with open(os.path.join(d, "jobs.csv"), newline="") as f:
            jobs = [{"measured": r["measured"] == "True", "jct_s": float(r["jct_s"]) if r["jct_s"] else None}
                    for r in csv.DictReader(f)]
        runs.append((name, epochs, jobs))
    if len(runs) < 2:
        return None
    return plot_comparison(runs, os.path.join(out_dir, "comparison.png"), title)
