"""Point Transformer (Zhao et al., ICCV 2021), classification network.

Input embedding 3-32-32; a point transformer block (vector self-attention over the 16 nearest neighbours with a
learned relative position encoding, d_model 512); then 4 transition-down levels (FPS to a quarter of the points,
kNN 16 grouping, shared MLP, max) doubling the channels 64-128-256-512, each followed by a transformer block; mean
over the remaining points; classifier 256-64-K.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ddbench.backbones.base import Backbone, BackboneOutput
from ddbench.backbones.pointnet2 import GLOBAL_ONLY, channels_first, sample_centroids, shared_mlp
from ddbench.config import ComponentConfig
from ddbench.ops.neighbors import group, knn


class TransformerBlock(nn.Module):
    def __init__(self, d_points: int, d_model: int, k: int):
        super().__init__()
        self.k = k
        self.fc_in = nn.Linear(d_points, d_model)
        self.fc_out = nn.Linear(d_model, d_points)
        self.pos = nn.Sequential(nn.Linear(3, d_model), nn.ReLU(), nn.Linear(d_model, d_model))
        self.gamma = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, d_model))
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.scale = d_model**-0.5

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        idx = knn(xyz, xyz, min(self.k, xyz.shape[1]))
        x = self.fc_in(feats)
        q = self.q(x)
        keys, values = group(self.k_proj(x), idx), group(self.v(x), idx)  # (B, N, k, d)
        pos = self.pos(xyz.unsqueeze(2) - group(xyz, idx))
        attn = torch.softmax(self.gamma(q.unsqueeze(2) - keys + pos) * self.scale, dim=2)
        out = (attn * (values + pos)).sum(dim=2)
        return self.fc_out(out) + feats


class TransitionDown(nn.Module):
    def __init__(self, fraction: int, k: int, cin: int, cout: int):
        super().__init__()
        self.fraction, self.k = fraction, k
        self.mlp = shared_mlp([cin + 3, cout, cout])

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        centres = sample_centroids(xyz, max(1, xyz.shape[1] // self.fraction))
        idx = knn(centres, xyz, min(self.k, xyz.shape[1]))
        grouped = torch.cat([group(xyz, idx) - centres.unsqueeze(2), group(feats, idx)], dim=-1)
        return centres, self.mlp(channels_first(grouped)).amax(dim=2).transpose(1, 2)


class PointTransformerConfig(ComponentConfig):
    blocks: int = Field(4, gt=0, description="transition-down levels, each with a transformer block")
    k: int = Field(16, gt=0, description="neighbours of attention and grouping")
    d_model: int = Field(512, gt=0, description="attention width")


class PointTransformer(Backbone):
    """Point Transformer (Zhao et al.): 4 blocks, 16-NN vector attention, d_model 512."""

    name = "point_transformer"
    version = "1"
    display_name = "Point Transformer"
    Config = PointTransformerConfig
    provides = GLOBAL_ONLY

    def __init__(self, config: PointTransformerConfig | None = None, num_classes: int = 40):
        super().__init__(config, num_classes)
        cfg = self.config
        self.embed = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 32))
        self.block0 = TransformerBlock(32, cfg.d_model, cfg.k)
        widths = [32 * 2**i for i in range(cfg.blocks + 1)]
        self.downs = nn.ModuleList(TransitionDown(4, cfg.k, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.blocks = nn.ModuleList(TransformerBlock(b, cfg.d_model, cfg.k) for b in widths[1:])
        self.head = nn.Sequential(nn.Linear(widths[-1], 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(),
                                  nn.Linear(64, num_classes))

    def forward_features(self, points: torch.Tensor) -> BackboneOutput:
        xyz = points
        feats = self.block0(xyz, self.embed(points))
        for down, block in zip(self.downs, self.blocks):
            xyz, feats = down(xyz, feats)
            feats = block(xyz, feats)
        g = feats.mean(dim=1)
        return BackboneOutput(self.head(g), g)
