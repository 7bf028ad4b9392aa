"""Checkpoints are atomic and checksummed: a torn or corrupt newest one is skipped for the previous one."""

import json
import os

import pytest

torch = pytest.importorskip("torch")

from executor.train import checkpoint
from executor.train.atomic import copy_dir_atomic, remove_stale_tmp


def state(step: int) -> dict:
    g = torch.Generator().manual_seed(step)
    return {"model": {"w": torch.randn(64, 64, generator=g)}, "step": step,
            "rng": {"python": (3, tuple(range(5)), None)}}


def test_round_trip_restores_every_tensor_and_value(tmp_path):
    saved = checkpoint.save(tmp_path, 5, state(5))
    meta, loaded = checkpoint.load(saved.path)
    assert meta["step"] == 5 and loaded["step"] == 5
    assert torch.equal(loaded["model"]["w"], state(5)["model"]["w"])
    assert loaded["rng"]["python"] == (3, tuple(range(5)), None)
    assert saved.bytes == checkpoint.checkpoint_bytes(saved.path)


def test_only_the_newest_keep_are_kept(tmp_path):
    for step in (1, 2, 3, 4):
        checkpoint.save(tmp_path, step, state(step), keep=2)
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path)] == [4, 3]


def test_corrupt_newest_falls_back_to_previous(tmp_path):
    checkpoint.save(tmp_path, 1, state(1))
    newest = checkpoint.save(tmp_path, 2, state(2)).path
    data = bytearray((newest / checkpoint.STATE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (newest / checkpoint.STATE).write_bytes(bytes(data))
    path, skipped = checkpoint.latest_valid(tmp_path)
    assert path.name == checkpoint.ckpt_name(1)
    assert skipped == [f"{checkpoint.ckpt_name(2)}: corrupt (checksum mismatch)"]


def test_torn_newest_without_meta_falls_back_to_previous(tmp_path):
    checkpoint.save(tmp_path, 1, state(1))
    newest = checkpoint.save(tmp_path, 2, state(2)).path
    os.unlink(newest / checkpoint.META)
    path, skipped = checkpoint.latest_valid(tmp_path)
    assert path.name == checkpoint.ckpt_name(1) and "torn" in skipped[0]


def test_truncated_state_is_torn(tmp_path):
    newest = checkpoint.save(tmp_path, 2, state(2)).path
    with open(newest / checkpoint.STATE, "r+b") as f:
        f.truncate(100)
    assert checkpoint.verify(newest) == f"{checkpoint.ckpt_name(2)}: torn (100 of " \
        f"{json.loads((newest / checkpoint.META).read_text())['bytes']} bytes)"
    assert checkpoint.latest_valid(tmp_path) == (None, [checkpoint.verify(newest)])


def test_leftover_temporary_folder_is_ignored_and_cleaned(tmp_path):
    checkpoint.save(tmp_path, 1, state(1))
    tmp = tmp_path / ".tmp-ckpt-000000002-999"
    tmp.mkdir()
    (tmp / checkpoint.STATE).write_bytes(b"half")
    assert checkpoint.latest_valid(tmp_path)[0].name == checkpoint.ckpt_name(1)
    remove_stale_tmp(tmp_path)
    assert not tmp.exists()


def test_saving_a_step_again_replaces_it_whole(tmp_path):
    checkpoint.save(tmp_path, 3, state(3))
    again = checkpoint.save(tmp_path, 3, state(30))
    _, loaded = checkpoint.load(again.path)
    assert loaded["step"] == 30
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.ckpt_name(3)]


def test_atomic_copy_is_intact_at_the_destination(tmp_path):
    src = checkpoint.save(tmp_path / "a", 7, state(7)).path
    copied = copy_dir_atomic(src, tmp_path / "b" / src.name)
    assert copied == checkpoint.checkpoint_bytes(src)
    assert checkpoint.verify(tmp_path / "b" / src.name) is None
