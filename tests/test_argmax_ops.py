"""ddbench.ops.argmax: the max of every row and where it is, as torch.max gives them."""

from __future__ import annotations

import torch

from ddbench.ops.argmax import max_and_argmax
from ddbench.ops.sort import ROWS_PER_BLOCK


def test_known_rows_give_their_first_maximum():
    values = torch.tensor([[1.0, 3.0, 3.0, 2.0], [-1.0, -5.0, -0.5, -0.5], [0.0, float("nan"), 9.0, float("nan")]])
    top, where = max_and_argmax(values)
    assert where.tolist() == [1, 2, 1]  # the first of tied maxima; the first NaN
    assert top[:2].tolist() == [3.0, -0.5] and torch.isnan(top[2])
    assert where.dtype == torch.int64


def test_many_blocks_on_two_threads_equal_torch_max(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    gen = torch.Generator().manual_seed(0)
    values = torch.randint(0, 7, (3, ROWS_PER_BLOCK + 5, 33), generator=gen).float()  # many ties
    values[1, 7, 4] = float("nan")
    top, where = max_and_argmax(values)
    expected_top, expected_where = torch.max(values, dim=-1)
    assert where.shape == (3, ROWS_PER_BLOCK + 5)
    assert torch.equal(where, expected_where)
    torch.testing.assert_close(top, expected_top, equal_nan=True)


def test_a_view_and_a_gradient_are_served():
    base = torch.randn(6, 10, generator=torch.Generator().manual_seed(1))
    top, where = max_and_argmax(base.t())  # not contiguous
    assert torch.equal(where, base.t().argmax(dim=-1))
    needs_grad = base.clone().requires_grad_()
    top, where = max_and_argmax(needs_grad)  # torch.max, which keeps the gradient
    assert top.requires_grad and torch.equal(where, base.argmax(dim=-1))
