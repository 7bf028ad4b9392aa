"""The training spec: validation that names the field, and the worker counts a job can use."""

import pytest

from executor.train.spec import TooMuchMemory, TrainSpec


def test_default_spec_is_the_checks_10m_parameter_job():
    spec = TrainSpec()
    assert spec.world_size == 4 and spec.steps == 200
    assert 9_500_000 <= spec.params() <= 10_500_000


def test_valid_workers_are_the_divisors_of_the_world_size():
    assert TrainSpec(world_size=12).valid_workers() == [1, 2, 3, 4, 6, 12]


def test_usable_workers_rounds_a_grant_down_to_a_divisor():
    spec = TrainSpec(world_size=4)
    assert spec.usable_workers(3) == 2
    assert spec.usable_workers(8) == 4
    with pytest.raises(ValueError, match="no worker count <= 0"):
        spec.usable_workers(0)


def test_unknown_field_is_named():
    with pytest.raises(ValueError, match=r"train\.batch: unknown train spec field"):
        TrainSpec.from_dict({"batch": 3})


@pytest.mark.parametrize(("field", "value"), [("world_size", 0), ("steps", -1), ("dropout", 1.0),
                                              ("keep_checkpoints", 1), ("lr", -0.1), ("exact", "yes"),
                                              ("reduce_dtype", "float16")])
def test_bad_value_is_named_with_its_value(field, value):
    with pytest.raises(ValueError, match=rf"train: train spec field '{field}' .* got {value!r}"):
        TrainSpec.from_dict({field: value})


def test_fingerprint_ignores_the_schedule_but_not_the_model():
    base = TrainSpec()
    assert TrainSpec(steps=10, checkpoint_every=3).fingerprint() == base.fingerprint()
    assert TrainSpec(hidden=64).fingerprint() != base.fingerprint()


def test_a_dataset_a_worker_could_not_hold_is_refused_naming_dataset_size_and_the_estimate():
    with pytest.raises(TooMuchMemory) as exc:
        TrainSpec.from_dict({"dataset_size": 2**31, "in_dim": 2**20, "hidden": 1})
    assert exc.value.path == "train.dataset_size" and exc.value.value == 2**31
    assert str(exc.value) == (
        "train.dataset_size: a worker would need about 9,007,800,659,215,816 bytes; at most 2,147,483,648 "
        "(MAX_WORKER_BYTES): the synthetic dataset (dataset_size 2,147,483,648 x in_dim 1,048,576, the teacher "
        "in_dim x classes) takes 9,007,800,617,271,296 bytes")


def test_a_model_a_worker_could_not_hold_is_refused_naming_hidden():
    with pytest.raises(TooMuchMemory) as exc:
        TrainSpec.from_dict({"hidden": 8192})        # 136 M parameters: weights, grads, AdamW, buffers ~5.5 GB
    assert exc.value.path == "train.hidden" and "about 5,464,179,328 bytes" in str(exc.value)
