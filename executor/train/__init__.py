"""Real data-parallel training workers for the torch executor: a fixed logical world size over any
number of physical workers, exact (bitwise) or all-reduce gradient reduction, atomic checkpoints,
and preemption through the checkpoint path.

Only `spec`, `launch`, `procfs` and `storage` are importable without torch; the rest run inside workers.
"""
