"""Helpers shared by methods that draw fresh networks: seeding and the frozen-BN warm-up."""

from __future__ import annotations

import torch
from torch import nn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def bn_warmup(net: nn.Module, batch: torch.Tensor) -> None:
    """PROTOCOL.md 'frozen BN warm-up': one forward pass in train mode on ``batch``, then every BN to eval.

    With momentum 0.1 this leaves running stats = 0.9 * init (mean 0, var 1) + 0.1 * batch stats. Only the
    BatchNorm layers are switched to eval, as in the reference code; other layers (dropout) stay in train mode.
    """
    net.train()
    with torch.no_grad():
        net(batch)
    for module in net.modules():
        if isinstance(module, _BN):
            module.eval()


