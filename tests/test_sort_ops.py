"""The threaded numpy sort of ddbench.ops.sort: the same arrays as numpy's own sort on any number of threads."""

import numpy as np
import pytest

from ddbench.ops.sort import ROWS_PER_BLOCK, argsort_descending, sort_descending


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threaded_sorts_equal_numpys(threads):
    rng = np.random.default_rng(0)
    values = rng.standard_normal((3, ROWS_PER_BLOCK, 64)).astype(np.float32)  # several blocks
    values[0, 0, :8] = 0.5  # ties
    expected = -np.sort(-values, axis=2)
    assert np.array_equal(sort_descending(values, threads), expected)
    order = argsort_descending(values, threads)
    assert np.array_equal(order, np.argsort(-values, axis=2))
    assert np.array_equal(np.take_along_axis(values, order, 2), expected)
    assert expected[1, 5, 0] == values[1, 5].max() and expected[1, 5, -1] == values[1, 5].min()


def test_an_error_in_a_sorting_thread_reaches_the_caller():
    from ddbench.ops import sort

    def block(lo, hi):
        if lo > 0:
            raise RuntimeError(f"block {lo}:{hi} failed")

    with pytest.raises(RuntimeError, match=f"block {ROWS_PER_BLOCK}:"):
        sort.by_blocks(3 * ROWS_PER_BLOCK, block, threads=2)
