"""DD3D for part segmentation (DD3D Table 2; docs/segmentation.md#dd3d-for-segmentation).

The reference is ``seg_inr.py`` of github.com/bdy9527/DD3D at a500ab4 (file:line citations below). The generator is
DD3D's conditional SIREN (one code per synthetic cloud, a scalar uniform noise value per point, first-layer
frequency 400, seg_inr.py:107-110, 157-158); every generated point gets the part label of the interval its noise
value falls in, the intervals of a category being consecutive with lengths equal to that category's part
proportions (``generate_noise_and_seg_label``, seg_inr.py:34-66). So the generator learns where each part lies, and
a cloud at any resolution carries its labels.

Part proportions (:data:`RELEASED_PROPORTIONS`): the released code's table for ShapeNetPart's 16 categories
(seg_inr.py:40-55), the fraction of each category's points that lie on each of its parts. ``proportions = auto``
uses it on ShapeNetPart and, on any other dataset, measures the same fractions on the training set (mean over the
category's clouds of the fraction of points with each part label; the built-in ``shapes`` dataset).

One iteration (seg_inr.py:184-246): a fresh ``pointnet_seg`` with its own SGD (lr 1e-3; the code builds a StepLR
but never steps it, so the lr stays constant); for each outer step the frozen-BN warm-up on 8 real clouds per
category; per category a real batch of 32 clouds at full resolution with their part labels; fresh noise, its part
labels and the generated clouds; on even outer steps the gradient distance of the per-point cross-entropy over all
points, on odd ones the sum over the category's parts of the distance with every other part ignored (label -1);
one Adam step on the generator (lr 5e-4, weight decay 1e-5, constant: its StepLR is never stepped either); then,
except after the last outer step, ``inner`` epochs of batch 32 on freshly generated, re-normalised clouds. Loops by
CPC: 1 -> (10, 1), 10 -> (10, 2) (seg_inr.py:111-116).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import Field

from ddbench.backbones.tasks import SegmentationTask
from ddbench.errors import ConfigError
from ddbench.methods.base import DistillContext
from ddbench.methods.dd3d import REVISION, DD3DConfig, DD3DMethod, DD3DState, normalise
from ddbench.methods.gradient_matching import loops_for_ppc
from ddbench.methods.segmentation import SEG_LOOPS, real_seg_batches, seg_matching_loss, seg_warmup, train_inner_seg
from ddbench.references import Departure, Reference
from ddbench.synthetic.artifact import SyntheticSet
from ddbench.synthetic.generators import ConditionalSiren, generator_extras

#: ShapeNetPart's part proportions per category (Airplane .. Table), as the released code gives them
#: (seg_inr.py:40-55); the parts of each category in the order of their global ids
RELEASED_PROPORTIONS = (
    (0.45078503, 0.32637933, 0.12735743, 0.09547821), (0.06712292, 0.93287708), (0.73870295, 0.26129705),
    (0.05368124, 0.07117755, 0.16026644, 0.71487476), (0.34000747, 0.41298617, 0.21362449, 0.03338187),
    (0.59840199, 0.26434659, 0.13725142), (0.08631071, 0.19352421, 0.72016508), (0.50879376, 0.49120624),
    (0.16456666, 0.5967006, 0.01242581, 0.22630694), (0.53473962, 0.46526038),
    (0.04836895, 0.03854188, 0.23353102, 0.01477132, 0.00699115, 0.65779569), (0.06083784, 0.93916216),
    (0.6598784, 0.28620636, 0.05391524), (0.70912905, 0.18180339, 0.10906756), (0.1130593, 0.81221349, 0.07472721),
    (0.74166941, 0.23007729, 0.0282533),
)


class DD3DSegConfig(DD3DConfig):
    iterations: int = Field(400, ge=0, description="seg_inr.py:108")
    real_batch: int = Field(32, gt=0, description="seg_inr.py:109")
    train_points: int = Field(2048, gt=0, description="seg_inr.py:362 (--train_num_point 2048)")
    eval_points: int = Field(2048, gt=0, description="seg_inr.py:363 (--eval_num_point 2048)")
    w0: float | None = Field(400.0, gt=0, description="seg_inr.py:110 (w0_inr 400 for ShapeNetPart)")
    lr: float = Field(5e-4, gt=0, description="Adam lr of the generator (seg_inr.py:352)")
    weight_decay: float = Field(1e-5, ge=0, description="seg_inr.py:353")
    warmup_per_class: int = Field(8, gt=0, description="BN warm-up clouds per category (seg_inr.py:191)")
    lr_net: float = Field(1e-3, gt=0, description="SGD lr of the inner training (seg_inr.py:346)")
    net_schedule: Literal["step", "none"] = Field("none", description="none: the code's StepLR is never stepped")
    generator_schedule: Literal["step", "none"] = Field(
        "none", description="none: the generator's StepLR (seg_inr.py:161) is never stepped in the code")
    inner_batch: int = Field(32, gt=0, description="seg_inr.py:345 (--batch_train 32)")
    part_matching: bool = Field(True, description="alternate whole-shape and per-part matching (seg_inr.py:224-268)")
    proportions: Literal["auto", "released", "training_set"] = Field(
        "auto", description="part proportions of the noise intervals: released (the code's ShapeNetPart table), "
        "training_set (measured), auto: released on ShapeNetPart, else measured")


def measured_proportions(ctx: DistillContext) -> tuple[tuple[float, ...], ...]:
    """Per category, the mean over its training clouds of the fraction of points on each of its parts."""
    out = []
    for k, parts in enumerate(ctx.task.category_parts):
        labels = ctx.task.point_labels_of(ctx.train, ctx.train.indices_of_class(k))
        fractions = torch.stack([(labels == p).double().mean(dim=1) for p in parts], dim=1).mean(dim=0)
        out.append(tuple(float(f) for f in fractions / fractions.sum()))
    return tuple(out)


def part_proportions(cfg: DD3DSegConfig, ctx: DistillContext) -> tuple[tuple[tuple[float, ...], ...], str]:
    """(proportions per category, where they came from)."""
    released = cfg.proportions == "released" or (cfg.proportions == "auto" and ctx.dataset_family == "shapenetpart")
    if not released:
        return measured_proportions(ctx), "measured on the training set"
    if [len(p) for p in RELEASED_PROPORTIONS] != [len(p) for p in ctx.task.category_parts]:
        raise ConfigError("the released part proportions are ShapeNetPart's; use dd3d.proportions=training_set")
    return RELEASED_PROPORTIONS, "released code (seg_inr.py:40-55)"


def parts_from_noise(noise: torch.Tensor, labels: torch.Tensor, proportions, category_parts) -> torch.Tensor:
    """(M, N) part labels of noise values (M, N, 1) in [0, 1): category c's part j covers the j-th interval of
    consecutive lengths ``proportions[c]`` (a value on a boundary goes to the lower part; the code's
    ``(start, end]``)."""
    out = torch.empty(noise.shape[:2], dtype=torch.int64, device=noise.device)
    for c in labels.unique().tolist():
        sel = labels == c
        edges = torch.tensor(proportions[c], dtype=torch.float64).cumsum(0)[:-1].to(noise.device)
        j = torch.bucketize(noise[sel, :, 0].double(), edges, right=False)
        out[sel] = torch.tensor(category_parts[c], device=noise.device)[j]
    return out


@dataclass(kw_only=True)
class DD3DSegState(DD3DState):
    """DD3D's generator state plus the part proportions (a plain value: rebuilt by ``setup``)."""

    proportions: tuple = ()
    proportions_source: str = ""


