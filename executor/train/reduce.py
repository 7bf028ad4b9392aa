"""Gradient reduction over logical ranks.

Exact mode sums the W logical-rank gradients along one canonical binary tree over [0, W): a node
[lo, hi) is the sum of [lo, mid) and [mid, hi) with mid = (lo + hi) // 2, left operand first. Every
physical worker sums the canonical nodes that tile its contiguous block of logical ranks; the nodes are
then combined along the same tree. Floating-point addition happens in the same order for any number of
workers, so the gradient (and so every parameter) is bitwise identical for any r and any schedule.

When r is a power of two the workers' blocks are themselves canonical nodes, and a recursive-doubling
exchange (log2 r rounds of point-to-point swaps, lower block as the left operand) completes the tree
while each worker sends log2(r) gradients; otherwise the workers all-gather their nodes.

Default mode accumulates the micro-batch gradients and all-reduces the sum, in float64 unless the spec
says float32, rounding to float32 once at the end. A float32 sum rounds differently for each r (the
ring all-reduce adds in another order than a worker's accumulation); Adam amplifies those last bits
to about 1e-6 of the largest parameter over 200 steps. A float64 sum of a few float32 values is
exact unless their exponents lie more than 29 bits apart, so once rounded to float32 it is, in
practice though not by construction, the same for every r, at twice the bytes on the wire.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

Node = tuple[int, int]


def children(node: Node) -> tuple[Node, Node]:
    lo, hi = node
    mid = (lo + hi) // 2
    return (lo, mid), (mid, hi)


def tiling(block: Node, world: int) -> list[Node]:
    """The maximal canonical nodes inside `block`, left to right."""
    out: list[Node] = []

    def walk(node: Node) -> None:
        lo, hi = node
        if hi <= block[0] or lo >= block[1]:
            return
        if block[0] <= lo and hi <= block[1]:
            out.append(node)
            return
        for child in children(node):
            walk(child)

    walk((0, world))
    return out


def tree_sum(node: Node, known: dict[Node, torch.Tensor]) -> torch.Tensor:
    """The canonical sum of `node` from the nodes already summed (leaves (k, k+1) are the gradients)."""
    if node in known:
        return known[node]
    left, right = children(node)
    return tree_sum(left, known) + tree_sum(right, known)


def block_of(rank: int, workers: int, world: int) -> Node:
    per = world // workers
    return rank * per, (rank + 1) * per


def exact_reduce(leaf_grads: dict[int, torch.Tensor], world: int) -> torch.Tensor:
    """The canonical-tree sum over all W logical gradients, identical bits on every worker and for any r.

    `leaf_grads` holds this worker's logical ranks' flat gradients (its contiguous block)."""
    workers = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    block = block_of(rank, workers, world)
    known = {(k, k + 1): g for k, g in leaf_grads.items()}
    pieces = [tree_sum(node, known) for node in tiling(block, world)]
    if workers == 1:
        return pieces[0]
    if workers & (workers - 1) == 0:
        return _recursive_doubling(pieces[0], rank, workers)
    return _gather_and_sum(pieces, rank, workers, world)


def _recursive_doubling(mine: torch.Tensor, rank: int, workers: int) -> torch.Tensor:
    """Butterfly exchange: at distance d, partners rank ^ d swap partial sums and both add lower + upper."""
    acc = mine
    d = 1
    while d < workers:
        partner = rank ^ d
        theirs = torch.empty_like(acc)
        ops = [dist.P2POp(dist.isend, acc, partner), dist.P2POp(dist.irecv, theirs, partner)]
        for req in dist.batch_isend_irecv(ops):
            req.wait()
        acc = acc + theirs if rank < partner else theirs + acc
        d *= 2
    return acc


def _gather_and_sum(pieces: list[torch.Tensor], rank: int, workers: int, world: int) -> torch.Tensor:
    tilings = [tiling(block_of(w, workers, world), world) for w in range(workers)]
    width = max(len(t) for t in tilings)
    send = torch.zeros(width, pieces[0].numel(), dtype=pieces[0].dtype)
    for i, p in enumerate(pieces):
        send[i] = p
    recv = [torch.empty_like(send) for _ in range(workers)]
    dist.all_gather(recv, send)
    known = {node: recv[w][i] for w in range(workers) for i, node in enumerate(tilings[w])}
    return tree_sum((0, world), known)


def allreduce_sum(flat: torch.Tensor) -> torch.Tensor:
    """Default mode: one all-reduce of the accumulated gradient."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    return flat
