"""Training checkpoints: one folder per step, `ckpt-<step>/` holding `state.pt` and `meta.json`.

`meta.json` carries the step, the byte count and the CRC-32 of `state.pt`, and is written after it, so
a folder missing either file, or whose bytes do not hash to the recorded sum, is torn or corrupt:
`latest_valid` skips it and resumes from the previous complete checkpoint. Folders are published
atomically (`executor.train.atomic`); the newest `keep` are kept. Where checkpoints were published but
none is intact, resuming would silently start the job over: `check_resumable` refuses instead.

Also importable without torch for inspection (`list_checkpoints`, `verify`); saving and loading import
torch on use.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from executor.train.atomic import TMP_PREFIX, HashingWriter, publish_dir, write_file_synced

FORMAT = 2
STATE = "state.pt"
META = "meta.json"


@dataclass
class Saved:
    path: Path
    step: int
    bytes: int
    seconds: float


def ckpt_name(step: int) -> str:
    return f"ckpt-{step:09d}"


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Published checkpoint folders, newest step first (complete or not)."""
    out = []
    if root.is_dir():
        for item in root.iterdir():
            if item.name.startswith("ckpt-") and item.is_dir():
                try:
                    out.append((int(item.name[5:]), item))
                except ValueError:
                    continue
    return sorted(out, reverse=True)


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class CheckpointError(Exception):
    """A job's checkpoints can be neither resumed from nor written: a relaunch would fail the same way (or
    start the job over), so the worker reports it in `status.json` (`error`) and the executor stops the
    run with this one line instead of relaunching."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (a full disk, a read-only folder); the previous one stands."""


class NoIntactCheckpoint(CheckpointError):
    """Checkpoints were published but none is intact."""


