"""PNG plots of a replay, one function per picture (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

import os


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    """The figure as PNG, written atomically (datasets.files.write_atomic): never half a picture."""
    import io

    from datasets.files import write_atomic

    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    write_atomic(path, buf.getvalue())


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
    _save(fig, path)
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
    _save(fig, path)
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
    _save(fig, path)
    plt.close(fig)


def write_plots(epochs: list[list], job_rows: list[dict], out_dir: str, label: str = "") -> list[str]:
    """utilization.png, jct_cdf.png, queue.png under `out_dir`."""
    paths = [os.path.join(out_dir, n) for n in ("utilization.png", "jct_cdf.png", "queue.png")]
    plot_utilization(epochs, paths[0], f"Utilization ({label})" if label else "")
    plot_jct_cdf(job_rows, paths[1], f"JCT by tier ({label})" if label else "")
    plot_queue(epochs, paths[2], f"Queue length ({label})" if label else "")
    return paths
