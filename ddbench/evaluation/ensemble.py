"""N evaluation nets trained as one batched ensemble.

Every member keeps what an independent run would have: its own initialisation (built from its seed exactly as
the sequential trainer builds it), its own data order and augmentation draws (the same per-seed generators),
its own BatchNorm statistics (per-member running buffers) and its own dropout masks (a per-member generator
that continues the global RNG state the sequential run would have after initialising that net, on CPU). The
members' parameters are stacked along a leading ensemble axis E; every layer is a batched matrix multiply over
E, and the loss is the sum of the members' losses, so each member's gradient is exactly its own. SGD and Adam
act element-wise, so the stacked optimiser takes the members' own steps.

Activations are channels-first per member, with the clouds of a batch side by side: point-wise tensors are
(E, C, B, N), global ones (E, C, B). A layer is then one (Cout x Cin) @ (Cin x B*N) product per member (one
batched matmul), and every member's BatchNorm is the native fused kernel over an (1, E*C, B*N) view.

Supported backbones are ``pointnet`` and ``pointnet_in`` (plain, not canonicalised). A third-party backbone
opts in by giving its class a ``build_ensemble(nets) -> nn.Module`` staticmethod whose module maps
(E, B, N, 3) clouds and a list of E dropout generators to (E, B, K) logits and has ``export_members()``.
Anything else falls back to the sequential loop, and the reason is recorded with the results.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ddbench.backbones.pointnet import PointNet, PointNetIN


def _stacked(tensors: list[torch.Tensor]) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]).clone())


class EnsembleLinear(nn.Module):
    """E Linear layers (or 1x1 Conv1d layers) as one batched matmul over channels-first inputs (E, Cin, ...)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.members = layers
        self.weight = _stacked([layer.weight.reshape(layer.weight.shape[0], -1) for layer in layers])  # (E, out, in)
        self.bias = _stacked([layer.bias for layer in layers])  # (E, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        E, rest = x.shape[0], x.shape[2:]
        out = torch.baddbmm(self.bias.unsqueeze(2), self.weight, x.reshape(E, x.shape[1], -1))
        return out.view(E, out.shape[1], *rest)

    def export(self) -> None:
        for e, layer in enumerate(self.members):
            layer.weight.data.copy_(self.weight.data[e].reshape(layer.weight.shape))
            layer.bias.data.copy_(self.bias.data[e])


