"""A request at K times its size: K copies of its fleet and jobs side by side, every name made unique per copy.

    .venv/bin/python bench/copies.py REQUEST.json K OUT.json [--time-limit S]

Why: the apart generator (`bench/gen_apart.py`) draws medium requests only, and the large family is one
generator's shapes. K copies keep each apart shape (node groups, gangs, quotas, `allowed`, running jobs,
down nodes) at K times the jobs and devices: regions, links, clusters, node prefixes and job ids get a
`-kC` suffix (node names `PREFIXkC-i`), each job's `data_region`, `regions`, `checkpoint_region` and
`current` point into its own copy, and each quota's devices are multiplied by K (its tenant's jobs are K
times as many). Copies share no link, but a job without `regions` may run in any copy: every job has
about K times the options, as on a fleet K times as wide.
"""

from __future__ import annotations

import argparse
import json
import pathlib


def copies(request: dict, k: int) -> dict:
    """`request` at `k` times its size (module docstring); `request` is left as it was."""
    if k < 1:
        raise ValueError(f"K must be at least 1, got {k}")
    fleet = request["fleet"]
    out = json.loads(json.dumps(request))
    nf: dict = {"regions": [], "links": [], "clusters": [], "down_nodes": []}
    jobs = []
    for c in range(k):
        def region(name: str | None, c: int = c) -> str | None:
            return None if name is None else f"{name}-k{c}"

        node = {}
        nf["regions"] += [{**r, "name": region(r["name"])} for r in fleet["regions"]]
        nf["links"] += [{**li, "a": region(li["a"]), "b": region(li["b"])} for li in fleet.get("links", [])]
        for cl in fleet["clusters"]:
            groups = []
            for g in cl["node_groups"]:
                prefix = f"{g['prefix']}k{c}-"
                node.update({f"{g['prefix']}{i}": f"{prefix}{i}" for i in range(g["count"])})
                groups.append({**g, "prefix": prefix})
            nf["clusters"].append({**cl, "name": f"{cl['name']}-k{c}", "region": region(cl["region"]),
                                   "node_groups": groups})
        nf["down_nodes"] += [node[n] for n in fleet.get("down_nodes", [])]
        for j in request["jobs"]:
            j2 = json.loads(json.dumps(j))
            j2["id"] = f"{j['id']}-k{c}"
            for key in ("data_region", "checkpoint_region"):
                if j2.get(key):
                    j2[key] = region(j2[key])
            if j2.get("regions"):
                j2["regions"] = [region(r) for r in j2["regions"]]
            if j2.get("current"):
                cur = j2["current"]
                cur["cluster"] = f"{cur['cluster']}-k{c}"
                cur["nodes"] = {node[n]: v for n, v in cur["nodes"].items()}
            jobs.append(j2)
    out["fleet"] = nf
    out["jobs"] = jobs
    out["quotas"] = [{**q, "devices": q["devices"] * k} for q in request.get("quotas", [])]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("request")
    ap.add_argument("k", type=int)
    ap.add_argument("out")
    ap.add_argument("--time-limit", type=float, default=None, help="policy.time_limit_s of the copy")
    a = ap.parse_args()
    if a.k < 1:
        ap.error(f"K: at least 1, got {a.k}")
    try:
        request = json.loads(pathlib.Path(a.request).read_text())
        out = copies(request, a.k)
    except (OSError, ValueError, KeyError, TypeError) as e:
        ap.error(f"{a.request}: not a request this can copy ({type(e).__name__}: {e})")
    if a.time_limit is not None:
        out.setdefault("policy", {})["time_limit_s"] = a.time_limit
    pathlib.Path(a.out).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