def save(root: Path, step: int, state: dict, keep: int = 2, fault: str | None = None,
         extra_meta: dict | None = None) -> Saved:
    """Write `state` as checkpoint `step` atomically, then drop the checkpoints above `step` (left by a run
    that resumed below them: unusable, or of a timeline it abandoned) and all but the newest `keep` at or
    below it. A write that fails (a full disk) removes its temporary folder, whose bytes would otherwise
    fill the disk further, and raises CheckpointWriteError naming the folder; the previous checkpoint stands.

    `fault` injects a crash for the fault tests: "mid_write" (SIGKILL after half the bytes) or
    "before_rename" (SIGKILL with everything written and fsynced, before the rename)."""
    t0 = time.perf_counter()
    tmp = root / f"{TMP_PREFIX}{ckpt_name(step)}-{os.getpid()}"
    final = root / ckpt_name(step)
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        meta = _write(tmp, step, state, fault, extra_meta)
        publish_dir(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointWriteError(f"cannot write checkpoint {final}: {exc.strerror or exc}") from None
    kept = 0
    for s, old in list_checkpoints(root):
        if s > step or kept >= keep:
            shutil.rmtree(old, ignore_errors=True)
        else:
            kept += 1
    return Saved(final, step, meta["bytes"] + len(json.dumps(meta)), time.perf_counter() - t0)


def _write(tmp: Path, step: int, state: dict, fault: str | None, extra_meta: dict | None) -> dict:
    """`state.pt` and then `meta.json` into `tmp`, each fsynced; the meta. An OSError of the file's
    (ENOSPC) is raised as it is, not as the error torch's zip writer makes of a short write."""
    import torch

    on_write = None
    if fault == "mid_write":
        expected = sum(t.numel() * t.element_size() for t in _tensors(state))

        def on_write(n: int) -> None:
            if n >= expected // 2:
                f.flush()
                os.fsync(f.fileno())
                _kill_self()

    with open(tmp / STATE, "wb") as f:
        writer = HashingWriter(f, on_write)
        try:
            torch.save(state, writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None
            raise
        f.flush()
        os.fsync(f.fileno())
    meta = {"format": FORMAT, "step": step, "bytes": writer.bytes, "crc32": writer.crc,
            "written_unix": time.time(), **(extra_meta or {})}
    write_file_synced(tmp / META, json.dumps(meta, sort_keys=True).encode())
    if fault == "before_rename":
        from executor.train.atomic import fsync_dir

        fsync_dir(tmp)
        _kill_self()
    return meta


def _tensors(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


class CorruptCheckpoint(Exception):
    pass


class Unpublished(CorruptCheckpoint):
    """A checkpoint whose writer died before publishing it (an object store's blob with no manifest): it
    never counted, so skipping it loses nothing."""


def read_verified(path: Path) -> tuple[dict, bytes]:
    """The meta and the state bytes of checkpoint folder `path`, or CorruptCheckpoint saying why not."""
    try:
        meta = json.loads((path / META).read_bytes())
    except FileNotFoundError:
        raise CorruptCheckpoint(f"{path.name}: torn (no {META})") from None
    except (OSError, ValueError) as exc:
        raise CorruptCheckpoint(f"{path.name}: unreadable {META}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CorruptCheckpoint(f"{path.name}: unknown format {meta.get('format') if isinstance(meta, dict) else meta!r}")
    try:
        data = (path / STATE).read_bytes()
    except OSError as exc:
        raise CorruptCheckpoint(f"{path.name}: torn ({STATE}: {exc.strerror})") from None
    if len(data) != meta.get("bytes"):
        raise CorruptCheckpoint(f"{path.name}: torn ({len(data)} of {meta.get('bytes')} bytes)")
    if zlib.crc32(data) != meta.get("crc32"):
        raise CorruptCheckpoint(f"{path.name}: corrupt (checksum mismatch)")
    return meta, data


def verify(path: Path) -> str | None:
    """None when the checkpoint at `path` is complete and intact, else why not."""
    try:
        read_verified(path)
    except CorruptCheckpoint as exc:
        return str(exc)
    return None


def scan(root: Path) -> tuple[Path | None, list[CorruptCheckpoint]]:
    """The newest intact checkpoint under `root` (None if there is none) and why newer ones were skipped."""
    skipped = []
    for _, path in list_checkpoints(root):
        try:
            read_verified(path)
        except CorruptCheckpoint as exc:
            skipped.append(exc)
            continue
        return path, skipped
    return None, skipped


def latest_valid(root: Path) -> tuple[Path | None, list[str]]:
    """`scan`, with the reasons as text."""
    path, skipped = scan(root)
    return path, [str(e) for e in skipped]


def check_resumable(where: str | Path, found: bool, skipped: list[CorruptCheckpoint]) -> None:
    """Raise NoIntactCheckpoint when checkpoints were published at `where` but none is intact (`found`
    False, some of `skipped` not `Unpublished`): resuming from nothing would silently start the job over
    and, at its first saves, overwrite what is left of its progress."""
    damaged = [str(e) for e in skipped if not isinstance(e, Unpublished)]
    if not found and damaged:
        raise NoIntactCheckpoint(f"no intact checkpoint in {where} to resume from ({'; '.join(damaged)}); "
                                 "restore one, or remove the folder to start the job afresh")


class StaleCheckpoint(ValueError):
    """A job's checkpoint folder holds a checkpoint another training spec wrote: its workers would refuse to
    resume from it (and die at every launch), so the run is refused before it starts."""


def written_by_other_spec(root: Path, fingerprint: str) -> Path | None:
    """The newest intact checkpoint under `root` when its meta says another spec (`TrainSpec.fingerprint`)
    wrote it; None when there is none, it matches, or it predates the fingerprint in the meta."""
    path, _ = latest_valid(root)
    if path is None:
        return None
    meta = json.loads((path / META).read_bytes())
    spec = meta.get("spec")
    return path if spec is not None and spec != fingerprint else None


def load(path: Path) -> tuple[dict, dict]:
    """(meta, state) of a checkpoint folder, checksum verified."""
    import torch

    meta, data = read_verified(path)
    return meta, torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def checkpoint_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
