"""Fleets: a `FLEET.json` is the contract's `fleet` object; builders for the Philly machine list,
the contended single-cluster benchmark fleet and seeded multi-region synthetic fleets."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter

from datasets.errors import TraceFormatError
from datasets.rows import check_header, parse_int
from models import BadRequest, FieldError, Fleet, parse_request
from models.fleet_index import fleet_devices

__all__ = ["fleet_accelerators", "fleet_devices", "load_fleet", "parse_fleet", "philly_fleet",
           "single_cluster_fleet", "synthetic_fleet"]


def load_fleet(path: str) -> Fleet:
    """A FLEET.json file (the contract's `fleet` object), validated by the contract's own rules."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except OSError as exc:
        raise BadRequest([FieldError("fleet", path, f"cannot read: {exc.strerror}")]) from None
    except ValueError as exc:
        raise BadRequest([FieldError("fleet", path, f"not valid JSON: {exc}")]) from None
    return parse_fleet(data)


def parse_fleet(data: object) -> Fleet:
    """Validate a decoded fleet object; BadRequest paths start with `fleet.`."""
    if not isinstance(data, dict):
        raise BadRequest([FieldError("fleet", type(data).__name__, "a fleet is a JSON object")])
    return parse_request({"fleet": data}).fleet


def philly_fleet(machines_csv: str, region: str = "philly", cluster: str = "philly") -> Fleet:
    """The Philly machine list (`machines_philly.csv`) as one region and one cluster.

    Machines are grouped by (GPUs per machine, GPU memory); each group is a node group whose
    accelerator is `GPU-<mem>GB` (Philly does not disclose the GPU model; the 12 GB and 24 GB cards are
    kept apart because a job runs on one type). The official `num_gpus` is used, not the inferred count.
    """
    groups: Counter[tuple[int, int]] = Counter()
    with open(machines_csv, newline="") as f:
        reader = csv.reader(f)
        cols = check_header(machines_csv, next(reader, None), ("machine_id", "num_gpus", "gpu_mem_gb"))
        for row in reader:
            if not row:
                continue
            try:
                gpus = parse_int(row[cols["num_gpus"]].strip(), "num_gpus", minimum=1)
                mem = parse_int(row[cols["gpu_mem_gb"]].strip(), "gpu_mem_gb", minimum=1)
            except (ValueError, IndexError) as exc:
                raise TraceFormatError(machines_csv, reader.line_num, str(exc)) from None
            groups[(gpus, mem)] += 1
    node_groups = [
        {"prefix": f"{cluster}-{gpus}g{mem}-", "count": n, "accelerator": f"GPU-{mem}GB", "devices": gpus}
        for (gpus, mem), n in sorted(groups.items())
    ]
    return parse_fleet({"regions": [{"name": region}],
                        "clusters": [{"name": cluster, "region": region, "node_groups": node_groups}]})


def single_cluster_fleet(nodes: int = 80, devices: int = 8, accelerator: str = "GPU",
                         region: str = "region-0", cluster: str = "cluster-0") -> Fleet:
    """One region, one cluster, `nodes` nodes of `devices` devices: the contended benchmark fleet (80 x 8)."""
    return parse_fleet({"regions": [{"name": region}], "clusters": [{
        "name": cluster, "region": region,
        "node_groups": [{"prefix": f"{cluster}-n", "count": nodes, "accelerator": accelerator, "devices": devices}],
    }]})


def synthetic_fleet(regions: int = 3, clusters_per_region: int = 2, nodes_per_cluster: int = 16,
                    accelerators: tuple[str, ...] = ("H100", "A100"), devices: int = 8, seed: int = 0,
                    link_gbps: float = 0.5) -> Fleet:
    """A seeded multi-region fleet: regions in a full mesh of links, each cluster one accelerator type
    (drawn by the seed), node counts jittered by up to a quarter around `nodes_per_cluster`."""
    rng = random.Random(seed)
    names = [f"region-{i}" for i in range(regions)]
    clusters = []
    for r, region in enumerate(names):
        for c in range(clusters_per_region):
            acc = accelerators[rng.randrange(len(accelerators))]
            jitter = max(1, nodes_per_cluster // 4)
            count = max(1, nodes_per_cluster + rng.randint(-jitter, jitter))
            name = f"r{r}c{c}"
            clusters.append({"name": name, "region": region, "node_groups": [
                {"prefix": f"{name}-{acc.lower()}-", "count": count, "accelerator": acc, "devices": devices}]})
    links = [{"a": a, "b": b, "gbps": link_gbps} for i, a in enumerate(names) for b in names[i + 1:]]
    return parse_fleet({"regions": [{"name": n, "storage_gbps": 2.0} for n in names], "links": links,
                        "clusters": clusters})


def fleet_accelerators(fleet: Fleet) -> list[str]:
    """Every accelerator type in the fleet, sorted."""
    return sorted({g.accelerator for c in fleet.clusters for g in c.node_groups})

