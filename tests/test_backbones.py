"""Backbones: the PointNet variants of docs/specification.md#networks and the shared interface."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ddbench.backbones.base import check_provides
from ddbench.backbones.pointnet import PointNet, PointNetIN
from ddbench.backbones.utils import bn_warmup
from ddbench.errors import DataError, IncompatibleError
from tests.helpers import build_net


@pytest.mark.parametrize("name", ["pointnet", "pointnet_in"])
def test_outputs_shapes_and_global_is_max_of_pointwise(name):
    net = build_net(name, num_classes=7)
    net.eval()
    x = torch.randn(4, 50, 3)
    out = net(x)
    assert out.logits.shape == (4, 7)
    assert out.global_feature.shape == (4, 1024)
    assert out.point_features.shape == (4, 1024, 50)
    assert torch.allclose(out.global_feature, out.point_features.amax(2))


@pytest.mark.parametrize("name", ["pointnet", "pointnet_in"])
def test_gradients_reach_the_points(name):
    net = build_net(name, num_classes=5)
    net.train()
    x = torch.randn(4, 30, 3, requires_grad=True)
    out = net(x)
    (out.logits.sum() + out.point_features.mean()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_pointnet_layers_match_the_reference_description():
    net = PointNet(num_classes=10)
    convs = [m for m in net.tnet.convs if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 64), (64, 128), (128, 1024)]
    fcs = [m for m in net.tnet.fcs if isinstance(m, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(1024, 512), (512, 256), (256, 9)]
    # trunk: last conv has BN and no ReLU, so point-wise features can be negative
    assert isinstance(net.conv3[-1], nn.BatchNorm1d) and len(net.conv3) == 2
    head = [type(m).__name__ for m in net.head]
    assert head == ["Linear", "BatchNorm1d", "ReLU", "Linear", "Dropout", "BatchNorm1d", "ReLU", "Linear"]
    assert net.head[4].p == 0.3
    net.eval()
    assert (net(torch.randn(2, 20, 3)).point_features < 0).any()


def test_pointnet_tnet_starts_near_identity_effect():
    net = PointNet(num_classes=3)
    with torch.no_grad():
        net.tnet.fcs[-1].weight.zero_()
        net.tnet.fcs[-1].bias.zero_()
    net.eval()
    x = torch.randn(2, 10, 3)
    trans = net.tnet(x.transpose(1, 2))
    assert torch.allclose(trans, torch.eye(3).expand(2, 3, 3))


def test_pointnet_in_has_instance_norm_without_affine_and_single_linear():
    net = PointNetIN(num_classes=10)
    norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm1d)]
    assert len(norms) == 3 and not any(n.affine for n in norms)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == 1024
    assert not any(isinstance(m, nn.BatchNorm1d) for m in net.modules())


def test_wrong_input_shape_is_clear():
    net = build_net("pointnet", 3)
    with pytest.raises(DataError, match=r"\(B, N, 3\)"):
        net(torch.randn(2, 3, 50))


def test_bn_warmup_reproduces_the_protocol_statistics():
    """running = 0.9 * init (mean 0, var 1) + 0.1 * batch statistics; BN in eval, dropout still in train mode."""
    net = PointNet(num_classes=3)
    x = torch.randn(8, 40, 3)
    bn_warmup(net, x)
    assert all(not m.training for m in net.modules() if isinstance(m, nn.BatchNorm1d))
    assert net.head[4].training  # dropout is not a BatchNorm: left as the reference code leaves it
    # the T-Net's first BN sees a plain conv of the input, so its statistics can be computed directly
    tconv, tbn = net.tnet.convs[0], net.tnet.convs[1]
    assert tbn.num_batches_tracked.item() == 1
    with torch.no_grad():
        z = tconv(x.transpose(1, 2))
    assert torch.allclose(tbn.running_mean, 0.1 * z.mean(dim=(0, 2)), atol=1e-5)
    assert torch.allclose(tbn.running_var, 0.9 + 0.1 * z.var(dim=(0, 2), unbiased=True), atol=1e-4)


def test_check_provides_explains_missing_features():
    class NoPoints(PointNet):
        name = "nopoints"
        provides = frozenset({"logits", "global_feature"})

    with pytest.raises(IncompatibleError, match="needs point_features"):
        check_provides(NoPoints, frozenset({"point_features"}), "sadm")
    check_provides(PointNet, frozenset({"point_features"}), "sadm")


def test_parameter_count_is_reported():
    assert PointNet(num_classes=40).num_parameters() > 1_000_000
    assert PointNetIN(num_classes=40).num_parameters() < PointNet(num_classes=40).num_parameters()


def test_pointwise_conv_equals_conv1d_and_frozen_bn_folds_exactly():
    from ddbench.backbones.pointnet import PointNet
    from ddbench.backbones.utils import PointwiseConv1d, bn_warmup, fold_frozen_batchnorm

    torch.manual_seed(0)
    conv, ref = PointwiseConv1d(5, 7, 1), torch.nn.Conv1d(5, 7, 1)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(3, 5, 11, requires_grad=True)
    assert torch.allclose(conv(x), ref(x), atol=1e-6)
    torch.autograd.grad(conv(x).sum(), x)  # gradients reach the input

    net = PointNet(num_classes=4).requires_grad_(False)
    bn_warmup(net, torch.randn(6, 64, 3))
    probe = torch.randn(3, 64, 3)
    before = net(probe)
    assert fold_frozen_batchnorm(net) == 9  # T-Net 3 convs + 2 FCs, trunk 3 convs, first head FC
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in net.tnet.convs)
    after = net(probe)
    assert torch.allclose(before.point_features, after.point_features, atol=1e-5)
    assert torch.allclose(before.global_feature, after.global_feature, atol=1e-5)
    trained = PointNet(num_classes=4)  # BN still in train mode: nothing may be folded
    assert fold_frozen_batchnorm(trained) == 0
