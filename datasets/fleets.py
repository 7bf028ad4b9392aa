"""Fleets: a `FLEET.json` is the contract's `fleet` object; builders for the Philly machine list, the
Alibaba v2023 node list (with a slice carve and a scale factor), the contended single-cluster benchmark
fleet and seeded multi-region synthetic fleets."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence

from datasets.errors import TraceFormatError
from datasets.rows import CsvReader, check_header, open_csv, parse_int, row_width
from datasets.sharing import ANY_MODEL, slice_name
from models import BadRequest, FieldError, Fleet, parse_request
from models.fleet_index import fleet_devices

__all__ = ["alibaba_fleet", "fleet_accelerators", "fleet_devices", "load_fleet", "parse_carve", "parse_fleet",
           "philly_fleet",
           "single_cluster_fleet", "synthetic_fleet"]


def load_fleet(path: str) -> Fleet:
    """A FLEET.json file (the contract's `fleet` object), validated by the contract's own rules."""
    from datasets.files import InputError, read_json

    try:
        data = read_json(path, "fleet")
    except InputError as exc:
        raise BadRequest([FieldError("fleet", path, str(exc))]) from None
    return parse_fleet(data)


def parse_fleet(data: object) -> Fleet:
    """Validate a decoded fleet object; BadRequest paths start with `fleet.`. A value that is not an object
    is named as `parse_request` names a request that is not one: a scalar as it is (`null`, not Python's
    `NoneType`), a list by its kind."""
    if not isinstance(data, dict):
        raise BadRequest([FieldError("fleet", "list" if isinstance(data, list) else data,
                                     "a fleet is a JSON object")])
    return parse_request({"fleet": data}).fleet


def _check_machine_row(row: list[str], cols: dict[str, int], key: str, seen: dict[str, int], line: int) -> None:
    """Raise ValueError unless `row` reaches every column and names (in `key`) a machine not listed
    before: a machine listed twice would be counted twice. Records it in `seen`."""
    if len(row) < row_width(cols):
        raise ValueError(f"row: expected {row_width(cols)} columns, got {len(row)}")
    name = row[cols[key]].strip()
    if not name:
        raise ValueError(f"{key}: empty")
    if name in seen:
        raise ValueError(f"{key}: duplicate {name!r} (first on line {seen[name]})")
    seen[name] = line


def philly_fleet(machines_csv: str, region: str = "philly", cluster: str = "philly") -> Fleet:
    """The Philly machine list (`machines_philly.csv`) as one region and one cluster.

    Machines are grouped by (GPUs per machine, GPU memory); each group is a node group whose
    accelerator is `GPU-<mem>GB` (Philly does not disclose the GPU model; the 12 GB and 24 GB cards are
    kept apart because a job runs on one type). The official `num_gpus` is used, not the inferred count.
    """
    groups: Counter[tuple[int, int]] = Counter()
    seen: dict[str, int] = {}
    with open_csv(machines_csv) as f:
        reader = CsvReader(machines_csv, f)
        cols = check_header(machines_csv, next(reader, None), ("machine_id", "num_gpus", "gpu_mem_gb"))
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            try:
                _check_machine_row(row, cols, "machine_id", seen, reader.line_num)
                gpus = parse_int(row[cols["num_gpus"]].strip(), "num_gpus", minimum=1)
                mem = parse_int(row[cols["gpu_mem_gb"]].strip(), "gpu_mem_gb", minimum=1)
            except ValueError as exc:
                raise TraceFormatError(machines_csv, reader.line_num, str(exc)) from None
            groups[(gpus, mem)] += 1
    node_groups = [
        {"prefix": f"{cluster}-{gpus}g{mem}-", "count": n, "accelerator": f"GPU-{mem}GB", "devices": gpus}
        for (gpus, mem), n in sorted(groups.items())
    ]
    return parse_fleet({"regions": [{"name": region}],
                        "clusters": [{"name": cluster, "region": region, "node_groups": node_groups}]})


def parse_carve(text: str) -> list[tuple[int, float]]:
    """`K:SHARE[,K:SHARE...]` (e.g. `2:0.4,4:0.1`) -> [(K, share)]: SHARE of each model's nodes carved
    into 1/K slices; K an integer 2..64, shares > 0 summing to at most 1. ValueError names the part."""
    out: list[tuple[int, float]] = []
    for part in (p.strip() for p in text.split(",")):
        k_txt, sep, share_txt = part.partition(":")
        try:
            k, share = int(k_txt), float(share_txt)
        except ValueError:
            k, share = 0, -1.0
        if not sep or not 2 <= k <= 64 or not 0 < share <= 1:
            raise ValueError(f"carve {part!r}: expected K:SHARE with K an integer 2..64 and 0 < SHARE <= 1, "
                             f"e.g. 2:0.4 (40 % of each model's nodes in halves)")
        if any(k == kk for kk, _ in out):
            raise ValueError(f"carve {part!r}: 1/{k} slices given twice")
        out.append((k, share))
    if sum(s for _, s in out) > 1 + 1e-9:
        raise ValueError(f"carve {text!r}: the shares add up to {sum(s for _, s in out):g}, more than 1")
    return out


def alibaba_fleet(nodes_csv: str, carve: Sequence[tuple[int, float]] = (), scale: float = 1.0,
                  region: str = "alibaba", cluster: str = "alibaba") -> Fleet:
    """The Alibaba GPU v2023 node list (`openb_node_list_all_node.csv`: `sn, cpu_milli, memory_mib, gpu,
    model`; `num_gpu` is read where `gpu` is absent) as one region and one cluster.

    Nodes with GPUs are grouped by (model, GPUs per node); CPU-only nodes are left out (a node with GPUs
    but no model is model `GPU`). `scale` keeps `count * scale` nodes of each group (rounded half up; a
    group that rounds to none is left out, so a small scale drops the rarest models), so a user can shrink
    the fleet until it contends. `carve` [(K, share)] turns `share` of each group's
    nodes (rounded half up, cumulatively; the rest stay whole) into nodes of 1/K slices: accelerator `MODEL:1/K`,
    `devices` = GPUs x K. The carve is fixed for the replay (`datasets/sharing.py`).
    """
    if not 0 < scale <= 1:
        raise ValueError(f"scale: expected 0 < scale <= 1, got {scale:g}")
    groups: Counter[tuple[str, int]] = Counter()
    seen: dict[str, int] = {}
    with open_csv(nodes_csv) as f:
        reader = CsvReader(nodes_csv, f)
        header = next(reader, None)
        gpu_col = "gpu" if header is not None and "gpu" in [h.strip() for h in header] else "num_gpu"
        cols = check_header(nodes_csv, header, ("sn", gpu_col, "model"))
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            try:
                _check_machine_row(row, cols, "sn", seen, reader.line_num)
                gpus = parse_int(row[cols[gpu_col]].strip(), gpu_col, minimum=0)
                model = row[cols["model"]].strip() or ANY_MODEL
                if gpus and (":" in model or "/" in model or "|" in model):
                    raise ValueError(f"model: a GPU model name has no ':', '/' or '|', got {model!r}")
            except ValueError as exc:
                raise TraceFormatError(nodes_csv, reader.line_num, str(exc)) from None
            if gpus:
                groups[(model, gpus)] += 1
    if not groups:
        raise TraceFormatError(nodes_csv, reader.line_num, "no node with GPUs")
    node_groups = []
    for (model, gpus), n in sorted(groups.items()):
        kept = math.floor(n * scale + 0.5)
        tag = f"{cluster}-{model.lower()}-{gpus}g"
        done, cum = 0, 0.0
        for k, share in carve:
            cum += share
            c = min(kept, math.floor(kept * cum + 0.5)) - done
            if c > 0:
                node_groups.append({"prefix": f"{tag}-s{k}-", "count": c, "accelerator": slice_name(model, k),
                                    "devices": gpus * k})
                done += c
        if kept - done > 0:
            node_groups.append({"prefix": f"{tag}-", "count": kept - done, "accelerator": model, "devices": gpus})
    if not node_groups:
        raise ValueError(f"scale {scale:g} leaves no node of {nodes_csv} (largest group: {max(groups.values())} "
                         f"nodes)")
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

