"""/proc/PID/stat, read in one place: a PID names one process only together with its kernel start time
(PIDs are reused), and a process's parent says which processes an agent started. The launcher's kills,
the worker's check on its owner and the replay's staging folders (`replay.staging`) read it."""

from __future__ import annotations


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses): the
    state first (field 3 of proc(5)), the parent's PID second, the start time at index 19. OSError where no
    such process lives (FileNotFoundError) or /proc cannot be read."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()
