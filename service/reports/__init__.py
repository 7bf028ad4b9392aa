"""Replay reports: metrics (summary.json), per-epoch CSV, PNG plots, a progress bar."""
