"""`--ray HOST:PORT` where nothing listens: refused in seconds, one line, before Ray retries for minutes."""

import socket

import pytest


def test_a_ray_address_where_nothing_listens_is_refused_before_ray_init(monkeypatch):
    ray = pytest.importorskip("ray")
    from replay.ray_runner import RayUnavailable, init_ray

    with socket.socket() as s:           # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def no_init(*args, **kwargs):
        raise AssertionError("ray.init must not be reached")

    monkeypatch.setattr(ray, "init", no_init)
    with pytest.raises(RayUnavailable) as exc:
        init_ray(f"127.0.0.1:{port}")
    assert str(exc.value) == f"--ray 127.0.0.1:{port}: cannot connect to Ray at 127.0.0.1:{port}: Connection refused"
