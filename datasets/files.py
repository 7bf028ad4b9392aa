"""Writing files so that a crash never leaves half of one: the one atomic write of the project."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence


def write_atomic(path: str, text: str | bytes) -> None:
    """Temp file in the same folder, fsync, rename over `path`, fsync of the folder; on any
    failure the temp file is removed and `path` keeps its previous content. The file gets the
    mode a plain `open` would give it (0666 less the umask), or keeps the one it had.

    A symbolic link is written through: the file it points to is replaced, the link stays. A path
    that is not a regular file (`/dev/null`, `/dev/stdout`, a named pipe) is written in place, as
    `open` would: there is nothing to rename over it, and renaming over a device node replaced
    `/dev/null` itself with the plan when run as root."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        with open(path, "wb") as f:
            f.write(data)
        return
    if os.path.islink(path):
        path = os.path.realpath(path)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".meridian-", suffix=".tmp")
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _mode_for(path: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it (Linux), else by setting and restoring it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


# The most bytes a command reads from one input file: a planet-size request is about 30 MB.
MAX_INPUT_BYTES = 256 * 1024 * 1024


class InputError(ValueError):
    """An input file that cannot be read, or is larger than MAX_INPUT_BYTES: one line naming it."""


def read_capped(path: str, what: str = "input", cap: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of `path` (`-` for standard input), refused once they pass `cap`: a device such as
    /dev/zero or a runaway pipe ends with a clear message instead of filling the memory."""
    import sys

    try:
        f = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        data = f.read(cap + 1)
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None
    finally:
        if path != "-":
            f.close()
    if len(data) > cap:
        raise InputError(f"{what} {path} is larger than {cap // (1024 * 1024)} MiB (the most a command reads)")
    return data


def read_json(path: str, what: str = "input") -> object:
    """A JSON file read with read_capped and decoded by the contract's rules (UTF-8, a BOM ignored, no NaN,
    no lone surrogates); any fault is one InputError line naming the file."""
    from models import BadRequest, decode_json

    data = read_capped(path, what)
    try:
        return decode_json(data)
    except BadRequest as exc:
        raise InputError(f"{what} {path}: {exc.errors[0].message}") from None


def check_writable_file(path: str) -> None:
    """Raise InputError unless a file can be written (atomically) at `path`: its folder exists and takes
    a new file, and `path` is not a folder. Checked before any work, so a long run never ends in an
    error about where its result should go."""
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder, not a file")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):     # a device or a pipe: written in place (write_atomic)
        if not os.access(path, os.W_OK):
            raise InputError(f"cannot write to {path}: permission denied")
        return
    target = os.path.realpath(path) if os.path.islink(path) else path   # a link: its file is replaced
    folder = os.path.dirname(os.path.abspath(target))
    check_writable_dir(folder, create=False)


def check_not_an_input(path: str, inputs: Sequence[str]) -> None:
    """Raise InputError when the output `path` is one of the regular files given as `inputs` (by any name:
    a link, `./x`): writing the result there would replace what the user gave."""
    try:
        st = os.stat(path)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        return
    for given in inputs:
        try:
            if os.path.samefile(path, given):
                raise InputError(f"{path} is the input file {given}: writing there would replace it")
        except OSError:
            continue


def check_writable_dir(folder: str, create: bool = True) -> None:
    """Raise InputError unless files can be created in `folder` (made, with its parents, when `create`)."""
    if create:
        try:
            os.makedirs(folder, exist_ok=True)
        except FileExistsError:
            raise InputError(f"{folder} is not a folder") from None
        except OSError as exc:
            raise InputError(f"cannot create the folder {folder}: {exc.strerror}") from None
    if not os.path.isdir(folder):
        raise InputError(f"{folder} is not a folder" if os.path.exists(folder) else f"no folder {folder}")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".meridian-probe-")
    except OSError as exc:
        raise InputError(f"cannot write in {folder}: {exc.strerror}") from None
    os.close(fd)
    os.unlink(probe)
