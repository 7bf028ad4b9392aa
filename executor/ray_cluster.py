"""Connecting the executor's driver to Ray: an operator's cluster (`--ray ADDRESS`), or a local
`ray.cluster_utils.Cluster` with one Ray node per fleet node (each advertising the resource that names
it, one CPU, a small object store, on 127.0.0.1 only) started for the command and stopped after it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from executor.train.ray_gang import import_ray, node_resource

OBJECT_STORE_BYTES = 80 * 1024 * 1024


class RayNodesMissing(RuntimeError):
    """A fleet node that no live Ray node advertises (one line with the `ray start` that would fix it)."""


@contextlib.contextmanager
def ray_for_fleet(node_names: list[str], address: str | None = None, cpus_per_node: int = 1) -> Iterator[None]:
    """Ray connected for the duration: the connection this process already has, else joins `address`,
    else starts a local cluster of `node_names`; `RayNodesMissing` names a fleet node no live Ray node
    advertises."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = import_ray()
    if ray.is_initialized():        # this process is already connected (a test's cluster): use it, leave it up
        _check_advertised(ray, node_names, address or "auto")
        yield
        return
    if address is not None:
        ray.init(address=address, log_to_driver=False, logging_level="warning")
        try:
            _check_advertised(ray, node_names, address)
            yield
        finally:
            ray.shutdown()
        return
    from ray.cluster_utils import Cluster

    def args(name: str) -> dict:
        return {"num_cpus": cpus_per_node, "resources": {node_resource(name): 1},
                "object_store_memory": OBJECT_STORE_BYTES, "node_ip_address": "127.0.0.1"}

    cluster = Cluster(initialize_head=True, head_node_args={**args(node_names[0]), "include_dashboard": False})
    try:
        for n in node_names[1:]:
            cluster.add_node(**args(n))
        ray.init(address=cluster.address, log_to_driver=False, logging_level="warning", _node_ip_address="127.0.0.1")
        cluster.wait_for_nodes(timeout=120)
        yield
    finally:
        ray.shutdown()
        cluster.shutdown()


def _check_advertised(ray, node_names: list[str], address: str) -> None:
    missing = sorted(set(node_names) - _advertised(ray))
    if missing:
        raise RayNodesMissing(f"--ray {address}: no live Ray node advertises {node_resource(missing[0])} "
                           f"(start it with: ray start --address {address} --resources "
                           f"'{{\"{node_resource(missing[0])}\": 1}}')")


def _advertised(ray) -> set[str]:
    from executor.train.ray_gang import NODE_RESOURCE_PREFIX

    return {r[len(NODE_RESOURCE_PREFIX):] for n in ray.nodes() if n.get("Alive")
            for r in n.get("Resources", {}) if r.startswith(NODE_RESOURCE_PREFIX)}
