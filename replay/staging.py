"""Outputs written whole or not at all: a command writes its run into a staging folder inside `--out`
(`staged`) and only once every file is there moves them into `--out` (`commit`).

Why: an interrupt (Ctrl-C), a crash or a refused input must never leave a folder that looks like a run but
is half of one, nor a new run's tables beside an earlier run's summary.json that vouches for them. So:

- nothing is written into `--out` until the run succeeded; on any failure the staging folder is removed,
  and so is `--out` (with the parents) where this command created it and it is still empty;
- the commit first removes the folder's old "finished" files (`SEALS`: summary.json, replications.json,
  comparison.json), then moves the new files in, then the new seals last: a folder is never left
  carrying a summary of another run's data; a SIGINT during the commit is held until it ends;
- files of the names the command writes (its `Layout`) that this run did not produce are removed
  (an earlier run's pictures beside a `--no-plots` run, an earlier run's replication-r/ folders);
  nothing else in `--out` is touched, so `--out .` stays safe, and a stale folder is removed only when
  nothing but the command's own names was in it.

A file in `--out` that is a symbolic link or not a regular file (a device, a pipe) is written as
`datasets.files.write_atomic` always wrote it: through the link, in place.

A run killed outright (SIGKILL, the machine's OOM killer) cannot remove its staging folder, so the name of
each records its owner: `.meridian-partial-PID-TICKS-HOST-XXXXXXXX`, the process and its kernel start time
(`/proc/PID/stat` field 22: a later process given the same PID has another) on this machine (`HOST`, a tag
of the boot and the PID namespace: a PID means nothing on another machine sharing the folder). The next
run into the same `--out` removes the staging folders whose owner is gone, and only those: a live owner
is a concurrent run, and a folder whose owner cannot be told (another machine's, an unreadable /proc, an
older run's name without an owner) is left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from datasets.files import InputError, check_writable_dir, write_atomic
from executor.train.procfs import stat_fields

PARTIAL_PREFIX = ".meridian-partial-"
_OWNED = re.compile(re.escape(PARTIAL_PREFIX) + r"(\d+)-(\d+)-([0-9a-f]+)-[^-]+")
# A folder's "this run finished" files: removed first, moved in last, in this order.
SEALS = ("summary.json", "replications.json", "comparison.json")


@dataclass(frozen=True)
class Layout:
    """The names a command writes in one folder: `files`, and folders with their own layout, by exact
    name (`folders`) or by a full-match pattern (`patterns`). `other` is the layout a produced folder of
    another name (a what-if scenario) is committed with; such a folder is never removed as stale."""

    files: frozenset[str] = frozenset()
    folders: Mapping[str, Layout] = field(default_factory=dict)
    patterns: tuple[tuple[str, Layout], ...] = ()
    other: Layout | None = None

    def folder(self, name: str) -> Layout | None:
        """The layout of the folder `name`, if it is one of the command's."""
        if name in self.folders:
            return self.folders[name]
        return next((sub for pattern, sub in self.patterns if re.fullmatch(pattern, name)), None)


@contextlib.contextmanager
def staged(out: str, layout: Layout) -> Iterator[str]:
    """A fresh staging folder inside `out` (made, with its parents, if missing: InputError, one line,
    if it cannot be); committed into `out` when the block ends normally, removed whatever happens."""
    created = _make_dirs(out)
    try:
        check_writable_dir(out, create=False)
        remove_orphans(out)
        stage = tempfile.mkdtemp(prefix=_owned_prefix(), dir=out)
    except BaseException:
        _remove_if_empty(created)
        raise
    committed = False
    try:
        yield stage
        with _sigint_held():
            commit(stage, out, layout)
            committed = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not committed:
            _remove_if_empty(created)


def remove_orphans(out: str) -> list[str]:
    """Remove the staging folders in `out` whose owner process is gone (module docstring); their names."""
    host = _host_tag()
    removed = []
    for name in sorted(os.listdir(out)):
        m = _OWNED.fullmatch(name)
        if m is None or host is None or m[3] != host:
            continue
        path = os.path.join(out, name)
        try:
            is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
        except OSError:         # removed meanwhile (by another run's sweep)
            continue
        if not is_dir or _owner_alive(int(m[1]), int(m[2])) is not False:
            continue
        shutil.rmtree(path, ignore_errors=True)     # best effort: what cannot be removed is left as it was
        removed.append(name)
    return removed


def owner_prefix(pid: int, ticks: int) -> str | None:
    """`.meridian-partial-PID-TICKS-HOST-`: the start of the name of a staging folder that the process
    `pid`, started at `ticks`, makes on this machine; None where this machine's tag cannot be read."""
    host = _host_tag()
    return None if host is None else f"{PARTIAL_PREFIX}{pid}-{ticks}-{host}-"


