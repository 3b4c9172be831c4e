"""Coreset baselines (docs/specification.md#coreset-baselines): random, herding, k-center; and the ``whole`` reference.

The selection rules work on a feature matrix of one class and return indices into it; the methods wrap them.
"""

from __future__ import annotations

import torch
from pydantic import Field

from ddbench.config import ComponentConfig
from ddbench.methods.base import DistillContext, Method, check_ppc
from ddbench.methods.embedding import EmbeddingConfig, compute_embeddings
from ddbench.synthetic.artifact import SyntheticSet


def herding_select(features: torch.Tensor, k: int) -> list[int]:
    """Greedy herding with the argmin rule.

    At step t, add the candidate i that minimises || mu - (sum of chosen + f_i) / t ||, i.e. that keeps the
    running mean of the chosen set closest to the class mean mu. (One public library uses argmax here by
    mistake; this is the rule of Welling 2009 / Rebuffi et al. 2017.)
    """
    feats = features.double()
    mu = feats.mean(0)
    chosen: list[int] = []
    running = torch.zeros_like(mu)
    available = torch.ones(len(feats), dtype=torch.bool)
    for t in range(1, k + 1):
        dist = ((mu - (running + feats) / t) ** 2).sum(1)
        dist[~available] = float("inf")
        i = int(dist.argmin())
        chosen.append(i)
        available[i] = False
        running += feats[i]
    return chosen


def kcenter_select(features: torch.Tensor, k: int) -> list[int]:
    """K-center greedy: first centre = the cloud closest to the class mean (herding's first pick), then
    repeatedly the cloud farthest from its nearest chosen centre."""
    feats = features.double()
    first = int(((feats - feats.mean(0)) ** 2).sum(1).argmin())
    chosen = [first]
    nearest = ((feats - feats[first]) ** 2).sum(1)
    for _ in range(1, k):
        nearest_masked = nearest.clone()
        nearest_masked[chosen] = -1.0
        i = int(nearest_masked.argmax())
        chosen.append(i)
        nearest = torch.minimum(nearest, ((feats - feats[i]) ** 2).sum(1))
    return chosen


class NoConfig(ComponentConfig):
    pass


def selection_to_set(ctx: DistillContext, indices: list[int], info: dict) -> SyntheticSet:
    """The selected real clouds (with their per-point part labels under a segmentation task)."""
    idx = torch.tensor(indices, dtype=torch.long)
    parts = ctx.task.point_labels_of(ctx.train, idx)
    return SyntheticSet(
        ctx.train.points[idx],
        ctx.train.labels[idx],
        list(ctx.train.class_names),
        extras={"point_labels": parts} if parts is not None else {},
        info={"selected_indices": indices, **info, **({"task": ctx.task.name} if parts is not None else {})},
    )


class RandomMethod(Method):
    """Random real clouds: PPC per class, drawn without replacement from the cell's seed."""

    role = "coreset"
    name = "random"
    version = "1"
    tasks = ("classification", "segmentation")
    display_name = "Random"
    Config = NoConfig

    def distill(self, ctx: DistillContext) -> SyntheticSet:
        check_ppc(ctx.train, ctx.ppc, self.name)
        gen = torch.Generator().manual_seed(ctx.seed)
        indices: list[int] = []
        for k in range(ctx.num_classes):
            idx = ctx.train.indices_of_class(k)
            indices += idx[torch.randperm(len(idx), generator=gen)[: ctx.ppc]].tolist()
        return selection_to_set(ctx, indices, {"rule": "uniform without replacement", "seed": ctx.seed})


class _EmbeddingCoreset(Method):
    role = "coreset"
    Config = EmbeddingConfig
    uses_backbone = True
    needs = frozenset({"global_feature"})
    rule = staticmethod(herding_select)

    def distill(self, ctx: DistillContext) -> SyntheticSet:
        check_ppc(ctx.train, ctx.ppc, self.name)
        if ctx.backbone is None:
            ctx.build_backbone()  # raises the one-line error that says which backbone to give
        feats, record = compute_embeddings(
            ctx.train, self.config, ctx.backbone, ctx.seed, ctx.device, ctx.cache_dir, ctx.report, ctx.task,
        )
        indices: list[int] = []
        for k in range(ctx.num_classes):
            idx = ctx.train.indices_of_class(k)
            indices += idx[self.rule(feats[idx], ctx.ppc)].tolist()
        return selection_to_set(ctx, indices, {"rule": self.rule.__name__, "embedding_net": record})


class HerdingMethod(_EmbeddingCoreset):
    """Herding: per class, greedily keep the chosen clouds' mean feature closest to the class mean (argmin)."""

    name = "herding"
    version = "1"
    tasks = ("classification", "segmentation")
    display_name = "Herding"
    rule = staticmethod(herding_select)


class KCenterMethod(_EmbeddingCoreset):
    """K-center greedy in feature space, starting from the cloud closest to the class mean."""

    name = "kcenter"
    version = "1"
    tasks = ("classification", "segmentation")
    display_name = "K-Center"
    rule = staticmethod(kcenter_select)


class WholeConfig(ComponentConfig):
    max_per_class: int | None = Field(None, gt=0, description="cap per class (None: every training cloud)")


class WholeMethod(Method):
    """The whole training set: the upper reference row of the tables."""

    name = "whole"
    role = "full_data"
    version = "1"
    tasks = ("classification", "segmentation")
    display_name = "Whole dataset"
    uses_ppc = False
    Config = WholeConfig

    def distill(self, ctx: DistillContext) -> SyntheticSet:
        cap = self.config.max_per_class
        if cap is None:
            indices = list(range(len(ctx.train)))
        else:
            indices = [i for k in range(ctx.num_classes) for i in ctx.train.indices_of_class(k)[:cap].tolist()]
        synth = selection_to_set(ctx, indices, {"rule": "all training clouds" if cap is None else f"first {cap}"})
        if cap is None:
            del synth.info["selected_indices"]  # simply 0..M-1; not worth thousands of manifest lines
        return synth


BUILTIN_METHODS = (RandomMethod, HerdingMethod, KCenterMethod, WholeMethod)
