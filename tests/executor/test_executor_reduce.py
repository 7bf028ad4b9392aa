"""The canonical reduction tree: the same additions in the same order for any number of workers."""

import pytest

torch = pytest.importorskip("torch")

from executor.train.reduce import block_of, children, tiling, tree_sum


def test_tiling_of_aligned_blocks_is_one_node_each():
    assert [tiling(block_of(w, 2, 8), 8) for w in range(2)] == [[(0, 4)], [(4, 8)]]
    assert tiling(block_of(0, 1, 4), 4) == [(0, 4)]


def test_tiling_of_unaligned_blocks_covers_them_with_canonical_nodes():
    # W = 6 on 3 workers: [2, 4) is not a node of the tree split at 3, so it takes two leaves
    assert [tiling(block_of(w, 3, 6), 6) for w in range(3)] == [[(0, 1), (1, 2)], [(2, 3), (3, 4)], [(4, 6)]]


def test_children_split_at_the_midpoint():
    assert children((0, 6)) == ((0, 3), (3, 6))


@pytest.mark.parametrize("world", [4, 6, 8, 12])
def test_tree_sum_is_bitwise_the_same_from_any_tiling(world):
    g = torch.Generator().manual_seed(world)
    leaves = {k: torch.randn(1000, generator=g) * 10 ** (k % 5) for k in range(world)}
    reference = tree_sum((0, world), {(k, k + 1): v for k, v in leaves.items()})
    for workers in [r for r in range(1, world + 1) if world % r == 0]:
        known = {}
        for w in range(workers):
            for node in tiling(block_of(w, workers, world), world):
                known[node] = tree_sum(node, {(k, k + 1): leaves[k] for k in range(*node)})
        assert torch.equal(tree_sum((0, world), known), reference)


def test_sequential_accumulation_differs_from_the_tree_in_general():
    """Why exact mode needs the tree: a left-to-right sum rounds differently for some inputs."""
    g = torch.Generator().manual_seed(1)
    leaves = [torch.randn(10000, generator=g) * 10 ** (k % 4) for k in range(4)]
    sequential = ((leaves[0] + leaves[1]) + leaves[2]) + leaves[3]
    tree = tree_sum((0, 4), {(k, k + 1): v for k, v in enumerate(leaves)})
    assert not torch.equal(sequential, tree)
