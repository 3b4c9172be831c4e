"""The floor of a workload at its own product shapes: every matrix product it runs, replayed alone.

The speed table's floor charges an iteration's FLOPs at the machine's peak rate, measured on one large square
product ((1024 x 1024) @ (1024 x 8192)). PointNet's products are not square: most of them have an inner
dimension of 64 or 128 and, for 3DDP, 252 points per cloud, and the BLAS libraries run such shapes well below
their peak. The ratio to the peak floor therefore mixes two things: what the library does with these shapes,
and what ddbench spends around its products (element-wise passes, copies, Python). This module separates them.

:class:`ProductRecorder` is a ``TorchDispatchMode`` that records every call of an operator torch's own FLOP
counter knows (``torch.utils.flop_counter.flop_registry``: mm, addmm, bmm, baddbmm, convolution and its
backward, ...) with the shapes, strides and dtypes of its tensor arguments and its other arguments, how often
each such call ran, and its FLOPs (by the FLOP counter's own formulas, so the total equals
``FlopCounterMode``'s). :func:`replay_seconds` runs each distinct call alone on random tensors of the same layout
(best of ``repeats`` after one warm-up) and sums count x time: the seconds the workload's products take when
nothing else runs. ``achieved / that`` is what ddbench spends beyond its products; ``that / peak floor`` is how
far the library's products at these shapes sit from its peak.

Sorts are replayed the same way (``sort_replay_seconds``): every ``sort_pointwise`` call's shape, sorted by the
same functions on random values.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from ddbench.ops.sort import argsort_descending, sort_descending


@dataclass(frozen=True)
class TensorLayout:
    """What a replay needs of a tensor argument: its shape, strides, dtype and device (not its values)."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: str

    @classmethod
    def of(cls, t: torch.Tensor) -> TensorLayout:
        return cls(tuple(t.shape), tuple(t.stride()), t.dtype, str(t.device))

    def random(self) -> torch.Tensor:
        """A tensor of this layout on random values (strided views of one buffer, so that expanded and
        transposed arguments keep their strides)."""
        span = 1 + sum((s - 1) * st for s, st in zip(self.shape, self.stride)) if all(self.shape) else 0
        base = torch.randn(max(span, 1), device=self.device).to(self.dtype)
        return base.as_strided(self.shape, self.stride)


def _freeze(value):
    """Arguments as a hashable key: tensors as their layout, lists as tuples."""
    if isinstance(value, torch.Tensor):
        return TensorLayout.of(value)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def _thaw(value):
    """The inverse of :func:`_freeze`, with random tensors in place of layouts (lists where aten wants them)."""
    if isinstance(value, TensorLayout):
        return value.random()
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


class ProductRecorder(TorchDispatchMode):
    """Records every call of an operator in torch's FLOP registry: ``calls[(op, args, kwargs)]`` counts it and
    ``flops[...]`` holds the FLOPs of one such call."""

    def __init__(self):
        super().__init__()
        self.calls: Counter = Counter()
        self.flops: dict = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet in flop_registry:
            key = (func, _freeze(args), _freeze(kwargs))
            self.calls[key] += 1
            if key not in self.flops:
                self.flops[key] = flop_registry[packet](*args, **kwargs, out_val=out)
        return out

    @property
    def total_flops(self) -> int:
        return flops_of(self.calls, self.flops)


def flops_of(calls: Counter, flops_per_call: dict) -> int:
    """The FLOPs of recorded calls (``ProductRecorder.calls``, or a difference of two), given each distinct
    call's FLOPs (``ProductRecorder.flops``)."""
    return sum(flops_per_call[key] * n for key, n in calls.items())


def replay_seconds(calls: Counter, repeats: int = 3) -> float:
    """Seconds of recorded product calls (``ProductRecorder.calls``, or a difference of two) run alone: the sum
    over distinct calls of count x best time."""
    total = 0.0
    for (func, args, kwargs), count in calls.items():
        real_args = [_thaw(a) for a in args]
        real_kwargs = {k: _thaw(v) for k, v in kwargs}
        total += count * _best(lambda f=func, a=real_args, k=real_kwargs: f(*a, **k), repeats, real_args)
    return total


def _best(fn, repeats: int, args=()) -> float:
    """Best wall time of ``fn()`` over ``repeats`` calls after one warm-up (the library's first call of a shape
    may pick its kernel), waiting for the device when any of ``args`` is a CUDA tensor."""
    on_cuda = any(isinstance(a, torch.Tensor) and a.is_cuda for a in args)
    fn()
    best = float("inf")
    for _ in range(repeats):
        if on_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if on_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def epoch_and_test_calls(run_epochs) -> tuple[Counter, Counter, dict]:
    """(the product calls of one training epoch, of the closing test pass, each distinct call's FLOPs) of
    ``run_epochs(epochs)``, one ``train_and_test`` call: recorded over 1 and 2 epochs, whose difference is one
    epoch (every epoch has the same batches), so that a floor charges the test pass once per net rather than
    once per epoch."""
    recorders = []
    for epochs in (1, 2):
        with ProductRecorder() as recorder:
            run_epochs(epochs)
        recorders.append(recorder)
    epoch = recorders[1].calls - recorders[0].calls
    return epoch, recorders[0].calls - epoch, {**recorders[0].flops, **recorders[1].flops}


def sort_replay_seconds(shapes: Counter, repeats: int = 3) -> float:
    """Seconds of the recorded sorts run alone: ``shapes[(shape, with_indices, device)]`` counts the
    ``sort_pointwise`` calls of a (B, C, N) shape on a device, sorted as ``sort_pointwise`` sorts them there: on
    CPU values only by ``sort_descending`` over torch's threads and with indices by ``argsort_descending`` and the
    gather of the values; elsewhere by ``torch.sort``."""
    threads = torch.get_num_threads()
    total = 0.0
    for (shape, with_indices, device), count in shapes.items():
        values = torch.randn(shape, device=device)
        array = values.numpy() if values.device.type == "cpu" else None
        if array is None:
            def run(values=values):
                torch.sort(values, dim=2, descending=True)
        elif with_indices:
            def run(values=values, array=array):
                torch.gather(values, 2, torch.from_numpy(argsort_descending(array, threads)))
        else:
            def run(array=array):
                sort_descending(array, threads)
        total += count * _best(run, repeats, (values,))
    return total


def sorted_elements(shapes: Counter) -> tuple[int, int]:
    """(values sorted without indices, with indices) of recorded sort shapes."""
    counts = [0, 0]
    for (shape, with_indices, _device), n in shapes.items():
        counts[int(with_indices)] += n * int(np.prod(shape))
    return counts[0], counts[1]
