"""PNG plots of a replay, one function per picture (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

import os


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_utilization(epochs: list[list], path: str, title: str = "") -> None:
    """Busy share of the up devices per epoch, against trace days."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    xs = [r[1] for r in epochs if r[19]]
    ys = [r[16] / r[19] for r in epochs if r[19]]
    ax.plot(xs, ys, lw=0.7)
    ax.set_xlabel("trace day")
    ax.set_ylabel("utilization")
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "Utilization over time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_queue(epochs: list[list], path: str, title: str = "") -> None:
    """Waiting and running jobs per epoch."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot([r[1] for r in epochs], [r[9] for r in epochs], lw=0.7, label="waiting")
    ax.plot([r[1] for r in epochs], [r[8] for r in epochs], lw=0.7, label="running")
    ax.set_xlabel("trace day")
    ax.set_ylabel("jobs")
    ax.legend()
    ax.set_title(title or "Queue length")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_jct_cdf(job_rows: list[dict], path: str, title: str = "") -> None:
    """CDF of the measured jobs' JCT, one curve per tier (log time axis)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for tier in ("premium", "standard", "basic"):
        v = sorted(r["jct_s"] for r in job_rows if r["measured"] and r["jct_s"] is not None and r["tier"] == tier)
        if v:
            ax.step(v, [(i + 1) / len(v) for i in range(len(v))], where="post", label=f"{tier} ({len(v)})")
    ax.set_xscale("log")
    ax.set_xlabel("JCT (s)")
    ax.set_ylabel("share of jobs")
    ax.legend()
    ax.set_title(title or "JCT by tier")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(epochs: list[list], job_rows: list[dict], out_dir: str, label: str = "") -> list[str]:
    """utilization.png, jct_cdf.png, queue.png under `out_dir`."""
    paths = [os.path.join(out_dir, n) for n in ("utilization.png", "jct_cdf.png", "queue.png")]
    plot_utilization(epochs, paths[0], f"Utilization ({label})" if label else "")
    plot_jct_cdf(job_rows, paths[1], f"JCT by tier ({label})" if label else "")
    plot_queue(epochs, paths[2], f"Queue length ({label})" if label else "")
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
