"""Helpers shared by backbones and by methods that draw fresh networks: the frozen-BN warm-up, folding frozen BN
into the layer before it, and the matrix-product 1x1 convolution."""

from __future__ import annotations

import torch
from torch import nn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def bn_warmup(net: nn.Module, batch: torch.Tensor, *inputs: torch.Tensor) -> None:
    """docs/specification.md#frozen-bn-warm-up: one forward pass in train mode on ``batch``, then every BN to eval.

    With momentum 0.1 this leaves running stats = 0.9 * init (mean 0, var 1) + 0.1 * batch stats. Only the
    BatchNorm layers are switched to eval, as in the reference code; other layers (dropout) stay in train mode.
    ``inputs``: what else the network takes (a segmentation net: the clouds' categories).
    """
    net.train()
    with torch.no_grad():
        net(batch, *inputs)
    freeze_batchnorm(net)


def freeze_batchnorm(net: nn.Module) -> None:
    """Every BatchNorm of ``net`` to eval mode (running statistics); every other layer keeps its mode."""
    for module in net.modules():
        if isinstance(module, _BN):
            module.eval()




class PointwiseConv1d(nn.Conv1d):
    """A 1x1 ``Conv1d`` computed as a matrix product over the points. Same parameters, same values (to
    rounding); on CPU the product is about 4x faster than the mkldnn convolution when no gradient is recorded
    (real-side and warm-up forwards of the distillation methods, test passes) and as fast with one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size != (1,) or self.stride != (1,) or self.groups != 1 or self.padding not in ((0,), "valid"):
            return super().forward(x)
        weight = self.weight.squeeze(-1)
        if self.bias is None or x.dim() != 3:
            out = torch.matmul(weight, x)
            return out if self.bias is None else out + self.bias.unsqueeze(-1)
        # the bias added inside the product: one memory pass less than matmul + add
        return torch.baddbmm(self.bias.view(1, -1, 1), weight.expand(x.shape[0], -1, -1), x)


def fold_frozen_batchnorm(net: nn.Module) -> int:
    """Fold every frozen BatchNorm (eval mode, running statistics) into the Conv1d or Linear right before it in
    an ``nn.Sequential``: the layer then outputs BN(layer(x)) directly and the BN becomes an identity. Exact up
    to rounding, and it removes a full memory pass per BN from every forward and backward of a frozen network.
    Only for networks whose weights are not trained afterwards. Returns the number of folded pairs."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    folded = 0
    for seq in net.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            layer, bn = seq[i], seq[i + 1]
            if not isinstance(bn, nn.BatchNorm1d) or bn.training or bn.running_mean is None:
                continue
            if isinstance(layer, nn.Conv1d):
                seq[i] = fuse_conv_bn_eval(layer.eval(), bn)
            elif isinstance(layer, nn.Linear):
                seq[i] = fuse_linear_bn_eval(layer.eval(), bn)
            else:
                continue
            seq[i + 1] = nn.Identity()
            folded += 1
    return folded
