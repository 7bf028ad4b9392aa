"""The executor names folders after job ids and regions, which the contract lets be any text: every
folder stays under the work folder, two ids never share one, and a launch never reuses an earlier
run's folder (found by fuzzing `meridian run`, 2026-12-03: `../../x` wrote outside --workdir, `a` and
`./a` shared a spec and checkpoints, a rerun read the last run's timings)."""


import pytest

from executor.torch_backend import TorchExecutor
from executor.train.cycle import Job
from executor.train.spec import TrainSpec
from executor.train.storage import job_dir, path_part

HOSTILE = ["..", ".", "../../escape", "/tmp/abs-escape", "a/b", "./a", "a\x00b", "x" * 300, "-rf", "~a",
           "\u4f5c\u696d-1", ""]


def test_a_plain_id_is_its_own_folder_name():
    assert [path_part(x) for x in ("a", "llm-pretrain.v2", "job_7", "7f04ca")] == \
        ["a", "llm-pretrain.v2", "job_7", "7f04ca"]


@pytest.mark.parametrize("name", HOSTILE)
def test_any_other_id_is_one_safe_component(name):
    part = path_part(name)
    assert "/" not in part and "\x00" not in part and part not in (".", "..", "")
    assert len(part.encode()) <= 100 and not part.startswith((".", "-"))


def test_ids_that_name_one_path_get_different_folders():
    names = list(dict.fromkeys(["a", "./a", "a/", "a/.", "A", *HOSTILE]))
    assert len({path_part(n) for n in names}) == len(names)


@pytest.mark.parametrize("name", HOSTILE)
def test_a_checkpoint_folder_stays_under_the_storage_root(tmp_path, name):
    root = tmp_path / "storage"
    path = job_dir(root, name, name)
    assert path.parent.parent == root and path.resolve().is_relative_to(root.resolve())


def test_a_job_spec_is_written_inside_the_work_folder(tmp_path):
    work = tmp_path / "p" / "wd"
    ex = TorchExecutor(work)
    ex.add_job("../../escape-spec", TrainSpec(steps=5), "us-east")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) == 1 and written[0].parent == work / "specs"


def test_a_launch_never_reuses_an_earlier_runs_folder(tmp_path):
    (tmp_path / "runs" / "a" / "launch-000").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "launch-001").mkdir()
    job = Job("a", tmp_path / "spec.json", tmp_path / "runs", tmp_path / "storage", "r")
    assert job.next_run_dir() == tmp_path / "runs" / "a" / "launch-002"
    assert job.next_run_dir() == tmp_path / "runs" / "a" / "launch-003"
