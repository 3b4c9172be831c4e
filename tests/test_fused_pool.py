"""The fused BatchNorm + max-pool of PointNet's widest layers against the plain layers it replaces
(nn.Conv1d, nn.BatchNorm1d, ReLU, amax): values, every weight's gradient, running statistics."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddbench.backbones import pointnet as pointnet_module
from ddbench.backbones.fused_pool import can_fuse, conv_bn_max
from ddbench.backbones.pointnet import PointNet


def layers(c_in=16, c_out=24, momentum=0.1, seed=0):
    torch.manual_seed(seed)
    conv, bn = nn.Conv1d(c_in, c_out, 1), nn.BatchNorm1d(c_out, momentum=momentum)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(c_out))  # negative weights turn the max into a min
        bn.bias.copy_(torch.randn(c_out))
    return conv, bn


def plain(conv, bn, x, relu):
    out = bn(conv(x))
    return (torch.relu(out) if relu else out).amax(dim=2)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_values_gradients_and_running_stats_match_the_plain_layers(relu, momentum):
    conv_a, bn_a = layers(momentum=momentum)
    conv_b, bn_b = copy.deepcopy(conv_a), copy.deepcopy(bn_a)
    gen = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(5, 16, 40, generator=gen) + 2.0
        x[:, :, 30:35] = x[:, :, :5]  # duplicated points: ties for the max
        upstream = torch.randn(5, 24, generator=gen)
        fused = conv_bn_max(conv_a, bn_a, x, relu)
        reference = plain(conv_b, bn_b, x, relu)
        torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-5)
        (fused * upstream).sum().backward()
        (reference * upstream).sum().backward()
        for name in ("weight",):
            torch.testing.assert_close(getattr(conv_a, name).grad, getattr(conv_b, name).grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn_a.weight.grad, bn_b.weight.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn_a.bias.grad, bn_b.bias.grad, rtol=1e-4, atol=1e-5)
        # BN removes the convolution's bias: its gradient is zero (the plain layers give rounding noise)
        assert torch.count_nonzero(conv_a.bias.grad) == 0 and conv_b.bias.grad.abs().max() < 1e-5
        torch.testing.assert_close(bn_a.running_mean, bn_b.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn_a.running_var, bn_b.running_var, rtol=1e-5, atol=1e-6)
        assert int(bn_a.num_batches_tracked) == int(bn_b.num_batches_tracked) == step + 1
        for p in (*conv_a.parameters(), *bn_a.parameters(), *conv_b.parameters(), *bn_b.parameters()):
            p.grad = None


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("chunk_values", [1, 24 * 40 * 2, 1 << 21])  # a cloud, 2 with a remainder, all 5
def test_without_autograd_the_warm_up_layer_matches_a_training_mode_forward(monkeypatch, relu, momentum, chunk_values):
    """The frozen-BN warm-up runs conv_bn_max without autograd: batch statistics from the covariance, BN folded,
    the max a few clouds at a time. Against the plain training-mode layers under no_grad, and the batch
    statistics written out by hand."""
    from ddbench.backbones import fused_pool

    monkeypatch.setattr(fused_pool, "FROZEN_CHUNK_VALUES", chunk_values)
    conv_a, bn_a = layers(momentum=momentum)
    conv_b, bn_b = copy.deepcopy(conv_a), copy.deepcopy(bn_a)
    gen = torch.Generator().manual_seed(2)
    for step in range(2):
        x = torch.randn(5, 16, 40, generator=gen) + 1.5
        with torch.no_grad():
            fused = conv_bn_max(conv_a, bn_a, x, relu)
            reference = plain(conv_b, bn_b, x, relu)
            y = conv_b(x)
        mean, var = y.mean(dim=(0, 2)), y.var(dim=(0, 2), unbiased=False)
        by_hand = (y.amax(2) - mean) / torch.sqrt(var + bn_b.eps) * bn_b.weight + bn_b.bias
        by_hand = torch.where(bn_b.weight >= 0, by_hand, (y.amin(2) - mean) / torch.sqrt(var + bn_b.eps) * bn_b.weight + bn_b.bias)
        torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fused, by_hand.clamp_min(0) if relu else by_hand, rtol=1e-5, atol=1e-5)
        assert not fused.requires_grad and (bn_a.weight < 0).any()
        torch.testing.assert_close(bn_a.running_mean, bn_b.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn_a.running_var, bn_b.running_var, rtol=1e-5, atol=1e-6)
        assert int(bn_a.num_batches_tracked) == int(bn_b.num_batches_tracked) == step + 1


def test_statistics_stay_exact_far_from_zero():
    """Inputs whose mean is a thousand times their spread: sums of squares of raw values would lose the
    variance entirely in float32; the centred product keeps it."""
    conv_a, bn_a = layers()
    conv_b, bn_b = copy.deepcopy(conv_a), copy.deepcopy(bn_a)
    x = 1000.0 + torch.randn(4, 16, 64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(conv_bn_max(conv_a, bn_a, x, False), plain(conv_b, bn_b, x, False),
                               rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(bn_a.running_var, bn_b.running_var, rtol=1e-3, atol=1e-3)


def test_only_a_training_mode_batchnorm_on_points_without_gradient_is_fused():
    _, bn = layers()
    points = torch.randn(2, 3, 8)
    assert can_fuse(bn, points)
    assert not can_fuse(bn, points.requires_grad_())  # a method optimising points keeps amax's tie rule
    assert not can_fuse(bn.eval(), torch.randn(2, 3, 8))
    with torch.no_grad():
        assert not can_fuse(bn.train(), torch.randn(2, 3, 8))
    assert not can_fuse(nn.InstanceNorm1d(24), torch.randn(2, 3, 8))


def logits_and_gradients(net, x, y):
    net.train()
    net.zero_grad()
    logits = net(x).logits
    F.cross_entropy(logits, y).backward()
    return logits.detach(), {name: p.grad.clone() for name, p in net.named_parameters()}


def test_pointnet_trains_the_same_with_and_without_fusion(monkeypatch):
    # in float64: the two ways differ only by rounding, which float32 amplifies through the small-batch BNs to a
    # few 1e-3 of the largest gradient, by an amount that depends on the machine's matrix-product kernels
    torch.manual_seed(0)
    net = PointNet(PointNet.Config(dropout=0.0), 5).double()
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, 128, 3, generator=gen, dtype=torch.float64), torch.randint(0, 5, (16,), generator=gen)
    fused_logits, fused = logits_and_gradients(net, x, y)
    fused_stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    net.load_state_dict({**net.state_dict(), **{k: v for k, v in PointNet(PointNet.Config(dropout=0.0), 5).double()
                                                .state_dict().items() if "running" in k or "tracked" in k}})
    monkeypatch.setattr(pointnet_module, "can_fuse", lambda bn, points: False)
    plain_logits, plain_grads = logits_and_gradients(net, x, y)
    torch.testing.assert_close(fused_logits, plain_logits, rtol=1e-10, atol=1e-10)
    before_bn = {"tnet.convs.0.bias", "tnet.convs.3.bias", "tnet.convs.6.bias", "conv1.0.bias", "conv2.0.bias",
                 "conv3.0.bias", "tnet.fcs.0.bias", "tnet.fcs.3.bias", "head.0.bias", "head.3.bias"}
    for name, grad in plain_grads.items():
        if name in before_bn:  # exactly zero in theory; rounding noise in the plain layers
            assert grad.abs().max() < 1e-10 and fused[name].abs().max() < 1e-10, name
            continue
        assert (fused[name] - grad).abs().max() <= 1e-9 * grad.abs().max() + 1e-12, name
    for name, value in fused_stats.items():
        torch.testing.assert_close(value, net.state_dict()[name], rtol=1e-10, atol=1e-12, msg=name)


def test_pointnet_gives_point_features_whenever_it_does_not_fuse():
    torch.manual_seed(0)
    net = PointNet(None, 5).train()
    x = torch.randn(2, 32, 3)
    assert net(x).point_features is None  # training the network itself: never formed
    assert net(x.clone().requires_grad_()).point_features.shape == (2, 1024, 32)
    with torch.no_grad():
        assert net(x).point_features.shape == (2, 1024, 32)
    assert net.eval()(x).point_features.shape == (2, 1024, 32)


def test_statistics_only_update_matches_a_training_mode_batchnorm():
    """conv_bn_statistics (the warm-up's last PointNet layer: no (B, C_out, N) tensor) against bn(conv(x))."""
    from ddbench.backbones.fused_pool import conv_bn_statistics

    conv_a, bn_a = layers()
    conv_b, bn_b = copy.deepcopy(conv_a), copy.deepcopy(bn_a)
    x = 3.0 + torch.randn(4, 16, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        bn_a(conv_a(x))
        conv_bn_statistics(conv_b, bn_b, x)
    torch.testing.assert_close(bn_b.running_mean, bn_a.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn_b.running_var, bn_a.running_var, rtol=1e-5, atol=1e-6)
    assert int(bn_b.num_batches_tracked) == int(bn_a.num_batches_tracked) == 1


def test_pointnet_warm_up_without_logits_gives_the_plain_warm_ups_features():
    """The frozen-BN warm-up a method that reads no logits gets (docs/backbones.md): every BatchNorm the
    features depend on holds the plain warm-up's statistics, the features are the same, and the skipped head
    gives NaN logits rather than different ones."""
    from ddbench.backbones.utils import bn_warmup

    torch.manual_seed(0)
    plain_net = PointNet(PointNet.Config(dropout=0.0), 10)  # the warm-up leaves dropout in train mode
    fast_net, with_logits = copy.deepcopy(plain_net), copy.deepcopy(plain_net)
    warm = 0.2 + 0.5 * torch.randn(12, 128, 3)
    bn_warmup(plain_net, warm)
    fast_net.warm_up_batchnorm(warm, needs=frozenset({"point_features", "global_feature"}))
    head_bns = {id(m) for m in fast_net.head.modules()}
    for plain_bn, fast_bn in zip(plain_net.modules(), fast_net.modules()):
        if isinstance(fast_bn, nn.BatchNorm1d):
            assert not fast_bn.training
            if id(fast_bn) in head_bns:
                assert torch.isnan(fast_bn.running_mean).all()
                continue
            torch.testing.assert_close(fast_bn.running_mean, plain_bn.running_mean, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(fast_bn.running_var, plain_bn.running_var, rtol=1e-5, atol=1e-6)
    x = torch.randn(3, 128, 3)
    with torch.no_grad():
        plain_out, fast_out = plain_net(x), fast_net(x)
    torch.testing.assert_close(fast_out.point_features, plain_out.point_features, rtol=1e-4, atol=1e-5)
    assert torch.isnan(fast_out.logits).all()
    with_logits.warm_up_batchnorm(warm, needs=frozenset({"logits"}))  # the plain warm-up, head included
    with torch.no_grad():
        torch.testing.assert_close(with_logits(x).logits, plain_out.logits)


def frozen_layers(c_in=16, c_out=24, bias=True, seed=0):
    """A conv and an eval-mode BN with running statistics far from (0, 1) and weights of both signs."""
    conv, bn = layers(c_in, c_out, seed=seed)
    if not bias:
        conv = nn.Conv1d(c_in, c_out, 1, bias=False)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c_out))
        bn.running_var.copy_(0.1 + torch.rand(c_out) * 3)
    return conv, bn.eval()


@pytest.mark.parametrize("chunk_values", [1, 24 * 64 * 3, 1 << 21])  # one cloud, 3 with a remainder, all
@pytest.mark.parametrize("bias", [True, False])
def test_frozen_fused_layer_matches_the_plain_layers(monkeypatch, chunk_values, bias):
    from ddbench.backbones import fused_pool

    monkeypatch.setattr(fused_pool, "FROZEN_CHUNK_VALUES", chunk_values)
    conv, bn = frozen_layers(bias=bias)
    x = torch.randn(7, 16, 64, generator=torch.Generator().manual_seed(4))
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    with torch.no_grad():
        expected = bn(conv(x)).amax(dim=2)
        got = fused_pool.frozen_conv_bn_max(conv, bn, x)
    # independent reference: the affine map written out channel by channel
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    with torch.no_grad():
        y = conv(x)
        by_hand = ((y - bn.running_mean[:, None]) * scale[:, None] + bn.bias[:, None]).amax(dim=2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got, by_hand, rtol=1e-5, atol=1e-5)
    assert (bn.weight < 0).any() and torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    # the same layer after fold_frozen_batchnorm: the BN folded into the conv, an identity in its place
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    with torch.no_grad():
        folded = fused_pool.frozen_conv_bn_max(fuse_conv_bn_eval(conv.eval(), bn), nn.Identity(), x)
    torch.testing.assert_close(folded, by_hand, rtol=1e-5, atol=1e-5)


def test_the_folded_kernel_of_a_trained_network_needs_no_gradient():
    """The evaluation's test pass folds the BN of a network whose weights require a gradient. torch's
    fuse_conv_bn_weights returns Parameters that require one too, and torch.matmul of such a kernel with a batch
    of clouds runs about twice as slowly even under no_grad (benchmarks/README.md); the fold must detach them."""
    from ddbench.backbones import fused_pool

    conv, bn = frozen_layers()
    conv.requires_grad_(True)
    bn.requires_grad_(True)
    for layer in (bn, nn.Identity()):
        with torch.no_grad():
            kernel, shift = fused_pool._folded(conv, layer)
        assert not kernel.requires_grad and not shift.requires_grad
        assert not isinstance(kernel, nn.Parameter) and kernel.shape == conv.weight.shape[:2]


def test_only_a_frozen_batchnorm_that_needs_no_gradient_is_fused_frozen():
    from ddbench.backbones.fused_pool import can_fuse_frozen

    conv, bn = frozen_layers()
    points = torch.randn(2, 16, 8)
    with torch.no_grad():
        assert can_fuse_frozen(conv, bn, points)
        assert not can_fuse_frozen(conv, bn.train(), points)  # training mode: conv_bn_max's business
        assert not can_fuse_frozen(conv, nn.InstanceNorm1d(24), points)
        bn.eval()
    assert not can_fuse_frozen(conv, bn, points)  # the weights need a gradient
    assert not can_fuse_frozen(conv.requires_grad_(False), bn.requires_grad_(False), points.requires_grad_())
    assert can_fuse_frozen(conv, bn, torch.randn(2, 16, 8))  # frozen weights, points without gradient


def test_pointnet_frozen_for_global_features_gives_the_plain_networks_values(monkeypatch):
    """A warmed network whose callers read only the global feature (DM): without a gradient, the T-Net's and the
    last layer's BN + max run folded (no point-wise features returned); with one, the plain layers."""
    from ddbench.backbones import fused_pool
    from ddbench.backbones.utils import fold_frozen_batchnorm

    monkeypatch.setattr(fused_pool, "FROZEN_CHUNK_VALUES", 1024 * 128 * 2)
    torch.manual_seed(0)
    net = PointNet(PointNet.Config(dropout=0.0), 10)
    net.warm_up_batchnorm(0.2 + 0.5 * torch.randn(12, 128, 3), needs=frozenset({"global_feature"}))
    x = torch.randn(5, 128, 3)
    with torch.no_grad():
        fast = net(x)
        monkeypatch.setattr(fused_pool, "ENABLED", False)
        plain_out = net(x)
        monkeypatch.setattr(fused_pool, "ENABLED", True)
    assert fast.point_features is None and plain_out.point_features is not None
    torch.testing.assert_close(fast.global_feature, plain_out.global_feature, rtol=1e-4, atol=1e-5)
    with_grad = net(x.clone().requires_grad_())
    assert with_grad.point_features is not None  # the points' gradient keeps amax's tie rule
    torch.testing.assert_close(with_grad.global_feature.detach(), plain_out.global_feature, rtol=1e-4, atol=1e-5)
    fold_frozen_batchnorm(net)  # as IterativeMethod.warmed_net does: the BNs become identities
    with torch.no_grad():
        folded = net(x)
    assert folded.point_features is None
    torch.testing.assert_close(folded.global_feature, plain_out.global_feature, rtol=1e-4, atol=1e-5)
    sadm_net = PointNet(PointNet.Config(dropout=0.0), 10)  # SADM reads point-wise features: still formed
    sadm_net.warm_up_batchnorm(0.2 + 0.5 * torch.randn(12, 128, 3), needs=frozenset({"point_features"}))
    fold_frozen_batchnorm(sadm_net)
    with torch.no_grad():
        fast_features = sadm_net(x).point_features  # the T-Net's widest layer folded
        monkeypatch.setattr(fused_pool, "ENABLED", False)
        plain_features = sadm_net(x).point_features
    assert fast_features.shape == (5, 1024, 128)
    torch.testing.assert_close(fast_features, plain_features, rtol=1e-4, atol=1e-5)


def test_the_test_pass_reads_only_logits_and_gets_the_plain_networks_logits(monkeypatch):
    from ddbench.backbones import fused_pool
    from ddbench.backbones.base import FEATURES, reading

    torch.manual_seed(0)
    net = PointNet(None, 5)
    logits_and_gradients(net, torch.randn(8, 64, 3), torch.randint(0, 5, (8,)))  # running statistics of a batch
    net.eval()
    x = torch.randn(6, 64, 3)
    with torch.no_grad():
        with reading(net, frozenset({"logits"})):
            fast = net(x)
        assert net.needs == FEATURES
        monkeypatch.setattr(fused_pool, "ENABLED", False)
        plain_out = net(x)
    assert fast.point_features is None
    torch.testing.assert_close(fast.logits, plain_out.logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("chunk_values", [24 * 64 * 3, 1 << 21])  # 3 clouds per product (a remainder), all
def test_frozen_fused_layer_gives_the_plain_layers_gradient_with_respect_to_the_points(monkeypatch, chunk_values):
    """The points' gradient (DM's synthetic side): every maximum's gradient reaches its point through the folded
    kernel, as the plain layers' amax backward sends it there; the weights stay frozen."""
    from ddbench.backbones import fused_pool

    monkeypatch.setattr(fused_pool, "FROZEN_CHUNK_VALUES", chunk_values)
    conv, bn = frozen_layers()
    conv.requires_grad_(False), bn.requires_grad_(False)
    x = torch.randn(7, 16, 64, generator=torch.Generator().manual_seed(6))
    weights = torch.randn(7, 24, generator=torch.Generator().manual_seed(7))
    x_fast, x_plain = x.clone().requires_grad_(), x.clone().requires_grad_()
    assert fused_pool.can_fuse_frozen_points(conv, bn, x_fast)
    fast = fused_pool.frozen_conv_bn_max_points(conv, bn, x_fast)
    plain_out = bn(conv(x_plain)).amax(dim=2)
    torch.testing.assert_close(fast, plain_out, rtol=1e-5, atol=1e-5)
    (fast * weights).sum().backward()
    (plain_out * weights).sum().backward()
    torch.testing.assert_close(x_fast.grad, x_plain.grad, rtol=1e-5, atol=1e-6)
    assert (x_plain.grad != 0).sum() < x.numel()  # only the maxima's points get a gradient


def test_frozen_fused_layer_leaves_tied_maxima_to_the_plain_layers():
    """A duplicated point ties for every channel's max it reaches: amax splits that gradient between the copies,
    so the points-gradient layer declines (None) and the network runs the plain layers."""
    from ddbench.backbones.fused_pool import can_fuse_frozen_points, frozen_conv_bn_max_points

    conv, bn = frozen_layers()
    conv.requires_grad_(False), bn.requires_grad_(False)
    x = torch.randn(2, 16, 8)
    x[:, :, 5] = x[:, :, 2]
    assert frozen_conv_bn_max_points(conv, bn, x.requires_grad_()) is None
    assert not can_fuse_frozen_points(conv, bn, torch.randn(2, 16, 8))  # no gradient needed: the other layer
    assert not can_fuse_frozen_points(conv.requires_grad_(True), bn, x)  # weights that train: plain layers


def test_pointnet_frozen_for_global_features_gives_the_plain_gradient_on_the_points(monkeypatch):
    """DM's synthetic side: a frozen network (weights without gradient) whose callers read the global feature;
    the gradient with respect to the clouds equals the plain layers'."""
    from ddbench.backbones import fused_pool
    from ddbench.backbones.utils import fold_frozen_batchnorm

    torch.manual_seed(0)
    net = PointNet(PointNet.Config(dropout=0.0), 10)
    net.warm_up_batchnorm(0.2 + 0.5 * torch.randn(12, 128, 3), needs=frozenset({"global_feature"}))
    fold_frozen_batchnorm(net)
    net.requires_grad_(False)
    x = torch.randn(5, 128, 3)
    target = torch.randn(5, 1024)
    x_fast, x_plain = x.clone().requires_grad_(), x.clone().requires_grad_()
    fast = net(x_fast)
    ((fast.global_feature - target) ** 2).sum().backward()
    monkeypatch.setattr(fused_pool, "ENABLED", False)
    plain_out = net(x_plain)
    ((plain_out.global_feature - target) ** 2).sum().backward()
    assert fast.point_features is None and plain_out.point_features is not None
    torch.testing.assert_close(fast.global_feature, plain_out.global_feature, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(x_fast.grad, x_plain.grad, rtol=1e-4, atol=1e-4 * float(x_plain.grad.abs().max()))


def test_frozen_points_layer_flags_a_single_tied_maximum():
    """One (cloud, channel) of the last chunk reaching its max at two points is a tie; distinct values are not."""
    from ddbench.backbones.fused_pool import FrozenConvMaxPool

    gen = torch.Generator().manual_seed(0)
    x, kernel = torch.randn(3, 4, 6, generator=gen), torch.eye(4)
    pooled, tied = FrozenConvMaxPool.apply(x, kernel, 2)  # chunks of 2 clouds: the tie sits in the second chunk
    torch.testing.assert_close(pooled, x.amax(2))
    assert not bool(tied)
    x[2, 1, (int(x[2, 1].argmax()) + 1) % 6] = x[2, 1].max()
    assert bool(FrozenConvMaxPool.apply(x, kernel, 2)[1])
    x[2, 1] = float("-inf")  # every point at the max
    assert bool(FrozenConvMaxPool.apply(x, kernel, 2)[1])
