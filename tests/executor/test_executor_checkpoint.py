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


def test_a_save_below_unusable_checkpoints_drops_them_and_keeps_itself(tmp_path):
    # a run that resumed from 4 below two corrupt checkpoints once pruned by position alone: [12, 8, 6, 4]
    # kept the unusable 12 and 8 and deleted the checkpoint it had just written (and 4)
    for step in (4, 8, 12):
        checkpoint.save(tmp_path, step, state(step), keep=3)
    for step in (8, 12):
        (tmp_path / checkpoint.ckpt_name(step) / checkpoint.STATE).write_bytes(b"")
    checkpoint.save(tmp_path, 6, state(6), keep=2)
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path)] == [6, 4]
    assert checkpoint.latest_valid(tmp_path) == (tmp_path / checkpoint.ckpt_name(6), [])


def test_a_failed_write_names_the_checkpoint_leaves_no_temporary_folder_and_the_previous_one_stands(tmp_path):
    # a full disk once surfaced as torch's "unexpected pos" RuntimeError, leaving the half-written .tmp-
    # folder to fill the disk further; a file size limit fails the write the same way (EFBIG)
    import resource
    import signal

    checkpoint.save(tmp_path, 1, state(1))
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, limit[1]))
    try:
        with pytest.raises(checkpoint.CheckpointWriteError) as err:
            checkpoint.save(tmp_path, 2, state(2))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert str(err.value) == f"cannot write checkpoint {tmp_path / checkpoint.ckpt_name(2)}: File too large"
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.ckpt_name(1)]
    assert checkpoint.latest_valid(tmp_path) == (tmp_path / checkpoint.ckpt_name(1), [])


def test_published_checkpoints_none_intact_refuse_the_resume_naming_each(tmp_path):
    # resuming from nothing silently restarted the job at step 0 and overwrote the damaged checkpoints
    from executor.train.stores import LocalStore

    for step in (4, 8):
        checkpoint.save(tmp_path, step, state(step))
    (tmp_path / checkpoint.ckpt_name(8) / checkpoint.STATE).write_bytes(b"")
    os.unlink(tmp_path / checkpoint.ckpt_name(4) / checkpoint.META)
    with pytest.raises(checkpoint.NoIntactCheckpoint) as err:
        LocalStore(tmp_path).resume_point()
    assert str(err.value) == (
        f"no intact checkpoint in {tmp_path} to resume from ({checkpoint.ckpt_name(8)}: torn (0 of "
        f"{json.loads((tmp_path / checkpoint.ckpt_name(8) / checkpoint.META).read_text())['bytes']} bytes); "
        f"{checkpoint.ckpt_name(4)}: torn (no meta.json)); restore one, or remove the folder to start the job afresh")
