"""Trace replay and what-if: the harness around `executor.loop` (windows, policies, metrics, outputs)."""
