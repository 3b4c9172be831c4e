"""PointMLP (Ma et al., ICLR 2022), the elite configuration (PointMLP-elite).

Embedding 3-32; four stages, each: FPS to half the points, 24 nearest neighbours, geometric affine normalisation
of the grouped features (centred on their anchor, divided by the batch std of the offsets, learnable scale and
shift, concatenated with the anchor's features), a pre-extraction residual MLP block stack with max over
neighbours, and a post-extraction residual block stack; channels 64-128-256-256 (expansion 2, 2, 2, 1), blocks
(1, 1, 2, 1) before and after, bottleneck ratio 0.25; max pooling; classifier 512-256-K with dropout 0.5.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ddbench.backbones.base import Backbone, BackboneOutput
from ddbench.backbones.pointnet2 import GLOBAL_ONLY, sample_centroids
from ddbench.config import ComponentConfig
from ddbench.ops.neighbors import group, knn


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout), nn.ReLU())


class ResBlock(nn.Module):
    def __init__(self, channels: int, ratio: float):
        super().__init__()
        mid = max(1, int(channels * ratio))
        self.net = nn.Sequential(conv_bn_relu(channels, mid), nn.Conv1d(mid, channels, 1, bias=False),
                                 nn.BatchNorm1d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.net(x) + x)


class GeometricAffine(nn.Module):
    """Normalise grouped features around their anchor (PointMLP's 'anchor' normalisation)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))

    def forward(self, grouped: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        offsets = grouped - anchor.unsqueeze(2)
        std = offsets.reshape(offsets.shape[0], -1).std(dim=-1).reshape(-1, 1, 1, 1)
        normalised = self.alpha * offsets / (std + 1e-5) + self.beta
        return torch.cat([normalised, anchor.unsqueeze(2).expand_as(grouped)], dim=-1)


class Stage(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, pre_blocks: int, pos_blocks: int, ratio: float):
        super().__init__()
        self.k = k
        self.affine = GeometricAffine(cin)
        self.transfer = conv_bn_relu(2 * cin, cout)
        self.pre = nn.Sequential(*[ResBlock(cout, ratio) for _ in range(pre_blocks)])
        self.pos = nn.Sequential(*[ResBlock(cout, ratio) for _ in range(pos_blocks)])

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        centres = sample_centroids(xyz, max(1, xyz.shape[1] // 2))
        idx = knn(centres, xyz, min(self.k, xyz.shape[1]))
        anchor = group(feats, knn(centres, xyz, 1)).squeeze(2)  # (B, M, C): the anchors' own features
        grouped = self.affine(group(feats, idx), anchor)  # (B, M, k, 2C)
        B, M, k, C = grouped.shape
        x = self.pre(self.transfer(grouped.reshape(B * M, k, C).transpose(1, 2))).amax(dim=-1)
        x = self.pos(x.reshape(B, M, -1).transpose(1, 2))  # (B, cout, M)
        return centres, x.transpose(1, 2)


class PointMLPConfig(ComponentConfig):
    embed_dim: int = Field(32, gt=0)
    k: int = Field(24, gt=0)
    res_ratio: float = Field(0.25, gt=0)
    dropout: float = Field(0.5, ge=0, lt=1)


class PointMLP(Backbone):
    """PointMLP-elite: 4 residual MLP stages with geometric affine grouping (k=24), channels up to 256."""

    name = "pointmlp"
    version = "1"
    display_name = "PointMLP-elite"
    Config = PointMLPConfig
    provides = GLOBAL_ONLY

    def __init__(self, config: PointMLPConfig | None = None, num_classes: int = 40):
        super().__init__(config, num_classes)
        cfg = self.config
        self.embed = conv_bn_relu(3, cfg.embed_dim)
        widths, expansions = [cfg.embed_dim], (2, 2, 2, 1)
        for e in expansions:
            widths.append(widths[-1] * e)
        blocks = (1, 1, 2, 1)
        self.stages = nn.ModuleList(Stage(a, b, cfg.k, n, n, cfg.res_ratio)
                                    for a, b, n in zip(widths[:-1], widths[1:], blocks))
        self.head = nn.Sequential(
            nn.Linear(widths[-1], 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(cfg.dropout),
            nn.Linear(512, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(cfg.dropout),
            nn.Linear(256, num_classes),
        )

    def forward_features(self, points: torch.Tensor) -> BackboneOutput:
        xyz, feats = points, self.embed(points.transpose(1, 2)).transpose(1, 2)
        for stage in self.stages:
            xyz, feats = stage(xyz, feats)
        g = feats.amax(dim=1)
        return BackboneOutput(self.head(g), g)