class EnsembleBatchNorm(nn.Module):
    """E BatchNorm1d layers, each normalising its own member's batch with its own running statistics: the
    native kernel over the (1, E*C, samples) view, whose channels are the members' channels side by side."""

    def __init__(self, layers: list[nn.BatchNorm1d]):
        super().__init__()
        self.members = layers
        first = layers[0]
        self.eps, self.momentum = first.eps, first.momentum
        self.weight = _stacked([layer.weight for layer in layers])  # (E, C)
        self.bias = _stacked([layer.bias for layer in layers])
        self.register_buffer("running_mean", torch.stack([layer.running_mean for layer in layers]).clone())
        self.register_buffer("running_var", torch.stack([layer.running_var for layer in layers]).clone())
        self.register_buffer("num_batches_tracked", layers[0].num_batches_tracked.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (E, C, ...)
        E, C = x.shape[:2]
        if self.training:
            self.num_batches_tracked += 1
        out = F.batch_norm(
            x.reshape(1, E * C, -1), self.running_mean.view(-1), self.running_var.view(-1),
            self.weight.view(-1), self.bias.view(-1), self.training, self.momentum, self.eps,
        )
        return out.view(x.shape)

    def export(self) -> None:
        for e, layer in enumerate(self.members):
            layer.weight.data.copy_(self.weight.data[e])
            layer.bias.data.copy_(self.bias.data[e])
            layer.running_mean.copy_(self.running_mean[e])
            layer.running_var.copy_(self.running_var[e])
            layer.num_batches_tracked.copy_(self.num_batches_tracked)


class EnsembleInstanceNorm(nn.Module):
    """InstanceNorm1d without affine or running statistics: each cloud normalised over its own points."""

    def __init__(self, layers: list[nn.InstanceNorm1d]):
        super().__init__()
        self.eps = layers[0].eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (E, C, B, N)
        var, mean = torch.var_mean(x, dim=3, keepdim=True, correction=0)
        return (x - mean) * torch.rsqrt(var + self.eps)


class EnsembleDropout(nn.Module):
    """Dropout whose mask for member e is drawn from member e's own generator, as ``F.dropout`` draws it for a
    (B, C) input, and transposed to the ensemble's (C, B) layout."""

    def __init__(self, layers: list[nn.Dropout]):
        super().__init__()
        self.p = layers[0].p
        self.generators: list[torch.Generator] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (E, C, B)
        if not self.training or self.p == 0:
            return x
        if self.generators is None:
            raise RuntimeError("EnsembleDropout needs the members' generators (set_generators) before training")
        C, B = x.shape[1:]
        masks = [torch.empty(B, C, device=x.device, dtype=x.dtype).bernoulli_(1 - self.p, generator=g).t()
                 for g in self.generators]
        return x * torch.stack(masks).div_(1 - self.p)


class EnsembleReLU(nn.Module):
    def __init__(self, layers: list[nn.ReLU]):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


_LAYERS = {
    nn.Linear: EnsembleLinear, nn.Conv1d: EnsembleLinear, nn.BatchNorm1d: EnsembleBatchNorm,
    nn.InstanceNorm1d: EnsembleInstanceNorm, nn.Dropout: EnsembleDropout, nn.ReLU: EnsembleReLU,
}


def ensemble_sequential(stacks: list[nn.Sequential]) -> nn.Sequential:
    """One ensemble layer per position of E structurally identical ``nn.Sequential`` stacks."""
    layers = []
    for position in zip(*stacks):
        kind = next((k for k in _LAYERS if isinstance(position[0], k)), None)
        if kind is None or any(type(m) is not type(position[0]) for m in position):
            raise TypeError(f"no ensemble version of {type(position[0]).__name__}")
        if kind is nn.Conv1d and position[0].kernel_size != (1,):
            raise TypeError("only 1x1 convolutions have an ensemble version")
        layers.append(_LAYERS[kind](list(position)))
    return nn.Sequential(*layers)


class EnsembleModule(nn.Module):
    """Shared plumbing: dropout generators and copying the trained weights back into the member nets."""

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        self.members = nets  # plain list: not registered, so parameters are not duplicated

    def set_generators(self, generators: list[torch.Generator]) -> None:
        for module in self.modules():
            if isinstance(module, EnsembleDropout):
                module.generators = generators

    def export_members(self) -> list[nn.Module]:
        """The member nets carrying the ensemble's current weights and BatchNorm statistics."""
        for module in self.modules():
            if hasattr(module, "export") and module is not self:
                module.export()
        return self.members


class EnsemblePointNet(EnsembleModule):
    """E ``pointnet`` nets (input T-Net, conv trunk with BN, FC head with dropout) as one module."""

    def __init__(self, nets: list[PointNet]):
        super().__init__(nets)
        self.has_tnet = nets[0].tnet is not None
        if self.has_tnet:
            self.tnet_convs = ensemble_sequential([n.tnet.convs for n in nets])
            self.tnet_fcs = ensemble_sequential([n.tnet.fcs for n in nets])
        self.trunk = ensemble_sequential([nn.Sequential(*n.conv1, *n.conv2, *n.conv3) for n in nets])
        self.head = ensemble_sequential([n.head for n in nets])

    def forward(self, points: torch.Tensor) -> torch.Tensor:  # (E, B, N, 3) -> (E, B, K)
        E, B = points.shape[:2]
        x = points.permute(0, 3, 1, 2)  # (E, 3, B, N)
        if self.has_tnet:
            g = self.tnet_convs(x).amax(dim=3)  # (E, 1024, B)
            trans = self.tnet_fcs(g).transpose(1, 2) + torch.eye(3, device=points.device, dtype=points.dtype).reshape(1, 1, 9)
            x = torch.matmul(points, trans.reshape(E, B, 3, 3)).permute(0, 3, 1, 2)
        return self.head(self.trunk(x.contiguous()).amax(dim=3)).transpose(1, 2)


class EnsemblePointNetIN(EnsembleModule):
    """E ``pointnet_in`` nets (conv trunk with InstanceNorm, max-pool, one Linear) as one module."""

    def __init__(self, nets: list[PointNetIN]):
        super().__init__(nets)
        self.trunk = ensemble_sequential([nn.Sequential(*n.conv1, *n.conv2, *n.conv3) for n in nets])
        self.classifier = EnsembleLinear([n.classifier for n in nets])

    def forward(self, points: torch.Tensor) -> torch.Tensor:  # (E, B, N, 3) -> (E, B, K)
        return self.classifier(self.trunk(points.permute(0, 3, 1, 2).contiguous()).amax(dim=3)).transpose(1, 2)


_BUILDERS = {PointNet: EnsemblePointNet, PointNetIN: EnsemblePointNetIN}


def ensemble_support(cls: type) -> tuple[bool, str]:
    """Whether nets of backbone class ``cls`` can train as an ensemble, and why not when they cannot."""
    if cls in _BUILDERS or callable(getattr(cls, "build_ensemble", None)):
        return True, f"{getattr(cls, 'name', cls.__name__)} has an ensemble implementation"
    return False, f"{getattr(cls, 'name', cls.__name__)} has no ensemble implementation"


def build_ensemble(nets: list[nn.Module]) -> nn.Module:
    cls = type(nets[0])
    if any(type(n) is not cls for n in nets):
        raise TypeError("ensemble members must be the same backbone")
    if cls in _BUILDERS:
        return _BUILDERS[cls](nets)
    return cls.build_ensemble(nets)


def ensemble_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-member mean cross-entropy, (E,), of (E, B, K) logits and (E, B) labels."""
    E, B, K = logits.shape
    return F.cross_entropy(logits.reshape(E * B, K), labels.reshape(E * B), reduction="none").view(E, B).mean(1)
