"""From a pool-level choice (job -> option, replicas) to nodes: packing with repair.

`realize` packs a whole plan; `realize_delta` starts from a packed plan and repacks only the
jobs whose choice changed, which is what makes a neighbourhood-search step cheap at planet
size (20,000 jobs) where a full repack costs about a second.
"""

from __future__ import annotations

import numpy as np

from placement.candidates import Options
from placement.greedy import _place_best, grow_all, option_gains
from placement.instance import Instance
from placement.packing import Packing, fill_order
from placement.stop import PassDeadline


def realize(inst: Instance, opts: Options, choice: dict[int, tuple[int, int]],
            deadline: float | None = None, by_value: bool = False) -> Packing:
    """Pack a pool-level solution onto nodes. Kept jobs hold soft reservations on their nodes;
    changes pack largest replicas first around them; a change that does not fit may then take
    the room of kept jobs worth less per device (they are placed again, or preempted, after);
    what still does not pack is repaired greedily, then leftover room is filled.

    Past `deadline` the pass places only protected jobs (constraint 5) and returns what it has:
    a valid plan, maybe with jobs left waiting that a full pass would have placed (at planet
    size a pass takes 2-6 s on a loaded machine, more than an estimate can promise). `by_value`
    packs the changes most valuable per device first rather than largest first (a greedy's
    order: about as good packed, and a pass cut short then loses the least valuable jobs)."""
    stop = PassDeadline(deadline)
    pk = Packing(inst, opts)
    keeps = [j for j, (o, _) in choice.items() if opts.keep[o]]
    changes = [(j, o, r) for j, (o, r) in choice.items() if not opts.keep[o]]
    pk.reserve_running(keeps)
    for j in sorted(keeps, key=lambda j: (not inst.jobs[j].protected, j)):
        if inst.jobs[j].protected:
            pk.try_keep(j)
    dpr = opts.dpr[[o for _, o, _ in changes]].tolist() if changes else []
    if by_value:
        dens = (opts.coef[[o for _, o, _ in changes]] / np.maximum(dpr, 1)).tolist() if changes else []
        order = sorted(range(len(changes)), key=lambda k: (not inst.jobs[changes[k][0]].protected, -dens[k],
                                                          changes[k][0]))
    else:
        order = sorted(range(len(changes)), key=lambda k: (not inst.jobs[changes[k][0]].protected, -dpr[k],
                                                          -changes[k][2] * dpr[k], changes[k][0]))
    changes = [changes[k] for k in order]
    failed = []
    for j, o, r in changes:
        if stop.passed() and not inst.jobs[j].protected:
            continue
        if not pk.try_option(o, target=r, use_soft=False):
            failed.append((j, o, r))
    still = []
    for j, o, r in sorted(failed, key=lambda t: (-opts.coef[t[1]] / opts.dpr[t[1]], t[0])):
        if stop.passed() and not inst.jobs[j].protected:
            continue
        if not pk.try_option(o, target=r, use_soft=True, displace_below=float(opts.coef[o] / opts.dpr[o])):
            still.append(j)
    for j in sorted(keeps):
        pk.try_keep(j)   # cheap (a look at its own nodes), and what keeps running jobs running
    for j in list(pk.reserved):
        pk.release(j)
    gain, _ = option_gains(inst, opts, None)
    for j in still + sorted(pk.broken):
        if stop.passed() and not inst.jobs[j].protected:
            continue
        _place_best(pk, j, gain, require_positive=False)
    if stop.passed():   # protected jobs the choice left out still go in (constraint 5), nothing else
        for i in inst.jobs:
            if i.protected and i.index not in pk.choice:
                _place_best(pk, i.index, gain, require_positive=False)
        return pk
    rest = np.array([i.index for i in inst.jobs if i.index not in pk.choice], dtype=np.int64)
    # each waiting job's best value per device over its options (-1 with none), in one pass
    per = gain / np.maximum(opts.hi * opts.dpr, 1)
    best = np.full(len(inst.jobs), -np.inf)
    np.maximum.at(best, opts.job, per)
    dens = np.where(np.isneginf(best), -1.0, best)
    for j in fill_order(pk, rest[np.lexsort((rest, -dens[rest]))]):
        if stop.passed() and not inst.jobs[j].protected:
            continue
        _place_best(pk, j, gain, require_positive=False)
    grow_all(pk, stop.passed)
    return pk


def realize_delta(inst: Instance, opts: Options, base: Packing, choice: dict[int, tuple[int, int]],
                  changed: set[int], gain: np.ndarray) -> Packing:
    """`base` with the jobs in `changed` taken out and packed again as `choice` says (what does not
    pack is repaired greedily, then grown into room it left); every other job stays on its nodes."""
    pk = base.copy()
    for j in changed:
        pk.unplace(j)
    keeps = [j for j in changed if j in choice and opts.keep[choice[j][0]]]
    moves = [(j, *choice[j]) for j in changed if j in choice and not opts.keep[choice[j][0]]]
    failed = []
    for j in sorted(keeps, key=lambda j: (not inst.jobs[j].protected, j)):
        if not pk.try_keep(j):
            failed.append(j)
    moves.sort(key=lambda t: (not inst.jobs[t[0]].protected, -int(opts.dpr[t[1]]), -t[2] * int(opts.dpr[t[1]]), t[0]))
    for j, o, r in moves:
        if not pk.try_option(o, target=r, use_soft=False):
            failed.append(j)
    for j in failed:
        _place_best(pk, j, gain, require_positive=False)
    for j in sorted(changed):
        o = pk.choice.get(j)
        if o is not None and not opts.keep[o] and opts.coef[o] > 0:
            pk.grow(j, int(opts.hi[o]))
    return pk
