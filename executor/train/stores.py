"""Where a job's checkpoints live: a local folder, or an fsspec URL (an object store, or `file://`).

A region's checkpoint location is either a folder path (`LocalStore`: the folder protocol of
`executor.train.checkpoint`, published by an atomic rename) or a URL fsspec knows (`ObjectStore`:
`s3://bucket/prefix` with s3fs installed, `gs://`, ..., or `file:///path`, which runs the same protocol on
a local or shared disk). `memory://` is refused where workers run in other processes (each has its own).

Object stores have no atomic rename, so an `ObjectStore` checkpoint is published by ordering:

1. the blob `ckpt-<step>/state-<nonce>.pt` (a fresh name every save, so a save never overwrites bytes a
   manifest vouches for);
2. then `ckpt-<step>/manifest.json`: the checkpoint's meta (step, bytes, CRC-32 of the blob, as the folder
   protocol's meta.json), the blob's name, and `manifest_crc32`, a CRC-32 of the manifest's own body.

A reader trusts a checkpoint only when its manifest parses, its own checksum matches, and the blob it
names has exactly the recorded size and checksum; anything else (a blob whose manifest never came: the
writer died between the two; a torn manifest; a corrupt blob) is skipped, with the reason, for the
previous one. Removal goes the other way (manifest first). After a save at step s the writer deletes
the checkpoints above s (left by a run that resumed below them: torn, or of a timeline it abandoned) and
all but the newest `keep` at or below it.

A migrate between regions (`transfer`) copies the newest intact checkpoint from one location to the
other through the same calls (blob, then manifest; or the atomic folder for a local destination) and
then removes the source's checkpoints, across any two kinds of location.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
import uuid
import zlib
from pathlib import Path

from executor.train import checkpoint
from executor.train.atomic import TMP_PREFIX, publish_dir, remove_stale_tmp, write_file_synced
from executor.train.checkpoint import (
    FORMAT,
    META,
    STATE,
    CheckpointWriteError,
    CorruptCheckpoint,
    Saved,
    Unpublished,
    ckpt_name,
)

MANIFEST = "manifest.json"
PROCESS_LOCAL = ("memory",)         # fsspec protocols whose files only the writing process sees


def is_url(location: str | Path) -> bool:
    return "://" in str(location)


def join(location: str | Path, *parts: str) -> str | Path:
    """`location/part/...` for a folder (a Path) or a URL (a string)."""
    if is_url(location):
        return "/".join([str(location).rstrip("/"), *parts])
    return Path(location).joinpath(*parts)


def check_location(location: str, shared: bool = True) -> str | None:
    """Why `location` cannot hold checkpoints (None when it can): an fsspec protocol that is unknown, whose
    package is not installed, or (`shared`: workers in other processes) that is process-local."""
    if not is_url(location):
        return None
    import fsspec

    protocol = location.split("://", 1)[0]
    if shared and protocol in PROCESS_LOCAL:
        return f"{protocol}:// is local to one process: the workers would not see each other's checkpoints"
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        return f"unknown fsspec protocol {protocol!r}"
    except ImportError as exc:
        return f"{protocol}:// needs a package fsspec could not import: {exc}"
    return None


def open_store(location: str | Path) -> LocalStore | ObjectStore:
    """The store of one job's checkpoints at `location` (a folder, or a URL)."""
    return ObjectStore(str(location)) if is_url(location) else LocalStore(Path(location))


