"""The gradient-matching loop of DC, PCC and DD3D (docs/specification.md#dc-and-pcc and #dd3d).

Per iteration a fresh network is drawn (trainable: it is trained between outer steps). For each outer step: the
frozen-BN warm-up on ``warmup_per_class`` real clouds per class; the synthetic clouds; per class, the layer-wise
cosine distance between the parameter gradients of the cross-entropy on a real batch (detached) and on the class's
synthetic clouds (kept in the graph: matching needs the gradient of a gradient, i.e. a double backward through the
network down to the learnable tensors); one step of the state's optimisers; a NaN/inf check; then, except after
the last outer step, ``inner`` epochs of training the network on the (detached) synthetic clouds.

:class:`GradientMatchingMethod` owns that loop; a method provides only what differs: how its synthetic clouds are
produced (:meth:`~GradientMatchingMethod.synthetic_clouds`: DC's learnable coordinates, DD3D's generator), which
tensors are checked (:meth:`~GradientMatchingMethod.learnable_tensors`) and what happens once the outer steps are
done (:meth:`~GradientMatchingMethod.end_iteration`: DD3D's lr schedule). Its config has ``warmup_per_class``,
``real_batch``, ``lr_net``, ``inner_batch``, ``outer_loop`` and ``inner_loop``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ddbench.backbones.utils import bn_warmup
from ddbench.data.cloudset import epoch_batches
from ddbench.errors import ConfigError
from ddbench.methods.base import DistillContext
from ddbench.methods.iterative import IterativeMethod, IterativeState
from ddbench.methods.losses import gradient_distance


def loops_for_ppc(cfg, ppc: int, table: dict[int, tuple[int, int]], method: str) -> tuple[int, int]:
    """(outer, inner) loops: the config's where set, else the method's table by PPC; a clear error for a PPC the
    table lacks when the config does not set both."""
    if cfg.outer_loop is not None and cfg.inner_loop is not None:
        return cfg.outer_loop, cfg.inner_loop
    if ppc not in table:
        raise ConfigError(
            f"{method.upper()} defines its outer/inner loops for PPC {sorted(table)} only; for ppc={ppc} set both "
            f"outer_loop and inner_loop (e.g. --set {method}.outer_loop=10 --set {method}.inner_loop=10)"
        )
    outer, inner = table[ppc]
    return cfg.outer_loop or outer, cfg.inner_loop if cfg.inner_loop is not None else inner


def gradient_matching_loss(net, points: torch.Tensor, labels: torch.Tensor, reals: Sequence[torch.Tensor],
                           classes: Sequence[int] | None = None) -> torch.Tensor:
    """Sum over ``classes`` (default: every class of ``reals``) of the layer-wise distance between the parameter
    gradients of the cross-entropy on the real batch ``reals[k]`` (detached) and on the synthetic clouds of class
    k. Differentiable in ``points`` through a double backward: the synthetic gradients stay in the autograd
    graph."""
    params = [p for p in net.parameters() if p.requires_grad]
    loss = None
    for k in range(len(reals)) if classes is None else classes:
        real = reals[k]
        y_real = torch.full((len(real),), k, device=real.device)
        g_real = [g.detach() for g in torch.autograd.grad(F.cross_entropy(net(real).logits, y_real), params)]
        syn = points[labels == k]
        y_syn = torch.full((len(syn),), k, device=syn.device)
        g_syn = torch.autograd.grad(F.cross_entropy(net(syn).logits, y_syn), params, create_graph=True)
        term = gradient_distance(g_real, g_syn)
        loss = term if loss is None else loss + term
    return loss


def train_inner(net, points: torch.Tensor, labels: torch.Tensor, epochs: int, batch: int, opt,
                gen: torch.Generator) -> None:
    """DC's inner loop: ``epochs`` epochs of training the network on the (detached) synthetic set."""
    net.train()
    for _ in range(epochs):
        for idx in epoch_batches(len(points), batch, gen):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(points[idx]).logits, labels[idx]).backward()
            opt.step()


@dataclass(kw_only=True)
class GradientMatchingState(IterativeState):
    """What every gradient-matching method's state has besides its learnable tensors."""

    #: (K*PPC,) labels of the synthetic clouds
    labels: torch.Tensor
    #: outer steps per iteration and inner epochs per outer step
    outer: int
    inner: int


class GradientMatchingMethod(IterativeMethod):
    """Base class of the gradient-matching methods: owns the outer/inner loop (see the module doc)."""

    needs: ClassVar[frozenset[str]] = frozenset({"logits"})
    #: the config options named when the learnable tensors become NaN/inf
    lr_hint: ClassVar[str] = "lr_points"

    # -- what a method provides -------------------------------------------------------------------------------
    def synthetic_clouds(self, state: GradientMatchingState, gen: torch.Generator) -> torch.Tensor:
        """The synthetic clouds (K*PPC, n, 3) of one outer step, in the graph of the learnable tensors; any
        randomness they need is drawn from ``gen``."""
        raise NotImplementedError

    def learnable_tensors(self, state: GradientMatchingState) -> list[torch.Tensor]:
        """The tensors checked for NaN/inf after every outer step."""
        raise NotImplementedError

    def end_iteration(self, state: GradientMatchingState) -> None:
        """Called once per iteration after the outer steps (e.g. an lr scheduler's step). Default: nothing."""

    # -- the shared part --------------------------------------------------------------------------------------
    def matching_loss(self, ctx: DistillContext, state: GradientMatchingState, net, reals: Sequence[torch.Tensor],
                      classes: Sequence[int] | None = None) -> torch.Tensor:
        """Gradient matching of the synthetic clouds under ``net`` (clouds drawn with a fixed generator seeded 0
        where they need randomness, so that held-out measurements are repeatable)."""
        clouds = self.synthetic_clouds(state, torch.Generator().manual_seed(0))
        return gradient_matching_loss(net, clouds, state.labels, reals, classes)

    def iteration(self, ctx: DistillContext, state: GradientMatchingState, gen: torch.Generator, it: int) -> float:
        cfg = self.config
        net = self.fresh_net(ctx, frozen=False)
        opt_net = torch.optim.SGD(net.parameters(), lr=cfg.lr_net)
        total = 0.0
        for outer in range(state.outer):
            bn_warmup(net, torch.cat(self.real_batches(ctx, cfg.warmup_per_class, gen)))
            clouds = self.synthetic_clouds(state, gen)
            loss = gradient_matching_loss(net, clouds, state.labels, self.real_batches(ctx, cfg.real_batch, gen))
            self.optimiser_step(state, loss)
            total += float(loss.detach())
            self.check_finite(self.learnable_tensors(state), it, self.name, self.lr_hint)
            if outer < state.outer - 1:
                train_inner(net, clouds.detach(), state.labels, state.inner, cfg.inner_batch, opt_net, gen)
        self.end_iteration(state)
        return total / state.outer
