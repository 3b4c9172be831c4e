"""The part-segmentation PointNet (ddbench.backbones.pointnet_seg), as DD3D's networks.py PointNetSeg builds it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddbench.backbones.pointnet_seg import PointNetSeg, SegmentationBackbone, SegmentationOutput
from ddbench.errors import ConfigError, DataError
from ddbench.registry import Registry


@pytest.mark.parametrize("batch, points", [(4, 512), (2, 2048)])
def test_forward_and_backward_reach_every_parameter_and_the_points(batch, points):
    net = PointNetSeg()
    net.train()
    x = torch.randn(batch, points, 3, requires_grad=True)
    cats = torch.randint(0, 16, (batch,))
    out = net(x, cats)
    assert isinstance(out, SegmentationOutput)
    assert out.point_logits.shape == (batch, points, 50)
    assert out.global_feature.shape == (batch, 1024)
    F.cross_entropy(out.point_logits.reshape(-1, 50), torch.randint(0, 50, (batch * points,))).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_the_category_one_hot_changes_the_logits_exactly_by_its_weight_columns():
    net = PointNetSeg().eval()
    x = torch.randn(1, 64, 3).expand(2, -1, -1)  # the same cloud twice
    with torch.no_grad():
        out = net(x, torch.tensor([0, 3]))
    assert torch.equal(out.global_feature[0], out.global_feature[1])
    assert not torch.allclose(out.point_logits[0], out.point_logits[1])
    # the one-hot sits right after the 1024 global channels: switching category 0 -> 3 adds W[:, 1027] - W[:, 1024]
    w = net.classifier.weight
    shift = (w[:, 1024 + 3] - w[:, 1024 + 0]).detach()
    assert torch.allclose(out.point_logits[1] - out.point_logits[0], shift.expand(64, -1), atol=1e-5)


def test_the_per_point_classifier_reads_1024_plus_categories_plus_64_plus_128_channels():
    net = PointNetSeg()
    assert isinstance(net.classifier, nn.Linear)
    assert (net.classifier.in_features, net.classifier.out_features) == (1024 + 16 + 64 + 128, 50)
    small = PointNetSeg(num_parts=10, num_categories=4)
    assert (small.classifier.in_features, small.classifier.out_features) == (1024 + 4 + 64 + 128, 10)
    assert small(torch.randn(2, 32, 3), torch.tensor([0, 3])).point_logits.shape == (2, 32, 10)


def test_the_layers_and_parameter_count_match_the_reference():
    net = PointNetSeg()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(3, 64, (1,)), (64, 128, (1,)),
                                                                               (128, 1024, (1,))]
    assert [type(m).__name__ for m in net.conv3] == ["PointwiseConv1d", "BatchNorm1d"]  # no ReLU after BN3
    assert not any(isinstance(m, nn.Dropout) for m in net.modules())
    # reference: 3 convs with bias, 3 BNs (weight, bias), Linear(1232, 50)
    convs_bn = (3 * 64 + 64 + 2 * 64) + (64 * 128 + 128 + 2 * 128) + (128 * 1024 + 1024 + 2 * 1024)
    assert net.num_parameters() == convs_bn + 1232 * 50 + 50


def batch_norm_train(y: torch.Tensor, bn: nn.BatchNorm1d) -> torch.Tensor:
    """BatchNorm with the batch's statistics over (batch, points), written out."""
    mean = y.mean(dim=(0, 2), keepdim=True)
    var = y.var(dim=(0, 2), unbiased=False, keepdim=True)
    return (y - mean) / torch.sqrt(var + bn.eps) * bn.weight[None, :, None] + bn.bias[None, :, None]


def test_global_feature_and_classifier_input_match_an_independent_computation():
    torch.manual_seed(3)
    net = PointNetSeg().train()
    x = torch.randn(3, 100, 3)
    cats = torch.tensor([2, 0, 15])
    seen = {}
    net.classifier.register_forward_hook(lambda mod, inp, out: seen.update(inp=inp[0]))
    with torch.no_grad():
        out = net(x, cats)

        def layer(seq, h, relu=True):
            h = batch_norm_train(F.conv1d(h, seq[0].weight, seq[0].bias), seq[1])
            return torch.relu(h) if relu else h

        x1 = layer(net.conv1, x.permute(0, 2, 1))
        x2 = layer(net.conv2, x1)
        x3 = layer(net.conv3, x2, relu=False)
    g = x3.max(dim=2).values
    assert torch.allclose(out.global_feature, g, atol=1e-4)
    one_hot = torch.zeros(3, 16)
    one_hot[torch.arange(3), cats] = 1
    expected = torch.cat([torch.cat([g, one_hot], 1)[:, :, None].repeat(1, 1, 100), x1, x2], 1).permute(0, 2, 1)
    assert seen["inp"].shape == (3, 100, 1232)
    assert torch.allclose(seen["inp"], expected, atol=1e-4)
    assert torch.allclose(out.point_logits, expected @ net.classifier.weight.T + net.classifier.bias, atol=1e-4)


@pytest.mark.parametrize("points, cats, message", [
    (torch.randn(2, 16, 2), torch.tensor([0, 1]), r"\(B, N, 3\)"),
    (torch.randn(2, 16), torch.tensor([0, 1]), r"\(B, N, 3\)"),
    (torch.randn(2, 16, 3), torch.tensor([0, 1, 2]), "one integer category id per cloud"),
    (torch.randn(2, 16, 3), torch.tensor([0.0, 1.0]), "one integer category id per cloud"),
    (torch.randn(2, 16, 3), torch.tensor([[0], [1]]), "one integer category id per cloud"),
    (torch.randn(2, 16, 3), torch.tensor([0, 16]), r"category ids must lie in \[0, 16\)"),
    (torch.randn(2, 16, 3), torch.tensor([-1, 0]), r"category ids must lie in \[0, 16\)"),
])
def test_bad_inputs_give_a_one_line_error(points, cats, message):
    net = PointNetSeg().eval()
    with pytest.raises(DataError, match=message) as info:
        net(points, cats)
    assert "\n" not in str(info.value)


def test_it_is_a_registrable_segmentation_backbone_with_a_strict_config():
    assert issubclass(PointNetSeg, SegmentationBackbone)
    assert PointNetSeg.tasks == ("segmentation",)
    assert PointNetSeg.provides == frozenset({"point_logits", "global_feature"})
    assert PointNetSeg.reference is not None and "DD3D" in PointNetSeg.reference.repository
    assert PointNetSeg.departures == ()
    Registry("backbone").add(PointNetSeg)  # validates name, Config (extra="forbid") and its defaults
    with pytest.raises(ConfigError):
        PointNetSeg.make_config({"dropout": 0.3})
    net = PointNetSeg(PointNetSeg.make_config({}), num_parts=50, num_categories=16)
    assert (net.num_parts, net.num_categories, net.num_classes) == (50, 16, 50)
