"""benchmarks/shape_floor.py: the products a workload runs, recorded with their layouts and replayed alone."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import shape_floor  # noqa: E402
from shape_floor import ProductRecorder, TensorLayout, replay_seconds, sort_replay_seconds, sorted_elements  # noqa: E402


def test_recorded_flops_equal_torchs_flop_counter_for_a_pointnet_step():
    from ddbench.backbones.pointnet import PointNet

    torch.manual_seed(0)
    net = PointNet(num_classes=10)
    x = torch.randn(4, 256, 3)
    with FlopCounterMode(display=False) as counter, ProductRecorder() as recorder:
        net(x).logits.sum().backward()
    assert recorder.total_flops == counter.get_total_flops() > 0


def test_calls_are_counted_by_shape_and_their_flops_are_the_products():
    a, b, c = torch.randn(16, 32), torch.randn(32, 8), torch.randn(32, 4)
    with ProductRecorder() as recorder:
        for _ in range(3):
            a @ b
        a @ c
    assert sorted(recorder.calls.values()) == [1, 3]
    assert recorder.total_flops == 3 * 2 * 16 * 32 * 8 + 2 * 16 * 32 * 4


def test_replay_charges_each_distinct_call_its_count_times(monkeypatch):
    a, b, c = torch.randn(16, 32), torch.randn(32, 8), torch.randn(32, 4)
    with ProductRecorder() as recorder:
        for _ in range(3):
            a @ b
        a @ c
    widths = []

    def fake_best(fn, repeats, args=()):
        widths.append(args[1].shape[1])
        return {8: 1.0, 4: 10.0}[args[1].shape[1]]

    monkeypatch.setattr(shape_floor, "_best", fake_best)
    assert replay_seconds(recorder.calls) == pytest.approx(3 * 1.0 + 10.0)
    assert sorted(widths) == [4, 8]


def test_a_layout_keeps_expanded_and_transposed_strides_and_replays_to_the_same_shape():
    base = torch.randn(64, 3)
    expanded, transposed = base.expand(5, 64, 3), torch.randn(5, 1024, 3).transpose(1, 2)
    for t in (expanded, transposed):
        replica = TensorLayout.of(t).random()
        assert replica.shape == t.shape and replica.stride() == t.stride() and replica.dtype == t.dtype
    with ProductRecorder() as recorder:
        out = torch.bmm(expanded, transposed)
    (func, args, kwargs), = recorder.calls
    replayed = func(*[shape_floor._thaw(a) for a in args])
    assert replayed.shape == out.shape


def test_sorted_elements_and_sort_replay_count_every_call(monkeypatch):
    shapes = Counter({((2, 4, 16), False, "cpu"): 3, ((1, 4, 16), True, "cpu"): 2})
    assert sorted_elements(shapes) == (3 * 128, 2 * 64)
    monkeypatch.setattr(shape_floor, "_best", lambda fn, repeats, args=(): (fn(), 1.0)[1])  # each replay runs
    assert sort_replay_seconds(shapes) == pytest.approx(5.0)
