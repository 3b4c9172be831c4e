"""Helpers shared by methods that draw fresh networks: seeding and the frozen-BN warm-up."""

from __future__ import annotations

import torch
from torch import nn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def bn_warmup(net: nn.Module, batch: torch.Tensor) -> None:
    """PROTOCOL.md 'frozen BN warm-up': one forward pass in train mode on ``batch``, then every BN to eval.

    With momentum 0.1 this leaves running stats = 0.9 * init (mean 0, var 1) + 0.1 * batch stats. Dropout and
    every other layer are put in eval mode too, so the net afterwards is deterministic.
    """
    net.train()
    with torch.no_grad():
        net(batch)
    net.eval()


def freeze(net: nn.Module) -> nn.Module:
    for p in net.parameters():
        p.requires_grad_(False)
    return net
