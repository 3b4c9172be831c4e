"""DGCNN (Wang et al., 2019): EdgeConv on a k-nearest-neighbour graph recomputed in feature space at every layer.

EdgeConv layers 64, 64, 128, 256 on edge features [x_j - x_i, x_i] of the k = 20 neighbours (1x1 Conv2d, BatchNorm,
LeakyReLU 0.2, max over neighbours); their outputs concatenated (512) and embedded to 1024 channels per point
(the point-wise features); global feature = [max, mean] over points (2048); classifier 512-256-K with dropout 0.5.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ddbench.backbones.base import FEATURES, Backbone, BackboneOutput
from ddbench.config import ComponentConfig
from ddbench.ops.neighbors import group, knn


def edge_features(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, C, N) -> (B, 2C, N, k): [x_j - x_i, x_i] over the k nearest neighbours of x_i in feature space."""
    pts = x.transpose(1, 2)  # (B, N, C)
    idx = knn(pts, pts, min(k, pts.shape[1]))
    neighbours = group(pts, idx)  # (B, N, k, C)
    centre = pts.unsqueeze(2).expand_as(neighbours)
    return torch.cat([neighbours - centre, centre], dim=-1).permute(0, 3, 1, 2).contiguous()


def edge_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(2 * cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class DGCNNConfig(ComponentConfig):
    k: int = Field(20, gt=0, description="neighbours of the dynamic graph")
    emb_dims: int = Field(1024, gt=0, description="channels of the point-wise embedding")
    dropout: float = Field(0.5, ge=0, lt=1)


class DGCNN(Backbone):
    """DGCNN: EdgeConv 64-64-128-256 on a dynamic kNN graph (k=20), embedding 1024, max+mean pooling."""

    name = "dgcnn"
    version = "1"
    display_name = "DGCNN"
    Config = DGCNNConfig
    provides = FEATURES

    def __init__(self, config: DGCNNConfig | None = None, num_classes: int = 40):
        super().__init__(config, num_classes)
        cfg = self.config
        widths = [3, 64, 64, 128, 256]
        self.edges = nn.ModuleList(edge_conv(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.embed = nn.Sequential(nn.Conv1d(sum(widths[1:]), cfg.emb_dims, 1, bias=False),
                                   nn.BatchNorm1d(cfg.emb_dims), nn.LeakyReLU(0.2))
        self.head = nn.Sequential(
            nn.Linear(2 * cfg.emb_dims, 512, bias=False), nn.BatchNorm1d(512), nn.LeakyReLU(0.2), nn.Dropout(cfg.dropout),
            nn.Linear(512, 256), nn.BatchNorm1d(256), nn.LeakyReLU(0.2), nn.Dropout(cfg.dropout),
            nn.Linear(256, num_classes),
        )

    def forward_features(self, points: torch.Tensor) -> BackboneOutput:
        x = points.transpose(1, 2)
        outs = []
        for layer in self.edges:
            x = layer(edge_features(x, self.config.k)).amax(dim=-1)
            outs.append(x)
        point_features = self.embed(torch.cat(outs, dim=1))  # (B, emb, N)
        g = torch.cat([point_features.amax(dim=2), point_features.mean(dim=2)], dim=1)
        return BackboneOutput(self.head(g), g, point_features)
