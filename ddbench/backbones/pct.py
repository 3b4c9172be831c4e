"""PCT (Guo et al., 2021), the full point cloud transformer with neighbour embedding.

Input embedding (1x1 conv 3-64-64 with BatchNorm and ReLU); two sample-and-group levels (FPS to 512 then 256
points, 32 nearest neighbours, features [x_j - x_i, x_i], two 1x1 convs, max) giving 128 then 256 channels; four
offset-attention layers of 256 channels whose outputs are concatenated (1024) with the 256-channel input and fused
to 1024 channels (LeakyReLU 0.2); max over points; classifier 512-256-K (LeakyReLU, dropout 0.5).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ddbench.backbones.base import Backbone, BackboneOutput
from ddbench.backbones.pointnet2 import GLOBAL_ONLY, sample_centroids
from ddbench.config import ComponentConfig
from ddbench.ops.neighbors import group, knn


def conv_bn(cin: int, cout: int, act: nn.Module | None = None) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout), act or nn.ReLU())


class SampleGroup(nn.Module):
    """FPS to ``npoint`` centres, kNN grouping, [neighbour - centre, centre] features, two convs, max."""

    def __init__(self, npoint: int, k: int, cin: int, cout: int):
        super().__init__()
        self.npoint, self.k = npoint, k
        self.convs = nn.Sequential(conv_bn(2 * cin, cout), conv_bn(cout, cout))

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        centres = sample_centroids(xyz, self.npoint)
        idx = knn(centres, xyz, min(self.k, xyz.shape[1]))
        centre_idx = knn(centres, xyz, 1)  # each centre is a point of xyz: its own features
        centre_feats = group(feats, centre_idx)  # (B, M, 1, C)
        neighbours = group(feats, idx)
        grouped = torch.cat([neighbours - centre_feats, centre_feats.expand_as(neighbours)], dim=-1)
        B, M, k, C = grouped.shape
        out = self.convs(grouped.reshape(B * M, k, C).transpose(1, 2)).amax(dim=-1)  # (B*M, cout)
        return centres, out.reshape(B, M, -1)


class OffsetAttention(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.qk = nn.Conv1d(channels, channels // 4, 1, bias=False)  # query and key share their weights
        self.v = nn.Conv1d(channels, channels, 1)
        self.trans = nn.Conv1d(channels, channels, 1)
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, N)
        q = self.qk(x)
        energy = torch.bmm(q.transpose(1, 2), q)  # (B, N, N)
        attn = torch.softmax(energy, dim=-1)
        attn = attn / (1e-9 + attn.sum(dim=1, keepdim=True))
        x_r = torch.bmm(self.v(x), attn)
        return x + torch.relu(self.norm(self.trans(x - x_r)))


class PCTConfig(ComponentConfig):
    dropout: float = Field(0.5, ge=0, lt=1)
    neighbours: int = Field(32, gt=0)


class PCT(Backbone):
    """PCT: neighbour embedding (512/256 points, 32-NN) + 4 offset-attention layers, max pooling."""

    name = "pct"
    version = "1"
    display_name = "PCT"
    Config = PCTConfig
    provides = GLOBAL_ONLY

    def __init__(self, config: PCTConfig | None = None, num_classes: int = 40):
        super().__init__(config, num_classes)
        cfg = self.config
        self.embed = nn.Sequential(conv_bn(3, 64), conv_bn(64, 64))
        self.sg1 = SampleGroup(512, cfg.neighbours, 64, 128)
        self.sg2 = SampleGroup(256, cfg.neighbours, 128, 256)
        self.pre = nn.Sequential(conv_bn(256, 256), conv_bn(256, 256))
        self.attention = nn.ModuleList(OffsetAttention(256) for _ in range(4))
        self.fuse = conv_bn(1280, 1024, nn.LeakyReLU(0.2))
        self.head = nn.Sequential(
            nn.Linear(1024, 512, bias=False), nn.BatchNorm1d(512), nn.LeakyReLU(0.2), nn.Dropout(cfg.dropout),
            nn.Linear(512, 256), nn.BatchNorm1d(256), nn.LeakyReLU(0.2), nn.Dropout(cfg.dropout),
            nn.Linear(256, num_classes),
        )

    def forward_features(self, points: torch.Tensor) -> BackboneOutput:
        feats = self.embed(points.transpose(1, 2)).transpose(1, 2)
        xyz, feats = self.sg1(points, feats)
        _, feats = self.sg2(xyz, feats)
        x = feats.transpose(1, 2)  # (B, 256, M)
        y = self.pre(x)
        outs = []
        for layer in self.attention:
            y = layer(y)
            outs.append(y)
        fused = self.fuse(torch.cat([*outs, x], dim=1))
        g = fused.amax(dim=2)
        return BackboneOutput(self.head(g), g)