def _owned_prefix() -> str:
    """This process's `owner_prefix`; the bare prefix (never removed by another run) where its start time
    or this machine's tag cannot be read."""
    ticks = _start_ticks(os.getpid())
    return (isinstance(ticks, int) and owner_prefix(os.getpid(), ticks)) or PARTIAL_PREFIX


def _start_ticks(pid: int) -> int | str | None:
    """The kernel's start time of `pid` (clock ticks since boot, /proc/PID/stat field 22); None when no
    such process lives (or it is a zombie: it has exited), "unknown" when /proc cannot tell. (Unlike
    `executor.train.worker.process_start_ticks`, "gone" and "cannot tell" must differ here: only the
    first lets a folder be removed.)"""
    try:
        fields = stat_fields(pid)
    except FileNotFoundError:
        return None
    except (OSError, IndexError):
        return "unknown"
    if fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return "unknown"


def _owner_alive(pid: int, ticks: int) -> bool | None:
    """True: the process that made the folder runs; False: it is gone (no process has its PID, or the one
    that has it started at another time); None: cannot tell."""
    if pid <= 0:                # kill(0, ...) would name this process group, not a process
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                    # another user's process: its start time still tells whether it is the owner
    except (OSError, OverflowError):
        return None
    now = _start_ticks(pid)
    if now is None:
        return False
    if now == "unknown":
        return None
    return now == ticks


def _host_tag() -> str | None:
    """This machine's boot and PID namespace, as 8 hex digits: a PID and a start time name one process only
    here. None where /proc cannot tell."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return hashlib.sha256(f"{boot}:{ns}".encode()).hexdigest()[:8]


def check_target(folder: str, files: Iterable[str]) -> None:
    """Before any work, making nothing: `folder`, where it exists, is a folder, and none of the `files`
    the run writes there is a folder (InputError, one line): the commit could not put the run there."""
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise InputError(f"{folder} is not a folder")
    for name in files:
        if os.path.isdir(os.path.join(folder, name)):
            raise InputError(f"{os.path.join(folder, name)} is a folder: the run writes a file there")


def commit(src: str, dst: str, layout: Layout) -> None:
    """Move the run in `src` into the folder `dst`: old seals out first, the new files and folders in
    (a folder merged by its own layout), stale names of `layout` removed, the new seals last."""
    for seal in SEALS:
        if seal in layout.files:
            _unlink_file(os.path.join(dst, seal))
    produced = set(os.listdir(src))
    for name in sorted(produced - set(SEALS)):
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if os.path.isdir(s):
            if os.path.lexists(d):
                commit(s, d, layout.folder(name) or layout.other or Layout())
            else:
                os.replace(s, d)
        else:
            _move_file(s, d)
    for name in sorted(set(os.listdir(dst)) - produced):
        _remove_stale(os.path.join(dst, name), name, layout)
    for seal in SEALS:
        if seal in produced:
            _move_file(os.path.join(src, seal), os.path.join(dst, seal))
    _fsync_dir(dst)


def _move_file(src: str, dst: str) -> None:
    """`src` renamed over `dst`, which keeps its mode; a link or a device at `dst` written as write_atomic does."""
    try:
        st = os.lstat(dst)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(src, "rb") as f:
            write_atomic(dst, f.read())
        return
    if st is not None:
        os.chmod(src, stat.S_IMODE(st.st_mode))
    os.replace(src, dst)


def _remove_stale(path: str, name: str, layout: Layout) -> None:
    """An earlier run's output of the command's own names: files unlinked, folders emptied of the
    command's names and removed if nothing else was in them; anything else left alone."""
    sub = layout.folder(name)
    if sub is not None and os.path.isdir(path) and not os.path.islink(path):
        for child in os.listdir(path):
            _remove_stale(os.path.join(path, child), child, sub)
        with contextlib.suppress(OSError):
            os.rmdir(path)
    elif name in layout.files:
        _unlink_file(path)


def _unlink_file(path: str) -> None:
    """Remove a regular file or a link at `path` (a folder or a device stays)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
        os.unlink(path)


def _make_dirs(folder: str) -> list[str]:
    """Make `folder` and its missing parents; the ones made, outermost first (InputError if impossible)."""
    missing = []
    path = os.path.abspath(folder)
    while not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    try:
        os.makedirs(folder, exist_ok=True)
    except FileExistsError:
        raise InputError(f"{folder} is not a folder") from None
    except OSError as exc:
        _remove_if_empty(missing[::-1])
        raise InputError(f"cannot create the folder {folder}: {exc.strerror}") from None
    return missing[::-1]


def _remove_if_empty(created: list[str]) -> None:
    """Remove the folders this command made, innermost first, while they are empty."""
    for path in reversed(created):
        try:
            os.rmdir(path)
        except OSError:
            return


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold a SIGINT until the block ends (then raise KeyboardInterrupt): a commit is a few renames, and
    one stopped halfway would leave the folder between two runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
