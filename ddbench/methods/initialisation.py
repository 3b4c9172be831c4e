"""Initial synthetic sets for the optimisation-based methods.

``noise``: Gaussian clouds normalised to the unit sphere. ``random``, ``herding``, ``kcenter``: the clouds chosen
by the coreset method of that name (with its default config, or the one given), so that the initialisation study
of SADM (Table 3) is one grid over ``init``. The resolution layer builds that coreset method (see
:meth:`IterativeMethod.initialiser_request`) and passes it in as ``DistillContext.initialiser``; nothing here
looks a method up by name.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from ddbench.data.transforms import normalize_unit_sphere
from ddbench.errors import ConfigError
from ddbench.methods.base import DistillContext, check_ppc

InitName = Literal["noise", "random", "herding", "kcenter"]
INITS = ("noise", "random", "herding", "kcenter")


def initial_clouds(ctx: DistillContext, init: str) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """(points (K*PPC, N, 3), labels, record of how they were made), class-major order. For an ``init`` other
    than ``noise``, ``ctx.initialiser`` is the coreset method that selects the clouds."""
    check_ppc(ctx.train, ctx.ppc, f"init {init}")
    k, ppc, n = ctx.num_classes, ctx.ppc, ctx.train.num_points
    labels = torch.arange(k).repeat_interleave(ppc)
    if init == "noise":
        gen = torch.Generator().manual_seed(ctx.seed)
        points = normalize_unit_sphere(torch.randn(k * ppc, n, 3, generator=gen))
        return points, labels, {"init": "noise", "distribution": "N(0, 1) normalised to the unit sphere"}
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}")
    method = ctx.initialiser
    if method is None or method.name != init:
        raise ConfigError(f"init {init!r} needs the {init} coreset method as the context's initialiser, got "
                          f"{getattr(method, 'name', None)!r}; build the context through ddbench.pipeline")
    selected = method.distill(ctx)  # reports its own progress (e.g. training the embedding net)
    order = torch.argsort(selected.labels, stable=True)
    record = {"init": init, "init_method_version": method.version, "init_config": method.config.model_dump(mode="json"),
              **{k_: v for k_, v in selected.info.items() if k_ in ("selected_indices", "embedding_net")}}
    return selected.points[order].clone(), selected.labels[order].clone(), record
