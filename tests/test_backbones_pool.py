"""Every registered backbone: shapes at two resolutions, gradients to the input, a tiny training run learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ddbench.backbones.builtin import BUILTIN_BACKBONES
from tests.conftest import make_cloudset
from tests.helpers import build_net

#: the classification backbones (pointnet_seg, the segmentation network, has its own tests: test_pointnet_seg.py)
NAMES = [cls.name for cls in BUILTIN_BACKBONES if "classification" in cls.tasks]

#: reference parameter counts (K = 40) of the published architectures, where the papers give them
PUBLISHED_PARAMS = {"dgcnn": 1.8e6, "pct": 2.88e6, "pointnet2_ssg": 1.48e6, "pointmlp": 0.68e6}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("points", [256, 1024])
def test_forward_backward_shapes_and_input_gradients(name, points):
    torch.manual_seed(0)
    net = build_net(name, num_classes=7).train()
    x = torch.randn(2, points, 3, requires_grad=True)
    out = net(x)
    assert out.logits.shape == (2, 7)
    assert out.global_feature.dim() == 2 and out.global_feature.shape[0] == 2
    if "point_features" in net.provides:
        assert out.point_features.shape[0] == 2 and out.point_features.shape[2] == points
    else:
        assert out.point_features is None
    out.logits.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_fewer_points_than_designed(name):
    """3DDP's 252-point anchors run (hierarchical nets use every point as a centroid when they have fewer)."""
    net = build_net(name, num_classes=4).eval()
    with torch.no_grad():
        assert net(torch.randn(3, 252, 3)).logits.shape == (3, 4)


@pytest.mark.parametrize("name", NAMES)
def test_a_tiny_training_run_lowers_the_loss(name):
    torch.manual_seed(0)
    data = make_cloudset(num_classes=3, per_class=4, points=32)  # small: PointNet++/PointConv are FLOP-heavy
    net = build_net(name, num_classes=3).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        loss = F.cross_entropy(net(data.points).logits, data.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert min(losses[-3:]) < losses[0], losses


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_counts_match_the_papers(name):
    params = build_net(name, num_classes=40).num_parameters()
    assert abs(params - PUBLISHED_PARAMS[name]) / PUBLISHED_PARAMS[name] < 0.06, params
