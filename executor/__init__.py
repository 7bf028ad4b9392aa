"""Applies plans: one epoch loop, two backends (simulated for replay and what-if, torch workers for real)."""
