"""The CPU sort of the per-channel sort of point-wise features (SADM, 3DDP), and its backend switch.

``DDBENCH_SORT`` = ``numpy`` (default: ``np.sort`` / ``np.argsort``, an order of magnitude faster than
``torch.sort`` on CPU for (B, 1024, 1024) float32) or ``torch``; recorded in every result
(:func:`ddbench.ops.backends.backend_record`). The sort itself is :func:`ddbench.methods.losses.sort_pointwise`;
this module holds the numpy side: :func:`sort_descending` and :func:`argsort_descending` sort every row of the
last axis, the rows split into blocks that a pool of ``torch.get_num_threads()`` threads sorts at once (numpy
releases the GIL while it sorts; docs/methods.md#sadm). Each row is sorted by the same numpy call it would get
alone, so the result is the same array whatever the number of threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ddbench.errors import ConfigError

SORT_BACKENDS = ("numpy", "torch")
#: rows per block: 256 rows of 1024 float32 are 1 MiB, so a block's negation and sort stay in cache
ROWS_PER_BLOCK = 256

_pools: dict[int, ThreadPoolExecutor] = {}


def sort_backend() -> str:
    """The CPU sort in use: ``numpy`` (default) or ``torch`` (``DDBENCH_SORT=torch``)."""
    value = os.environ.get("DDBENCH_SORT", "numpy").strip().lower() or "numpy"
    if value not in SORT_BACKENDS:
        raise ConfigError(f"DDBENCH_SORT={value!r} is not a sort backend; use {' or '.join(SORT_BACKENDS)}")
    return value


def sort_descending(values: np.ndarray, threads: int = 1) -> np.ndarray:
    """A new array: every row of the last axis of ``values`` sorted in descending order (signed values)."""
    rows = np.ascontiguousarray(values).reshape(-1, values.shape[-1])
    out = np.empty_like(rows)

    def block(lo: int, hi: int) -> None:
        part = out[lo:hi]
        np.negative(rows[lo:hi], out=part)  # ascending order of the negated values is descending order
        part.sort(axis=1)
        np.negative(part, out=part)

    by_blocks(len(rows), block, threads)
    return out.reshape(values.shape)


def argsort_descending(values: np.ndarray, threads: int = 1) -> np.ndarray:
    """The int64 indices that sort every row of the last axis of ``values`` in descending order:
    ``np.argsort(-values, axis=-1)``, row by row."""
    rows = np.ascontiguousarray(values).reshape(-1, values.shape[-1])
    out = np.empty(rows.shape, dtype=np.int64)

    def block(lo: int, hi: int) -> None:
        out[lo:hi] = np.argsort(-rows[lo:hi], axis=1)

    by_blocks(len(rows), block, threads)
    return out.reshape(values.shape)


def by_blocks(num_rows: int, block, threads: int, rows_per_block: int = ROWS_PER_BLOCK) -> None:
    """Run ``block(lo, hi)`` over consecutive ranges of ``rows_per_block`` rows, on ``threads`` threads when
    there is more than one range; exceptions propagate."""
    step = max(1, rows_per_block)
    bounds = [(lo, min(lo + step, num_rows)) for lo in range(0, num_rows, step)]
    if threads <= 1 or len(bounds) <= 1:
        for lo, hi in bounds:
            block(lo, hi)
        return
    pool = _pools.get(threads) or _pools.setdefault(threads, ThreadPoolExecutor(threads, "ddbench-sort"))
    for future in [pool.submit(block, lo, hi) for lo, hi in bounds]:
        future.result()
