"""`write_atomic` (every file Meridian writes: `meridian plan -o`, replay outputs, reports) replaces a
regular file whole, writes through a symbolic link, and writes a device or a pipe in place: renaming
over one replaced it (run as root, `meridian plan -o /dev/null` turned /dev/null into the plan)."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from datasets.files import InputError, check_writable_file, write_atomic


def test_a_regular_file_is_replaced_with_its_mode_kept(tmp_path):
    f = tmp_path / "plan.json"
    f.write_text("old")
    f.chmod(0o640)
    write_atomic(str(f), "new")
    assert f.read_text() == "new" and stat.S_IMODE(f.stat().st_mode) == 0o640


def test_a_symbolic_link_stays_and_the_file_it_points_to_gets_the_text(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_atomic(str(link), "new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new"


def test_a_dangling_link_creates_the_file_it_points_to(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "later.json")
    write_atomic(str(link), "new")
    assert link.is_symlink() and (tmp_path / "later.json").read_text() == "new"


def test_a_named_pipe_is_written_in_place_and_stays_a_pipe(tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_atomic(str(fifo), "through the pipe")
    reader.join(timeout=10)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.fifo"]     # no temporary file left beside it


def test_a_pipe_is_a_writable_output(tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    check_writable_file(str(fifo))


def test_a_folder_is_not(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        check_writable_file(str(tmp_path))
