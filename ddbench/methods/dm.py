"""DM (distribution matching, Zhao & Bilen 2023) for point clouds (PROTOCOL.md section 6).

Per iteration: a fresh frozen network (after the frozen-BN warm-up, since PointNet has BatchNorm); per class, the
squared distance between the mean global (max-pooled) feature of a real batch and that of the class's synthetic
clouds; the sum over classes is minimised by SGD on the coordinates.

Reference values where PROTOCOL.md leaves them open (recorded with every result; change them with --set):
the real batch is 256 clouds per class as in DM's image code; the warm-up uses 8 real clouds per class as SADM
does; iterations 1500, SADM's budget. The learning rate on the coordinates stays at the image reference, 1.0,
because it already moves points as far per update as SADM does at its reference lr (mean step 1.1e-3 against
1.0e-3 on ModelNet10; benchmarks/calibrate_step_sizes.py, training set only; no test-set tuning).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from ddbench.methods.base import DistillContext
from ddbench.methods.initialisation import InitName
from ddbench.methods.iterative import IterativeConfig, IterativeMethod
from ddbench.synthetic.artifact import SyntheticSet


class DMConfig(IterativeConfig):
    iterations: int = Field(1500, ge=0)
    init: InitName = "random"
    real_batch: int = Field(256, gt=0, description="real clouds per class (DM image reference: 256)")
    warmup_per_class: int = Field(8, gt=0, description="real clouds per class of the frozen-BN warm-up")
    lr_points: float = Field(1.0, gt=0, description="SGD lr on the coordinates (image reference: 1)")
    momentum: float = Field(0.5, ge=0)


def dm_class_loss(real_global: torch.Tensor, syn_global: torch.Tensor) -> torch.Tensor:
    """Squared distance between the mean global features of the real and the synthetic clouds of a class."""
    return ((real_global.mean(0) - syn_global.mean(0)) ** 2).sum()


class DMMethod(IterativeMethod):
    """DM: match the mean global feature of real and synthetic clouds per class under fresh random networks."""

    name = "dm"
    version = "1"
    display_name = "DM"
    Config = DMConfig
    needs = frozenset({"global_feature"})

    def setup(self, ctx: DistillContext, points: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        pts = points.clone().requires_grad_(True)
        opt = torch.optim.SGD([pts], lr=self.config.lr_points, momentum=self.config.momentum)
        return {"points": pts, "labels": labels, "opt": opt}

    def matching_loss(self, ctx: DistillContext, state: dict[str, Any], net, reals: list[torch.Tensor]) -> torch.Tensor:
        """Sum over classes of the squared distance between mean global features under ``net``."""
        syn_global = net(state["points"]).global_feature
        labels = state["labels"]
        loss = syn_global.new_zeros(())
        for k, real in enumerate(reals):
            with torch.no_grad():
                real_global = net(real).global_feature
            loss = loss + dm_class_loss(real_global, syn_global[labels == k])
        return loss

    def iteration(self, ctx: DistillContext, state: dict[str, Any], gen: torch.Generator, it: int) -> float:
        cfg = self.config
        net = self.warmed_net(ctx, torch.cat(self.real_batches(ctx, cfg.warmup_per_class, gen)))
        loss = self.matching_loss(ctx, state, net, self.real_batches(ctx, cfg.real_batch, gen))
        state["opt"].zero_grad(set_to_none=True)
        loss.backward()
        state["opt"].step()
        self.check_finite([state["points"]], it, self.name, "lr_points")
        return float(loss.detach())

    def materialise(self, ctx: DistillContext, state: dict[str, Any]) -> SyntheticSet:
        return SyntheticSet(state["points"].detach().cpu(), state["labels"].cpu(), list(ctx.train.class_names),
                            info={"loss": "dm"})
