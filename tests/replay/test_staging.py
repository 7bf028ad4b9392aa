"""replay.staging: a run moved into its folder whole, a Ctrl-C during the move held until it ends."""

import os
import signal

import pytest

import replay.staging
from replay.staging import Layout, staged

LAYOUT = Layout(files=frozenset({"summary.json", "jobs.csv", "queue.png"}))


def test_a_sigint_during_the_commit_is_held_until_the_run_is_in_place(tmp_path, monkeypatch):
    out = tmp_path / "o"
    out.mkdir()
    (out / "summary.json").write_text("old")
    (out / "queue.png").write_text("old picture")
    move = replay.staging._move_file

    def move_then_sigint(src, dst):
        move(src, dst)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(replay.staging, "_move_file", move_then_sigint)
    with pytest.raises(KeyboardInterrupt), staged(str(out), LAYOUT) as stage:
        for name in ("jobs.csv", "summary.json"):
            with open(os.path.join(stage, name), "w") as f:
                f.write("new")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"jobs.csv": "new", "summary.json": "new"}
