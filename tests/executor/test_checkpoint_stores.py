"""Checkpoint locations as fsspec URLs (`executor.train.stores`): a blob, then a checksummed manifest;
a reader trusts only a manifest whose checksum matches and whose blob has its size and checksum, so what a
writer that died leaves behind (a blob without its manifest), a torn manifest or a corrupt blob is skipped
for the previous checkpoint; a migrate copies between any two kinds of location. Run on `file://` (the
local disk through fsspec) and `memory://` (a second fsspec filesystem, in this process)."""

import json
import uuid

import pytest

torch = pytest.importorskip("torch")

from executor.train import stores
from executor.train.checkpoint import ckpt_name


def state(step: int) -> dict:
    g = torch.Generator().manual_seed(step)
    return {"step": step, "w": torch.randn(64, generator=g)}


@pytest.fixture(params=["file", "memory"])
def url(request, tmp_path) -> str:
    if request.param == "file":
        return f"file://{tmp_path}/region-a/j"
    return f"memory://ckpt-{uuid.uuid4().hex[:8]}/region-a/j"


def saved(url: str, steps=(10, 20, 30), keep: int = 5):
    store = stores.open_store(url)
    for s in steps:
        store.save(s, state(s), keep=keep, extra_meta={"reason": "periodic"})
    return store


def test_save_keeps_the_newest_and_loads_them_back(url):
    store = saved(url, keep=2)
    assert store.steps() == [30, 20]
    assert store.latest_valid() == (30, [])
    meta, st = store.load(30)
    assert meta["step"] == 30 and meta["reason"] == "periodic" and torch.equal(st["w"], state(30)["w"])
    names = sorted(n.rsplit("/", 1)[-1] for n in store.fs.ls(store._path(30), detail=False))
    assert len(names) == 2 and names[0] == "manifest.json" and names[1].startswith("state-")


def test_a_blob_whose_manifest_never_came_is_skipped(url):
    store = saved(url)
    store.fs.makedirs(store._path(40), exist_ok=True)                  # the writer died between the two
    store.fs.pipe_file(store._path(40, "state-dead.pt"), b"x" * 1000)
    assert store.latest_valid() == (30, [f"{ckpt_name(40)}: torn (no manifest.json)"])


def test_a_corrupt_blob_or_a_torn_manifest_is_skipped_for_the_previous_one(url):
    store = saved(url)
    body = json.loads(store.fs.cat_file(store._path(30, "manifest.json")))
    blob = store.fs.cat_file(store._path(30, body["blob"]))
    store.fs.pipe_file(store._path(30, body["blob"]), blob[:100] + bytes([blob[100] ^ 1]) + blob[101:])
    raw = store.fs.cat_file(store._path(20, "manifest.json"))
    store.fs.pipe_file(store._path(20, "manifest.json"), raw[: len(raw) // 2])
    assert store.latest_valid() == (10, [f"{ckpt_name(30)}: corrupt (checksum mismatch)",
                                         f"{ckpt_name(20)}: torn manifest.json (not JSON)"])


def test_a_manifest_edited_without_its_checksum_is_not_trusted(url):
    store = saved(url, steps=(10, 20))
    body = json.loads(store.fs.cat_file(store._path(20, "manifest.json")))
    store.fs.pipe_file(store._path(20, "manifest.json"), json.dumps({**body, "bytes": body["bytes"] + 1}).encode())
    assert store.latest_valid() == (10, [f"{ckpt_name(20)}: torn manifest.json (its checksum does not match)"])


def test_a_save_after_resuming_below_a_torn_checkpoint_removes_it(url):
    store = saved(url, steps=(10, 20))
    store.fs.makedirs(store._path(30), exist_ok=True)
    store.fs.pipe_file(store._path(30, "state-dead.pt"), b"x")
    assert store.latest_valid()[0] == 20
    store.save(25, state(25), keep=2)
    assert store.steps() == [25, 20]


def test_migrate_copies_the_newest_intact_checkpoint_between_any_two_kinds_of_location(url, tmp_path):
    src = saved(url)
    src.fs.makedirs(src._path(40), exist_ok=True)
    src.fs.pipe_file(src._path(40, "state-dead.pt"), b"x")
    folder = tmp_path / "region-b" / "j"
    written, seconds = stores.transfer(url, folder)                   # URL -> folder (atomic rename)
    assert src.steps() == [] and written > 0 and seconds >= 0
    local = stores.open_store(folder)
    assert local.latest_valid() == (30, [])
    back = f"file://{tmp_path}/region-c/j"
    stores.transfer(folder, back)                                       # folder -> URL (blob, manifest)
    assert not folder.exists()
    meta, st = stores.open_store(back).load(30)
    assert meta["step"] == 30 and meta["reason"] == "periodic" and torch.equal(st["w"], state(30)["w"])


def test_a_location_is_checked_before_any_worker_uses_it():
    assert stores.check_location("/mnt/ckpt") is None and stores.check_location("file:///mnt/ckpt") is None
    assert "local to one process" in stores.check_location("memory://x")
    assert stores.check_location("memory://x", shared=False) is None
    assert stores.check_location("nosuch://bucket/x") == "unknown fsspec protocol 'nosuch'"


def test_a_blob_whose_manifest_never_came_does_not_refuse_a_first_start(url):
    # nothing was published: the writer of the job's first checkpoint died between blob and manifest
    store = stores.open_store(url)
    store.fs.makedirs(store._path(10), exist_ok=True)
    store.fs.pipe_file(store._path(10, "state-dead.pt"), b"x" * 1000)
    assert store.resume_point() == (None, [f"{ckpt_name(10)}: torn (no manifest.json)"])


def test_a_published_manifest_with_a_corrupt_blob_and_nothing_older_refuses_the_resume(url):
    store = saved(url, steps=(10,))
    body = json.loads(store.fs.cat_file(store._path(10, "manifest.json")))
    store.fs.pipe_file(store._path(10, body["blob"]), b"y" * body["bytes"])
    with pytest.raises(stores.checkpoint.NoIntactCheckpoint, match=f"^no intact checkpoint in {url} to resume "
                       rf"from \({ckpt_name(10)}: corrupt \(checksum mismatch\)\)"):
        store.resume_point()
