"""Processes for tests: Python code run in a fresh interpreter at the repository root (what a test of
imports needs: this process has imported everything already), and the processes a command leaves behind."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def fresh_python(code: str) -> str:
    """`code`'s standard output (stripped), run by `python -c` at the root; a failure fails the test."""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def processes_naming(text: str) -> list[int]:
    """PIDs whose command line names `text` (a run's work folder: its agents and workers)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    out.append(int(pid))
        except OSError:
            continue
    return out


def terminate(p: subprocess.Popen, timeout_s: float = 120.0) -> int:
    """SIGTERM `p` (what `timeout`, systemd and `kill` send) and its exit code; killed if it outlives the wait."""
    try:
        p.send_signal(signal.SIGTERM)
        return p.wait(timeout=timeout_s)
    finally:
        if p.poll() is None:
            p.kill()


def left_behind(text: str, wait_s: float = 10.0) -> list[int]:
    """The processes still naming `text` once they have had `wait_s` to exit (they are reaped asynchronously)."""
    deadline = time.time() + wait_s
    while processes_naming(text) and time.time() < deadline:
        time.sleep(0.1)
    return processes_naming(text)
