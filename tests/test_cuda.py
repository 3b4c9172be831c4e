"""Checks that need a CUDA device (marked ``cuda``; skipped where torch sees none). benchmarks/gpu_check.sh runs
them on a GPU machine together with the CUDA speed table."""

from __future__ import annotations

import pytest
import torch

from ddbench.data.cloudset import PointCloudSet
from ddbench.evaluation.ensemble_trainer import train_and_test_ensemble
from ddbench.evaluation.protocols import SADMProtocol
from ddbench.evaluation.trainer import train_and_test
from ddbench.pipeline import build_experiment, run_grid
from tests.conftest import TINY_SHAPES
from tests.helpers import build_net, network_of

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
CUDA = torch.device("cuda")


def tiny_sets(points: int = 128, per_class: int = 3):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3 * per_class, points, 3, generator=gen)
    x = x / x.norm(dim=-1, keepdim=True).amax(1, keepdim=True)
    y = torch.arange(3).repeat_interleave(per_class)
    return PointCloudSet(x, y, ["a", "b", "c"], "train"), PointCloudSet(x[::2], y[::2], ["a", "b", "c"], "test")


@pytest.mark.parametrize("name", ["pointnet", "pointnet_in", "pointnet2_ssg", "dgcnn"])
def test_backbones_agree_on_cpu_and_cuda(name):
    torch.manual_seed(0)
    net = build_net(name, 5).eval()
    x = torch.randn(2, 256, 3)
    with torch.no_grad():
        cpu = net(x).logits
        gpu = net.to(CUDA)(x.to(CUDA)).logits.cpu()
    assert torch.allclose(cpu, gpu, atol=1e-3, rtol=1e-3)


def test_ensemble_matches_sequential_nets_on_cuda():
    train, test = tiny_sets()
    cfg = SADMProtocol.make_config({"epochs": 3, "step_epoch": 2})
    ensemble = train_and_test_ensemble(train.points, train.labels, test, cfg, [1, 2], CUDA, 3, network=network_of(cfg))
    for res in ensemble:
        ref = train_and_test(train.points, train.labels, test, cfg, res.seed, CUDA, 3, network=network_of(cfg))
        assert abs(res.final_train_loss - ref.final_train_loss) < 1e-3


def test_a_grid_runs_end_to_end_on_cuda(tmp_path):
    exp = build_experiment({"datasets": ["shapes"], "methods": ["random", "sadm", "dm"], "ppc": [1], "eval_nets": 2,
                            "epochs": 2, "iterations": 2, "device": "cuda", "results": str(tmp_path / "runs"),
                            "dataset_config": {"shapes": TINY_SHAPES}}, {})
    summary = run_grid(exp)
    assert summary.ok == 3 and summary.failed == 0


def test_frozen_fused_pointnet_agrees_on_cpu_and_cuda():
    """The frozen BatchNorm + max-pool layers (docs/backbones.md#frozen-batchnorm-and-max-pool) on CUDA: a
    DM-warmed, folded PointNet gives the CPU's global features and the CPU's gradient on the clouds."""
    from ddbench.backbones.pointnet import PointNet
    from ddbench.backbones.utils import fold_frozen_batchnorm

    torch.manual_seed(0)
    net = PointNet(PointNet.Config(dropout=0.0), 10)
    net.warm_up_batchnorm(torch.randn(12, 128, 3), needs=frozenset({"global_feature"}))
    fold_frozen_batchnorm(net)
    net.requires_grad_(False)
    x = torch.randn(5, 128, 3)
    outputs = []
    for device in (torch.device("cpu"), CUDA):
        points = x.to(device).requires_grad_()
        out = net.to(device)(points)
        assert out.point_features is None
        out.global_feature.square().sum().backward()
        with torch.no_grad():
            real = net(x.to(device)).global_feature
        outputs.append((out.global_feature.detach().cpu(), points.grad.cpu(), real.cpu()))
    for cpu_value, cuda_value in zip(*outputs):
        torch.testing.assert_close(cuda_value, cpu_value, rtol=1e-3, atol=1e-3 * float(cpu_value.abs().max()))


def test_the_floor_at_its_shapes_replays_products_and_sorts_on_the_device():
    """benchmarks/shape_floor.py on CUDA: products replayed on the device they ran on, sorts by torch.sort there."""
    import sys
    from collections import Counter
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from shape_floor import ProductRecorder, replay_seconds, sort_replay_seconds

    a, b = torch.randn(256, 128, device=CUDA), torch.randn(128, 512, device=CUDA)
    with ProductRecorder() as recorder:
        a @ b
    (key,) = recorder.calls
    assert all(layout.device.startswith("cuda") for layout in key[1])
    assert replay_seconds(recorder.calls) > 0
    assert sort_replay_seconds(Counter({((2, 64, 256), True, "cuda:0"): 2})) > 0
