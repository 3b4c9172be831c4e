"""Example ddbench plugin: the ``medoid`` coreset method (Chamfer medoids per class)."""

from __future__ import annotations

import torch

# ddbench.api is the stable surface for plugins: import nothing else from ddbench.
from ddbench.api import (
    ComponentConfig,
    DistillContext,
    Field,
    Method,
    SyntheticSet,
    check_ppc,
    fps_subsample,
    hookimpl,
)

__version__ = "0.1.0"


def chamfer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Symmetric Chamfer distance between every cloud of ``a`` (A, N, 3) and every cloud of ``b`` (B, M, 3)."""
    d = torch.cdist(a.unsqueeze(1).expand(-1, b.shape[0], -1, -1).reshape(-1, a.shape[1], 3),
                    b.unsqueeze(0).expand(a.shape[0], -1, -1, -1).reshape(-1, b.shape[1], 3)) ** 2
    return (d.amin(2).mean(1) + d.amin(1).mean(1)).view(a.shape[0], b.shape[0])


class MedoidConfig(ComponentConfig):
    points: int = Field(128, gt=0, description="points per cloud (FPS) used to compute Chamfer distances")
    references: int = Field(32, gt=0, description="clouds of the class each candidate is compared with")


class MedoidMethod(Method):
    """Chamfer medoids: per class, the clouds closest on average to the rest of their class."""

    name = "medoid"
    role = "coreset"
    version = __version__
    display_name = "Medoid"
    Config = MedoidConfig

    def distill(self, ctx: DistillContext) -> SyntheticSet:
        check_ppc(ctx.train, ctx.ppc, self.name)
        gen = torch.Generator().manual_seed(ctx.seed)
        chosen: list[int] = []
        for k in range(ctx.num_classes):
            idx = ctx.train.indices_of_class(k)
            small = fps_subsample(ctx.train.points[idx], min(self.config.points, ctx.train.num_points))
            refs = small[torch.randperm(len(idx), generator=gen)[: self.config.references]]
            score = torch.cat([chamfer(chunk, refs).mean(1) for chunk in small.split(64)])
            chosen += idx[score.argsort()[: ctx.ppc]].tolist()
            ctx.report(k + 1, ctx.num_classes, f"medoids of class {ctx.train.class_names[k]}")
        picked = torch.tensor(chosen)
        return SyntheticSet(ctx.train.points[picked].clone(), ctx.train.labels[picked].clone(),
                            list(ctx.train.class_names), info={"selected_indices": chosen})


@hookimpl
def register_methods(register):
    register(MedoidMethod)
