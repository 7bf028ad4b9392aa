"""A small multi-node Ray cluster inside this machine for the `ray`-marked tests.

Ray listens on every interface and advertises the machine's address, so these tests run only where
127.0.0.1 is the only address up (`unshare -n sh -c 'ip link set lo up; exec ...'`, as `.ci/run` does)
and skip, saying why, anywhere else; the README's plain `pytest` never starts Ray on the host network.
"""

from __future__ import annotations

import os

OBJECT_STORE_BYTES = 80 * 1024 * 1024


def non_loopback_up() -> list[str]:
    """Interfaces of this process's network namespace, other than loopback, that are up."""
    from tests.support.browser import interfaces_up

    return [name for name in interfaces_up() if name != "lo"]


def skip_reason() -> str | None:
    """Why the Ray tests cannot run here (None when they can)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "ray is not installed (pip install -e '.[ray]')"
    up = non_loopback_up()
    if up:
        return (f"interfaces other than loopback are up ({', '.join(up)}): Ray would listen on them; run inside "
                f"`unshare -n sh -c 'ip link set lo up; exec .venv/bin/python -m pytest -m ray'`")
    return None


def node_args(name: str, cpus: int = 1) -> dict:
    """One test node: `cpus` CPUs, a small object store, the resource naming it as fleet node `name`."""
    from executor.train.ray_gang import node_resource

    return {"num_cpus": cpus, "resources": {node_resource(name): 1}, "object_store_memory": OBJECT_STORE_BYTES,
            "node_ip_address": "127.0.0.1"}


def start(names: list[str]):
    """A `ray.cluster_utils.Cluster` with one node per name (the first is the head), this process
    connected to it."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={**node_args(names[0]), "include_dashboard": False})
    for n in names[1:]:
        cluster.add_node(**node_args(n))
    ray.init(address=cluster.address, log_to_driver=False, logging_level="warning", _node_ip_address="127.0.0.1")
    cluster.wait_for_nodes(timeout=60)
    return cluster


def stop(cluster) -> None:
    import ray

    ray.shutdown()
    cluster.shutdown()