def _src(lines: str) -> str:
    return f"github.com/bdy9527/DD3D@{REVISION[:7]} {lines}"


DEPARTURES = (
    Departure(
        what="proportions measured on the training set", reference=_src("seg_inr.py:40-55: ShapeNetPart's table"),
        ours="the mean fraction of each category's points on each part", reason="datasets other than ShapeNetPart",
        switch="dd3d.proportions=released", when={"proportions": "training_set"}),
    Departure(
        what="one more generator update",
        reference=_src("seg_inr.py:166-172: the loop runs Iteration + 1 times, saving every 10"),
        ours="400 updates, the synthetic set taken after the last", reason="the paper's 400 iterations",
        when={"iterations": 400}),
)


class DD3DSegMethod(DD3DMethod):
    """DD3D for part segmentation: the conditional SIREN generator, part labels from the noise intervals."""

    name = "dd3d"
    version = "1"
    display_name = "DD3D"
    Config = DD3DSegConfig
    tasks: ClassVar[tuple[str, ...]] = ("segmentation",)
    needs: ClassVar[frozenset[str]] = frozenset({"point_logits"})
    reference = Reference(
        paper="Bo and Wang, Point Cloud Dataset Distillation, ICML 2025, Table 2",
        repository="github.com/bdy9527/DD3D", revision=REVISION, notes="seg_inr.py with CINR.py and utils.py")
    departures = DEPARTURES

    def setup(self, ctx: DistillContext, points: torch.Tensor, labels: torch.Tensor) -> DD3DSegState:
        if not isinstance(ctx.task, SegmentationTask):
            raise ConfigError("this DD3D variant distils for segmentation; run it with --task segmentation")
        cfg = self.config
        outer, inner = loops_for_ppc(cfg, ctx.ppc, SEG_LOOPS, "dd3d")
        torch.manual_seed(ctx.seed)
        gen = ConditionalSiren(len(labels), cfg.hidden, cfg.layers, cfg.w0, cfg.w0_hidden).to(ctx.device)
        opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, cfg.iterations // 2), gamma=0.1)
        proportions, source = part_proportions(cfg, ctx)
        return DD3DSegState(generator=gen, labels=labels, optimisers=[opt], scheduler=sched, outer=outer,
                            inner=inner, w0=float(cfg.w0), w0_source="config (seg_inr.py:110)", loop_table="segmentation",
                            loop_table_source="seg_inr.py:111-116", proportions=proportions,
                            proportions_source=source)

    def generate(self, ctx: DistillContext, state: DD3DSegState, points: int, gen: torch.Generator):
        """(clouds (M, N, 3), part labels (M, N)) from fresh noise drawn from ``gen``."""
        n = len(state.labels)
        noise = torch.rand(n, points, 1, generator=gen).to(ctx.device)
        clouds = state.generator(torch.arange(n, device=ctx.device), noise)
        return clouds, parts_from_noise(noise, state.labels, state.proportions, ctx.task.category_parts)

    def end_iteration(self, state: DD3DSegState) -> None:
        if self.config.generator_schedule == "step":
            state.scheduler.step()

    def matching(self, ctx, state, net, clouds, parts, reals, outer: int) -> torch.Tensor:
        """Even outer steps: all points; odd ones: per part, every other part ignored (seg_inr.py:224-268)."""
        args = (net, ctx.task, clouds, state.labels, parts, reals)
        if not self.config.part_matching or outer % 2 == 0:
            return seg_matching_loss(*args)
        loss = None
        for k, category_parts in enumerate(ctx.task.category_parts):
            for part in category_parts:
                keep = lambda t, _k, part=part: torch.where(t == part, t, torch.full_like(t, -1))  # noqa: E731
                term = seg_matching_loss(*args, classes=[k], real_parts_mask=keep, syn_parts_mask=keep)
                loss = term if loss is None else loss + term
        return loss

    def iteration(self, ctx: DistillContext, state: DD3DSegState, gen: torch.Generator, it: int) -> float:
        cfg = self.config
        net = self.fresh_net(ctx, frozen=False)
        opt_net, sched_net = self.network_optimiser(net, state)
        total = 0.0
        for outer in range(state.outer):
            seg_warmup(net, ctx, cfg.warmup_per_class, gen)
            reals = real_seg_batches(ctx, cfg.real_batch, gen)
            clouds, parts = self.generate(ctx, state, cfg.train_points, gen)
            loss = self.matching(ctx, state, net, clouds, parts, reals, outer)
            self.optimiser_step(state, loss)
            total += float(loss.detach())
            self.check_finite(self.learnable_tensors(state), it, self.name, self.lr_hint)
            if outer < state.outer - 1:
                with torch.no_grad():
                    fresh, fresh_parts = self.generate(ctx, state, cfg.train_points, gen)
                for _ in range(state.inner):
                    train_inner_seg(net, ctx.task, normalise(fresh), state.labels, fresh_parts, 1, cfg.inner_batch,
                                    opt_net, gen)
                    if sched_net is not None:
                        sched_net.step()
        self.end_iteration(state)
        return total / state.outer

    def materialise(self, ctx: DistillContext, state: DD3DSegState) -> SyntheticSet:
        cfg = self.config
        with torch.no_grad():
            clouds, parts = self.generate(ctx, state, cfg.eval_points, torch.Generator().manual_seed(cfg.noise_seed))
        extras = generator_extras(state.generator)
        return SyntheticSet(
            clouds.cpu(), state.labels.cpu(), list(ctx.train.class_names),
            extras={**extras, "point_labels": parts.cpu()}, stored=list(extras),
            info={"task": "segmentation", "loss": "gradient matching, whole-shape and per-part alternating"
                  if cfg.part_matching else "gradient matching (per-point cross-entropy)",
                  "outer_loop": state.outer, "inner_loop": state.inner, "w0": state.w0,
                  "proportions": [list(p) for p in state.proportions], "proportions_source": state.proportions_source,
                  "train_points": cfg.train_points,
                  "generator": {"type": "conditional_siren", "config": state.generator.config,
                                "noise_seed": cfg.noise_seed, "materialised_points": cfg.eval_points}},
        )
