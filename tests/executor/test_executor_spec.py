"""The training spec: validation that names the field, and the worker counts a job can use."""

import pytest

from executor.train.spec import TrainSpec


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