class LocalStore:
    """A folder: `executor.train.checkpoint`'s atomic folders (state.pt, meta.json)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def where(self, step: int) -> str:
        return str(self.root / ckpt_name(step))

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def clean(self) -> None:
        remove_stale_tmp(self.root)

    def steps(self) -> list[int]:
        return [s for s, _ in checkpoint.list_checkpoints(self.root)]

    def latest_valid(self) -> tuple[int | None, list[str]]:
        path, skipped = checkpoint.latest_valid(self.root)
        return (int(path.name[5:]) if path else None), skipped

    def resume_point(self) -> tuple[int | None, list[str]]:
        """`latest_valid`, or NoIntactCheckpoint where checkpoints were published but none is intact."""
        path, skipped = checkpoint.scan(self.root)
        checkpoint.check_resumable(self.root, path is not None, skipped)
        return (int(path.name[5:]) if path else None), [str(e) for e in skipped]

    def read_verified(self, step: int) -> tuple[dict, bytes]:
        return checkpoint.read_verified(self.root / ckpt_name(step))

    def load(self, step: int) -> tuple[dict, dict]:
        return checkpoint.load(self.root / ckpt_name(step))

    def save(self, step: int, state: dict, keep: int = 2, fault: str | None = None,
             extra_meta: dict | None = None) -> Saved:
        return checkpoint.save(self.root, step, state, keep=keep, fault=fault, extra_meta=extra_meta)

    def put(self, step: int, data: bytes, meta: dict) -> int:
        """Publish checkpoint `step` from its verified bytes and meta (a migrate's copy); bytes written."""
        self.prepare()
        final = self.root / ckpt_name(step)
        tmp = self.root / f"{TMP_PREFIX}copy-{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write_file_synced(tmp / STATE, data)
        body = json.dumps(meta, sort_keys=True).encode()
        write_file_synced(tmp / META, body)
        publish_dir(tmp, final)
        return len(data) + len(body)

    def remove_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _manifest_crc(body: dict) -> int:
    return zlib.crc32(json.dumps({k: v for k, v in body.items() if k != "manifest_crc32"}, sort_keys=True).encode())


class ObjectStore:
    """An fsspec location, published by ordering (blob, then a checksummed manifest); see the module docstring."""

    def __init__(self, url: str) -> None:
        from fsspec.core import url_to_fs

        self.url = url.rstrip("/")
        self.fs, self.root = url_to_fs(self.url)
        self.root = self.root.rstrip("/")

    def _path(self, step: int, name: str | None = None) -> str:
        base = f"{self.root}/{ckpt_name(step)}"
        return base if name is None else f"{base}/{name}"

    def where(self, step: int) -> str:
        return f"{self.url}/{ckpt_name(step)}"

    def prepare(self) -> None:
        self.fs.makedirs(self.root, exist_ok=True)          # a no-op on object stores

    def clean(self) -> None:
        """Nothing to sweep before a resume: unpublished blobs are never trusted and go with their step."""

    def steps(self) -> list[int]:
        """Checkpoint steps present (complete or not), newest first."""
        self.fs.invalidate_cache(self.root)
        try:
            names = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return []
        out = set()
        for n in names:
            base = str(n).rstrip("/").rsplit("/", 1)[-1]
            if base.startswith("ckpt-"):
                try:
                    out.add(int(base[5:]))
                except ValueError:
                    continue
        return sorted(out, reverse=True)

    def _manifest(self, step: int) -> dict:
        name = ckpt_name(step)
        try:
            raw = self.fs.cat_file(self._path(step, MANIFEST))
        except FileNotFoundError:
            raise Unpublished(f"{name}: torn (no {MANIFEST})") from None
        try:
            body = json.loads(raw)
        except ValueError:
            raise CorruptCheckpoint(f"{name}: torn {MANIFEST} (not JSON)") from None
        if not isinstance(body, dict) or body.get("manifest_crc32") != _manifest_crc(body):
            raise CorruptCheckpoint(f"{name}: torn {MANIFEST} (its checksum does not match)")
        if body.get("format") != FORMAT or body.get("step") != step or not isinstance(body.get("blob"), str):
            raise CorruptCheckpoint(f"{name}: {MANIFEST} of another format or step")
        return body

    def read_verified(self, step: int) -> tuple[dict, bytes]:
        """The meta (as meta.json holds it) and the blob's bytes of checkpoint `step`, or CorruptCheckpoint."""
        name = ckpt_name(step)
        body = self._manifest(step)
        try:
            data = self.fs.cat_file(self._path(step, body["blob"]))
        except FileNotFoundError:
            raise CorruptCheckpoint(f"{name}: torn (no {body['blob']})") from None
        if len(data) != body.get("bytes"):
            raise CorruptCheckpoint(f"{name}: torn ({len(data)} of {body.get('bytes')} bytes)")
        if zlib.crc32(data) != body.get("crc32"):
            raise CorruptCheckpoint(f"{name}: corrupt (checksum mismatch)")
        return {k: v for k, v in body.items() if k not in ("blob", "manifest_crc32")}, data

    def _scan(self) -> tuple[int | None, list[CorruptCheckpoint]]:
        skipped = []
        for step in self.steps():
            try:
                self.read_verified(step)
            except CorruptCheckpoint as exc:
                skipped.append(exc)
                continue
            return step, skipped
        return None, skipped

    def latest_valid(self) -> tuple[int | None, list[str]]:
        step, skipped = self._scan()
        return step, [str(e) for e in skipped]

    def resume_point(self) -> tuple[int | None, list[str]]:
        """`latest_valid`, or NoIntactCheckpoint where a manifest was published but no checkpoint is intact
        (a blob whose manifest never came does not count: its writer died before publishing it)."""
        step, skipped = self._scan()
        checkpoint.check_resumable(self.url, step is not None, skipped)
        return step, [str(e) for e in skipped]

    def load(self, step: int) -> tuple[dict, dict]:
        import torch

        meta, data = self.read_verified(step)
        return meta, torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)

    def _publish(self, step: int, data: bytes, meta: dict) -> int:
        """Blob first, then the manifest naming it; then the blobs it replaced. Bytes written. A write that
        fails (OSError) takes what it wrote with it (`_discard`) before it is raised."""
        blob = f"state-{uuid.uuid4().hex[:12]}.pt"
        body = {**meta, "step": step, "format": FORMAT, "bytes": len(data), "crc32": zlib.crc32(data), "blob": blob}
        body["manifest_crc32"] = _manifest_crc(body)
        raw = json.dumps(body, sort_keys=True).encode()
        manifest = False
        try:
            self.fs.makedirs(self._path(step), exist_ok=True)
            self.fs.pipe_file(self._path(step, blob), data)
            manifest = True
            self.fs.pipe_file(self._path(step, MANIFEST), raw)
        except OSError:
            self._discard(step, blob, manifest)
            raise
        self.fs.invalidate_cache(self._path(step))
        for old in self.fs.ls(self._path(step), detail=False):
            base = str(old).rstrip("/").rsplit("/", 1)[-1]
            if base.startswith("state-") and base != blob:
                self.fs.rm_file(old)
        return len(data) + len(raw)

    def _discard(self, step: int, blob: str, manifest: bool) -> None:
        """After a failed publish: its blob (no manifest vouches for it), the manifest it began (torn), and the
        step's folder when nothing else is left in it; what cannot be removed stays (skipped as torn)."""
        for name in (blob, MANIFEST) if manifest else (blob,):
            with contextlib.suppress(OSError):
                self.fs.rm_file(self._path(step, name))
        with contextlib.suppress(OSError):
            if not self.fs.ls(self._path(step), detail=False):
                self.fs.rmdir(self._path(step))

    def _remove(self, step: int) -> None:
        try:
            self.fs.rm_file(self._path(step, MANIFEST))        # first: it stops being trusted at once
        except FileNotFoundError:
            pass
        try:
            self.fs.rm(self._path(step), recursive=True)
        except FileNotFoundError:
            pass

    def save(self, step: int, state: dict, keep: int = 2, fault: str | None = None,
             extra_meta: dict | None = None) -> Saved:
        """Checkpoint `step` (see the module docstring); `fault` is the folder protocol's only."""
        import torch

        t0 = time.perf_counter()
        buf = io.BytesIO()
        torch.save(state, buf)
        meta = {"written_unix": time.time(), **(extra_meta or {})}
        try:
            written = self._publish(step, buf.getvalue(), meta)
        except OSError as exc:          # as the folder protocol's save: one line, the previous checkpoint stands
            raise CheckpointWriteError(f"cannot write checkpoint {self.where(step)}: {exc.strerror or exc}") from None
        kept = 0
        for s in self.steps():
            if s > step:
                self._remove(s)
            elif kept < keep:
                kept += 1
            else:
                self._remove(s)
        return Saved(self.where(step), step, written, time.perf_counter() - t0)     # path: the URL

    def put(self, step: int, data: bytes, meta: dict) -> int:
        return self._publish(step, data, {k: v for k, v in meta.items() if k not in ("bytes", "crc32")})

    def remove_all(self) -> None:
        for s in self.steps():
            self._remove(s)
        try:
            self.fs.rm(self.root, recursive=True)
        except (FileNotFoundError, OSError):
            pass


def transfer(src_location: str | Path, dst_location: str | Path) -> tuple[int, float]:
    """A migrate: copy the newest intact checkpoint from `src_location` to `dst_location` (each a folder or
    a URL), then remove the source's checkpoints: (bytes written, seconds). Nothing to copy: (0, s)."""
    t0 = time.perf_counter()
    if str(src_location) == str(dst_location):
        return 0, 0.0
    src, dst = open_store(src_location), open_store(dst_location)
    step, _ = src.latest_valid()
    if step is None:
        return 0, time.perf_counter() - t0
    meta, data = src.read_verified(step)
    written = dst.put(step, data, meta)
    src.remove_all()
    return written, time.perf_counter() - t0
