"""PointNet as used by SADM/3DDP (``pointnet``) and by DD3D (``pointnet_in``), docs/specification.md#networks."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ddbench.backbones import fused_pool
from ddbench.backbones.base import FEATURES, Backbone, BackboneOutput
from ddbench.backbones.fused_pool import can_fuse, conv_bn_max, conv_bn_statistics, frozen_max
from ddbench.backbones.utils import PointwiseConv1d, freeze_batchnorm
from ddbench.config import ComponentConfig


class InputTNet(nn.Module):
    """Input transform net: conv 3-64-128-1024 (BN, ReLU), max-pool, FC 1024-512-256 (BN, ReLU), FC to 9 + I."""

    def __init__(self, k: int = 3):
        super().__init__()
        self.k = k
        self.convs = nn.Sequential(
            PointwiseConv1d(k, 64, 1), nn.BatchNorm1d(64), nn.ReLU(),
            PointwiseConv1d(64, 128, 1), nn.BatchNorm1d(128), nn.ReLU(),
            PointwiseConv1d(128, 1024, 1), nn.BatchNorm1d(1024), nn.ReLU(),
        )
        self.fcs = nn.Sequential(
            nn.Linear(1024, 512), nn.BatchNorm1d(512), nn.ReLU(),
            nn.Linear(512, 256), nn.BatchNorm1d(256), nn.ReLU(),
            nn.Linear(256, k * k),
        )
        self.register_buffer("identity", torch.eye(k).reshape(1, k * k), persistent=False)

    def forward(self, x: torch.Tensor, fuse: bool | None = None) -> torch.Tensor:  # x: (B, k, N)
        """The (B, k, k) transforms; ``fuse``: True for the fused training-mode BN + max-pool, False for the plain
        layers, None (default) for whichever fused layer applies (:func:`can_fuse`, :func:`frozen_max`)."""
        conv, bn = self.convs[6], self.convs[7]
        if fuse is False:
            g = self.convs(x).amax(dim=2)
        elif fuse or can_fuse(bn, x):  # docs/backbones.md#fused-batchnorm-and-max-pool
            g = conv_bn_max(conv, bn, self.convs[:6](x), relu=True)
        else:
            hidden = self.convs[:6](x)
            g = frozen_max(conv, bn, hidden)  # docs/backbones.md#frozen-batchnorm-and-max-pool
            g = self.convs[6:](hidden).amax(dim=2) if g is None else torch.relu(g)
        return (self.fcs(g) + self.identity).view(-1, self.k, self.k)


class PointNetConfig(ComponentConfig):
    input_transform: bool = Field(True, description="use the input T-Net (reference: yes)")
    dropout: float = Field(0.3, ge=0, lt=1, description="dropout before the second head BN (reference 0.3)")


class PointNet(Backbone):
    """PointNet of SADM/3DDP: input T-Net, conv 3-64-128-1024 (BN), max-pool, FC head 512-256-K."""

    name = "pointnet"
    version = "1"
    display_name = "PointNet"
    Config = PointNetConfig

    def __init__(self, config: PointNetConfig | None = None, num_classes: int = 40):
        super().__init__(config, num_classes)
        cfg = self.config
        self.tnet = InputTNet(3) if cfg.input_transform else None
        self.conv1 = nn.Sequential(PointwiseConv1d(3, 64, 1), nn.BatchNorm1d(64), nn.ReLU())
        self.conv2 = nn.Sequential(PointwiseConv1d(64, 128, 1), nn.BatchNorm1d(128), nn.ReLU())
        self.conv3 = nn.Sequential(PointwiseConv1d(128, 1024, 1), nn.BatchNorm1d(1024))  # no ReLU: x_m
        self.head = nn.Sequential(
            nn.Linear(1024, 512), nn.BatchNorm1d(512), nn.ReLU(),
            nn.Linear(512, 256), nn.Dropout(cfg.dropout), nn.BatchNorm1d(256), nn.ReLU(),
            nn.Linear(256, num_classes),
        )

    def transformed(self, points: torch.Tensor, fuse: bool | None = None) -> torch.Tensor:
        """(B, N, 3) clouds -> (B, 3, N) clouds after the input transform (if any)."""
        if self.tnet is None:
            return points.transpose(1, 2)
        return torch.bmm(points, self.tnet(points.transpose(1, 2), fuse)).transpose(1, 2)

    def warm_up_batchnorm(self, batch: torch.Tensor, *inputs: torch.Tensor,
                          needs: frozenset[str] = FEATURES) -> None:
        """The frozen-BN warm-up; without logits in ``needs``, the statistics of every BatchNorm the features
        depend on, computed without forming the (B, 1024, N) activations (docs/backbones.md#the-frozen-batchnorm-
        warm-up-of-pointnet): the T-Net's widest layer fused with its max-pool, the last layer's from its
        input's covariance; the head (which only the logits read) is skipped and left with NaN statistics."""
        if "logits" in needs or not fused_pool.ENABLED:
            return super().warm_up_batchnorm(batch, *inputs, needs=needs)
        self.needs = frozenset(needs)
        self.train()
        with torch.no_grad():
            hidden = self.conv2(self.conv1(self.transformed(batch, fuse=True)))
            conv_bn_statistics(self.conv3[0], self.conv3[1], hidden)
        freeze_batchnorm(self)
        for module in self.head:
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.fill_(float("nan"))
                module.running_var.fill_(float("nan"))

    def forward_features(self, points: torch.Tensor) -> BackboneOutput:
        hidden = self.conv2(self.conv1(self.transformed(points)))
        if can_fuse(self.conv3[1], points):
            # training the network itself (the evaluation trainer): the per-point features are never formed
            # (docs/backbones.md#fused-batchnorm-and-max-pool), so this output has none
            global_feature = conv_bn_max(self.conv3[0], self.conv3[1], hidden, relu=False)
            return BackboneOutput(self.head(global_feature), global_feature, None)
        if "point_features" not in self.needs:
            # a frozen network whose callers read no point-wise features (DM; the test pass):
            # docs/backbones.md#frozen-batchnorm-and-max-pool
            global_feature = frozen_max(self.conv3[0], self.conv3[1], hidden)
            if global_feature is not None:
                return BackboneOutput(self.head(global_feature), global_feature, None)
        point_features = self.conv3(hidden)  # (B, 1024, N)
        global_feature = point_features.amax(dim=2)
        return BackboneOutput(self.head(global_feature), global_feature, point_features)


