"""Python code run in a fresh interpreter at the repository root: what a test of imports needs (this
process has imported everything already)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def fresh_python(code: str) -> str:
    """`code`'s standard output (stripped), run by `python -c` at the root; a failure fails the test."""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()
