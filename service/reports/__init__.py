"""What the CLI shows of a replay: PNG plots (passed to `replay.report` as its plotter) and text tables.

The replay itself, its metrics and its outputs (summary.json, CSVs) live in the `replay` package.
"""