class PointNetINConfig(ComponentConfig):
    width: int = Field(1024, gt=0, description="channels of the last conv (reference 1024)")


class PointNetIN(Backbone):
    """PointNet of DD3D: conv 3-64-128-1024 with InstanceNorm (no affine), no T-Net, max-pool, Linear to K."""

    name = "pointnet_in"
    version = "1"
    display_name = "PointNet (IN)"
    Config = PointNetINConfig

    def __init__(self, config: PointNetINConfig | None = None, num_classes: int = 40):
        super().__init__(config, num_classes)
        w = self.config.width
        self.conv1 = nn.Sequential(PointwiseConv1d(3, 64, 1), nn.InstanceNorm1d(64), nn.ReLU())
        self.conv2 = nn.Sequential(PointwiseConv1d(64, 128, 1), nn.InstanceNorm1d(128), nn.ReLU())
        self.conv3 = nn.Sequential(PointwiseConv1d(128, w, 1), nn.InstanceNorm1d(w))
        self.classifier = nn.Linear(w, num_classes)

    def forward_features(self, points: torch.Tensor) -> BackboneOutput:
        point_features = self.conv3(self.conv2(self.conv1(points.transpose(1, 2))))
        global_feature = point_features.amax(dim=2)
        return BackboneOutput(self.classifier(global_feature), global_feature, point_features)
