"""Training-mode BatchNorm followed by a max over the points, without materialising the normalised features
(docs/backbones.md#fused-batchnorm-and-max-pool).

PointNet's widest layers (in the network and in its input T-Net) are a 1x1 convolution to 1024 channels, a
BatchNorm in training mode and a max over the points (in the T-Net with a ReLU in between). Per channel,
BatchNorm is an affine map, increasing when its weight is >= 0 and decreasing otherwise, and ReLU is
non-decreasing; so the max over the points of BN(y) is BN applied to the max (weight >= 0) or the min (weight <
0) of y over the points, with the batch statistics of y. :class:`ConvBatchNormMaxPool` computes exactly that,
and its backward pass uses that BN's gradient with respect to y is an affine function of y plus one term per
(channel, cloud) at its maximum: the gradients of the convolution's weight and input then need only the input's
(C_in x C_in) Gram matrix, never the (C_out, B, N) gradient, which removes two of the layer's three large matrix
products and every full pass over the (B, 1024, N) tensor but the forward one. The values are those of
``bn(conv(x)).amax(2)`` up to rounding.

Only the weights' gradients are the same as the plain layers' in every case: where several points tie for a
row's extreme (duplicated points), the plain ``amax`` splits that row's gradient among them and this gives it to
the first one, which changes the gradient with respect to the input points but not with respect to any weight
(tied points have identical inputs). Callers therefore use it only when the input points need no gradient (the
evaluation trainer), never when a method optimises the points through the network. A BN weight of exactly 0 (a
kink of the max) gets the right-hand derivative where ``amax`` averages over the tied points.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.fusion import fuse_conv_bn_weights

from ddbench.ops.argmax import max_and_argmax


class ConvBatchNormMaxPool(torch.autograd.Function):
    """``(columns, weight, bn_weight, bn_bias, eps, batch) -> (pooled, mean, var)``.

    ``columns``: the layer's centred input laid out (C_in, B * N); ``weight``: the 1x1 convolution (C_out, C_in)
    with the rows of negative-BN-weight channels flipped, and ``bn_weight`` >= 0 accordingly. ``pooled[c, b] =
    max_i BN(y)[c, b, i]`` for ``y = weight @ columns`` and BN in training mode; ``mean``, ``var`` (biased) are the
    batch statistics of ``y``. ``y`` lives only inside the forward pass: the backward pass needs only the input's
    Gram matrix, because BN's gradient is affine in ``y`` plus one term per (channel, cloud) at its maximum
    (docs/backbones.md#fused-batchnorm-and-max-pool)."""

    @staticmethod
    def forward(ctx, columns, weight, bn_weight, bn_bias, eps, batch):
        channels, count = weight.shape[0], columns.shape[1]
        y = weight @ columns  # (C_out, B * N)
        mean = y.sum(1) / count
        var = (torch.linalg.vector_norm(y, dim=1).square() / count - mean.square()).clamp_min(0)
        top, at = max_and_argmax(y.view(channels, batch, count // batch))  # (C_out, B)
        del y
        inv_std = torch.rsqrt(var + eps)
        normalised = (top - mean.unsqueeze(1)) * inv_std.unsqueeze(1)
        # column of each maximum in the (C_in, B * N) layout
        where = at + torch.arange(batch, device=at.device).unsqueeze(0) * (count // batch)
        ctx.save_for_backward(columns, weight, bn_weight, mean, inv_std, where, normalised)
        ctx.mark_non_differentiable(mean, var)
        return torch.addcmul(bn_bias.unsqueeze(1), normalised, bn_weight.unsqueeze(1)), mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_pooled, _grad_mean, _grad_var):
        columns, weight, bn_weight, mean, inv_std, where, normalised = ctx.saved_tensors
        count = columns.shape[1]
        grad_bn_bias = grad_pooled.sum(1)
        grad_bn_weight = (grad_pooled * normalised).sum(1)
        scale = bn_weight * inv_std
        # BN backward with a gradient that is zero except at the maxima: for every point,
        #   dL/dy = slope * y + offset, plus at = scale * grad_pooled at each (channel, cloud)'s maximum
        slope = -scale * grad_bn_weight * inv_std / count
        offset = -scale * grad_bn_bias / count - slope * mean
        at = grad_pooled * scale.unsqueeze(1)  # (C_out, B)
        # (C_out, B, C_in): the input at each maximum, gathered from a row-major copy of the input (whole rows of
        # C_in: 2-3x faster than gathering strided rows of the (C_in, B * N) layout, the same values)
        at_columns = columns.t().contiguous()[where]
        # dL/dW = dL/dy @ columns^T, with y = W @ columns: slope * W (columns columns^T) + offset (columns 1)^T + ...
        gram = columns @ columns.t()
        grad_weight = (slope.unsqueeze(1) * (weight @ gram) + offset.unsqueeze(1) * columns.sum(1).unsqueeze(0)
                       + torch.einsum("cb,cbk->ck", at, at_columns))
        # dL/dcolumns = W^T dL/dy = (W^T diag(slope) W) columns + (W^T offset) 1^T + W^T (the maxima's terms),
        # formed transposed, (B * N, C_in): the maxima's terms are then whole rows added in place, twice as fast
        # as columns of the (C_in, B * N) layout and the same values (tests/test_fused_pool.py)
        grad_rows = torch.addmm((weight.t() @ offset).unsqueeze(0), columns.t(),
                                (weight.t() @ (slope.unsqueeze(1) * weight)).t())
        grad_rows.index_add_(0, where.reshape(-1), (weight.unsqueeze(1) * at.unsqueeze(2)).reshape(-1, weight.shape[1]))
        return grad_rows.t().contiguous(), grad_weight, grad_bn_weight, grad_bn_bias, None, None


#: switch the fusion off process-wide (benchmarks/bench_eval_loop.py compares both ways in one run)
ENABLED = True


def can_fuse(bn: nn.Module, points: torch.Tensor) -> bool:
    """Whether ``bn`` (right before a max over the points) may be fused: a training-mode BatchNorm1d with affine
    parameters and running statistics, on points that need no gradient (see the module docstring)."""
    return (ENABLED and isinstance(bn, nn.BatchNorm1d) and bn.training and bn.affine and bn.track_running_stats
            and not points.requires_grad and torch.is_grad_enabled())


def can_fuse_frozen(conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``conv`` and ``bn`` (right before a max over the points) may run as :func:`frozen_conv_bn_max`: a
    frozen pair (:func:`_frozen_pair`) and nothing that needs a gradient (the real side of a distillation method,
    a test pass; docs/backbones.md#frozen-batchnorm-and-max-pool)."""
    return _frozen_pair(conv, bn) and not (torch.is_grad_enabled() and (x.requires_grad or _trains(conv, bn)))


def can_fuse_frozen_points(conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``conv`` and ``bn`` may run as :func:`frozen_conv_bn_max_points`: a frozen pair whose clouds ``x``
    need a gradient (DM's synthetic side) while the network's weights do not."""
    return _frozen_pair(conv, bn) and torch.is_grad_enabled() and x.requires_grad and not _trains(conv, bn)


def _frozen_pair(conv: nn.Module, bn: nn.Module) -> bool:
    """A 1x1 convolution, then a frozen BatchNorm1d (eval mode, running statistics) or an identity (a BatchNorm
    already folded into the convolution, ``fold_frozen_batchnorm``), with the fusion switched on."""
    frozen_bn = isinstance(bn, nn.BatchNorm1d) and not bn.training and bn.running_var is not None
    return ENABLED and isinstance(conv, nn.Conv1d) and (frozen_bn or isinstance(bn, nn.Identity))


def _trains(conv: nn.Module, bn: nn.Module) -> bool:
    """Whether any weight of ``conv`` or ``bn`` needs a gradient."""
    return any(t.requires_grad for t in (*conv.parameters(), *bn.parameters()))


#: output values per matrix product of the frozen fused layer: 2 clouds x 1024 channels x 1024 points (8 MiB)
FROZEN_CHUNK_VALUES = 1 << 21


@torch.no_grad()
def frozen_conv_bn_max(conv: nn.Conv1d, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``max_i bn(conv(x))`` for a 1x1 ``conv`` and a frozen (eval-mode) BatchNorm1d or identity ``bn``, without
    a gradient and without forming the (B, C_out, N) output at once
    (docs/backbones.md#frozen-batchnorm-and-max-pool). ``x``: (B, C_in, N); returns (B, C_out).

    Frozen BN is the affine map ``s (y - mean) + beta`` per channel, ``s = gamma / sqrt(var + eps)``, so it folds
    into the convolution: ``W' = s W``, ``c = s (b - mean) + beta``, and ``max_i (W' x_i) + c`` is the layer's max
    (a negative ``s`` turns the row's min into the max through the sign of ``W'``). The product runs a few clouds
    at a time, each reduced to its max while it is still in cache."""
    kernel, shift = _folded(conv, bn)
    pooled = _max_of_product(kernel, x)
    return pooled if shift is None else pooled.add_(shift)


def _max_of_product(kernel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``max_i (kernel @ x[b])[c, i]``, (B, C_out), a few clouds per product (:func:`_clouds_per_product`)."""
    chunk = _clouds_per_product(kernel, x)
    pooled = x.new_empty(x.shape[0], kernel.shape[0])
    for lo in range(0, x.shape[0], chunk):
        torch.amax(torch.matmul(kernel, x[lo : lo + chunk]), dim=2, out=pooled[lo : lo + chunk])
    return pooled


class FrozenConvMaxPool(torch.autograd.Function):
    """``(x, kernel, chunk) -> (pooled, tied)``: ``pooled[b, c] = max_i (kernel @ x[b])[c, i]`` for a constant
    ``kernel`` (C_out, C_in), computed ``chunk`` clouds at a time; ``tied`` is True when some (cloud, channel)
    reaches its max at more than one point. The backward pass sends each (cloud, channel)'s gradient to its
    maximum: ``grad_x[b, :, i*] += g[b, c] kernel[c]``, B x C_out rows of C_in added in place of a product over
    every point. Without ties that is exactly the gradient of ``amax``; with ties the caller must not use it
    (``amax`` splits a tied gradient; docs/backbones.md#frozen-batchnorm-and-max-pool)."""

    @staticmethod
    def forward(ctx, x, kernel, chunk):
        batch, _, points = x.shape
        pooled = x.new_empty(batch, kernel.shape[0])
        where = torch.empty(batch, kernel.shape[0], dtype=torch.long, device=x.device)
        tied = False
        for lo in range(0, batch, chunk):
            y = torch.matmul(kernel, x[lo : lo + chunk])
            pooled[lo : lo + chunk], where[lo : lo + chunk] = max_and_argmax(y)
            tied = tied or bool((y == pooled[lo : lo + chunk].unsqueeze(2)).sum(2).gt(1).any())
        ctx.save_for_backward(kernel, where)
        ctx.input_shape = x.shape
        tied_flag = torch.tensor(tied)
        ctx.mark_non_differentiable(tied_flag)
        return pooled, tied_flag

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_pooled, _grad_tied):
        kernel, where = ctx.saved_tensors
        batch, channels_in, points = ctx.input_shape
        at = (where + torch.arange(batch, device=where.device).unsqueeze(1) * points).reshape(-1)
        rows = (grad_pooled.unsqueeze(2) * kernel.unsqueeze(0)).reshape(-1, channels_in)
        grad = grad_pooled.new_zeros(batch * points, channels_in).index_add_(0, at, rows)
        return grad.view(batch, points, channels_in).transpose(1, 2), None, None


def frozen_conv_bn_max_points(conv: nn.Conv1d, bn: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """``max_i bn(conv(x))`` as :func:`frozen_conv_bn_max`, differentiable with respect to ``x`` through
    :class:`FrozenConvMaxPool`; None when some maximum is tied (then the plain layers give ``amax``'s split)."""
    with torch.no_grad():
        kernel, shift = _folded(conv, bn)
    pooled, tied = FrozenConvMaxPool.apply(x, kernel, _clouds_per_product(kernel, x))
    if bool(tied):
        return None
    return pooled if shift is None else pooled + shift


def frozen_max(conv: nn.Conv1d, bn: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """``max_i bn(conv(x))`` by whichever frozen fused layer applies
    (docs/backbones.md#frozen-batchnorm-and-max-pool): :func:`frozen_conv_bn_max` when nothing needs a gradient,
    :func:`frozen_conv_bn_max_points` when only ``x`` does; None when neither applies (or a maximum is tied):
    then the caller runs the plain layers."""
    if can_fuse_frozen(conv, bn, x):
        return frozen_conv_bn_max(conv, bn, x)
    if can_fuse_frozen_points(conv, bn, x):
        return frozen_conv_bn_max_points(conv, bn, x)
    return None


def _folded(conv: nn.Conv1d, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The (C_out, C_in) kernel and the (C_out,) shift (None: zero) of ``bn(conv(x))`` as one affine map
    (torch's own conv + BN folding, ``fuse_conv_bn_weights``)."""
    if isinstance(bn, nn.Identity):
        bias = None if conv.bias is None else conv.bias.detach()
        return conv.weight.detach().squeeze(-1), bias
    return _fold(conv, bn, bn.running_mean, bn.running_var)


def _fold(conv: nn.Conv1d, bn: nn.BatchNorm1d, mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (C_out, C_in) kernel and (C_out,) shift of ``bn(conv(x))`` with ``bn`` normalising by ``mean`` and
    ``var``, by torch's ``fuse_conv_bn_weights``. Its results are Parameters that require a gradient like
    ``conv.weight``, and torch.matmul of such a kernel with a batch of clouds takes a path about twice as slow
    even under no_grad (benchmarks/README.md), so they are detached."""
    weight, shift = fuse_conv_bn_weights(conv.weight, conv.bias, mean, var, bn.eps, bn.weight, bn.bias)
    return weight.detach().squeeze(-1), shift.detach()


def _clouds_per_product(kernel: torch.Tensor, x: torch.Tensor) -> int:
    """Clouds of ``x`` (B, C_in, N) per matrix product with ``kernel``: FROZEN_CHUNK_VALUES outputs at most."""
    return max(1, FROZEN_CHUNK_VALUES // (kernel.shape[0] * x.shape[2]))


def conv_bn_max(conv: nn.Conv1d, bn: nn.BatchNorm1d, x: torch.Tensor, relu: bool) -> torch.Tensor:
    """``max_i relu?(bn(conv(x)))`` for a 1x1 ``conv`` and a training-mode ``bn``, updating ``bn``'s running
    statistics as ``bn`` itself would. ``x``: (B, C_in, N); returns (B, C_out).

    The convolution runs on the centred input: ``conv(x) - its batch mean = W (x - mean(x))``, so BN's variance
    is a sum of squares of centred values. Channels whose BN weight is negative are flipped (their weight row
    and BN weight times -1), which turns their min into a max. The convolution's bias, which BN removes,
    gets its exact gradient: zero.

    Without autograd (the frozen-BN warm-up of a distillation method) it runs :func:`warm_up_conv_bn_max`."""
    if not torch.is_grad_enabled():
        return warm_up_conv_bn_max(conv, bn, x, relu)
    sign = torch.where(bn.weight.detach() >= 0, 1.0, -1.0).to(x.dtype)
    batch, _, points = x.shape
    x_mean, columns = _centred_columns(x)  # one matrix product over every point: (C_out, C_in) @ (C_in, B * N)
    kernel = conv.weight.squeeze(-1)  # (C_out, C_in)
    pooled, mean, var = ConvBatchNormMaxPool.apply(columns, kernel * sign.unsqueeze(1), bn.weight * sign, bn.bias,
                                                   bn.eps, batch)
    pooled = pooled.t()
    with torch.no_grad():
        batch_mean = sign * mean + (kernel @ x_mean.view(-1, 1)).view(-1)
        if conv.bias is not None:
            batch_mean += conv.bias
    _update_running_stats(bn, batch_mean, var, batch * points)
    if conv.bias is not None:
        pooled = pooled + conv.bias * 0.0
    return torch.relu(pooled) if relu else pooled


@torch.no_grad()
def conv_bn_statistics(conv: nn.Conv1d, bn: nn.BatchNorm1d, x: torch.Tensor) -> None:
    """Update ``bn``'s running statistics as a training-mode ``bn(conv(x))`` would, without forming ``conv(x)``
    (docs/backbones.md#the-frozen-batchnorm-warm-up-of-pointnet). ``x``: (B, C_in, N), ``conv`` a 1x1 convolution.

    With y = W x + b: the batch mean of y is W mean(x) + b and its (biased) variance per channel is the diagonal
    of W S W^T, S the (C_in x C_in) covariance of the input over every point of the batch; S costs C_in^2 per
    point where y costs C_in * C_out (128^2 against 128 * 1024 for PointNet's last layer)."""
    mean, var = _batch_statistics(conv, x)
    _update_running_stats(bn, mean, var, x.shape[0] * x.shape[2])


@torch.no_grad()
def warm_up_conv_bn_max(conv: nn.Conv1d, bn: nn.BatchNorm1d, x: torch.Tensor, relu: bool) -> torch.Tensor:
    """``max_i relu?(bn(conv(x)))`` for a training-mode ``bn`` without autograd, updating ``bn``'s running
    statistics as ``bn`` itself would (docs/backbones.md#the-frozen-batchnorm-warm-up-of-pointnet). The batch
    statistics come from the input's covariance (:func:`conv_bn_statistics`); BN with them is an affine map per
    channel, which folds into the convolution as a frozen BN does (:func:`frozen_conv_bn_max`), and the product
    runs a few clouds at a time, each reduced to its max in cache. ReLU commutes with the max."""
    mean, var = _batch_statistics(conv, x)
    _update_running_stats(bn, mean, var, x.shape[0] * x.shape[2])
    kernel, shift = _fold(conv, bn, mean, var)
    pooled = _max_of_product(kernel, x).add_(shift)
    return pooled.clamp_min_(0) if relu else pooled


def _batch_statistics(conv: nn.Conv1d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch mean and biased variance per channel of ``conv(x)`` from the mean and covariance of ``x``."""
    batch, _, points = x.shape
    x_mean, columns = _centred_columns(x)
    covariance = columns @ columns.t() / (batch * points)
    kernel = conv.weight.detach().squeeze(-1)  # (C_out, C_in)
    mean = kernel @ x_mean
    if conv.bias is not None:
        mean = mean + conv.bias.detach()
    var = ((kernel @ covariance) * kernel).sum(1).clamp_min(0)
    return mean, var


def _centred_columns(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C_in, N) -> the input's mean over every point (C_in,) and the centred input laid out (C_in, B * N)."""
    batch, channels_in, points = x.shape
    x_mean = x.mean(dim=(0, 2))
    return x_mean, (x - x_mean.view(1, -1, 1)).transpose(0, 1).reshape(channels_in, batch * points)


@torch.no_grad()
def _update_running_stats(bn: nn.BatchNorm1d, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
    bn.num_batches_tracked.add_(1)
    factor = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
    bn.running_mean.lerp_(mean, factor)
    bn.running_var.lerp_(var * (count / max(count - 1, 1)), factor)
