"""DD3D (ICML 2025): a conditional SIREN generator trained by gradient matching (docs/specification.md#dd3d).

The synthetic set is a generator (``ddbench.synthetic.generators.ConditionalSiren``): one modulation code per
synthetic cloud, per-point noise that sets the resolution. Each iteration draws a fresh network (``pointnet_in``,
DD3D's); for each outer step, the generator produces the synthetic clouds at the training resolution (256 points by
default, fresh noise), DC's layer-wise gradient distance to real batches of 32 clouds per class (reduced to the same
resolution by FPS) is minimised with Adam on the generator's parameters (lr 1e-3, weight decay 5e-4, x0.1 at half
of the iterations), and between outer steps the network trains on the generated set for ``inner_loop`` epochs.
The artifact stores the generator and its clouds sampled at ``eval_points`` (1024, DD3D's Table 5 protocol:
train at low resolution, evaluate at 1024); ``ddbench eval ARTIFACT --points N`` samples it at any N.

Outer/inner loops by PPC follow DD3D: 1 -> (5, 5), 10 -> (20, 10), 50 -> (40, 5); DD3D gives no PPC 3: ddbench
uses (10, 10), between its PPC 1 and PPC 10 settings. The first-layer frequency w0 follows the dataset's declared
family (``Dataset.family``: 100 for ModelNet, 50 for ScanObjectNN, 400 for part segmentation, 100 for any other)
unless set; the synthetic set's info records the value and where it came from. The generator starts from its SIREN
initialisation: DD3D has no real-data initialisation, so ``init`` only takes ``noise``. The outer/inner loop is
:class:`~ddbench.methods.gradient_matching.GradientMatchingMethod`'s, shared with DC; DD3D's synthetic clouds are
generated with fresh noise at every outer step, and its lr schedule steps once per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field

from ddbench.methods.base import DistillContext
from ddbench.methods.gradient_matching import GradientMatchingMethod, GradientMatchingState, loops_for_ppc
from ddbench.methods.iterative import IterativeConfig
from ddbench.ops.backends import farthest_point_sample
from ddbench.ops.sampling import gather_points
from ddbench.synthetic.artifact import SyntheticSet
from ddbench.synthetic.generators import ConditionalSiren, generator_extras

DD3D_LOOPS = {1: (5, 5), 3: (10, 10), 10: (20, 10), 50: (40, 5)}
#: DD3D's first-layer frequency by dataset family (``Dataset.family``); any other family gets DEFAULT_W0
W0_BY_FAMILY = {"modelnet10": 100.0, "modelnet40": 100.0, "scanobjectnn": 50.0, "shapenetpart": 400.0}
DEFAULT_W0 = 100.0


class DD3DConfig(IterativeConfig):
    iterations: int = Field(400, ge=0, description="400 for ModelNet, 200 for ScanObjectNN in DD3D")
    init: Literal["noise"] = Field("noise", description="the generator's SIREN initialisation (DD3D has no other)")
    real_batch: int = Field(32, gt=0, description="real clouds per class per matching step")
    train_points: int = Field(256, gt=0, description="resolution of distillation (real and generated clouds)")
    eval_points: int = Field(1024, gt=0, description="resolution the stored synthetic clouds are sampled at")
    hidden: int = Field(256, gt=0)
    layers: int = Field(2, ge=1)
    w0: float | None = Field(None, gt=0, description="first-layer frequency (None: by dataset, 100 for ModelNet)")
    w0_hidden: float = Field(30.0, gt=0)
    lr: float = Field(1e-3, gt=0, description="Adam lr of the generator")
    weight_decay: float = Field(5e-4, ge=0)
    warmup_per_class: int = Field(16, gt=0, description="real clouds per class of the frozen-BN warm-up")
    lr_net: float = Field(0.01, gt=0, description="SGD lr of the inner training of the network")
    inner_batch: int = Field(256, gt=0)
    outer_loop: int | None = Field(None, gt=0, description="None: DD3D's table by PPC")
    inner_loop: int | None = Field(None, ge=0, description="None: DD3D's table by PPC")
    noise_seed: int = Field(0, ge=0, description="seed of the noise the stored clouds are sampled with")


def dd3d_w0(cfg: DD3DConfig, family: str) -> tuple[float, str]:
    """(w0, where it came from): the config's where set, else :data:`W0_BY_FAMILY` by the dataset's family, else
    :data:`DEFAULT_W0`."""
    if cfg.w0 is not None:
        return float(cfg.w0), "config"
    if family in W0_BY_FAMILY:
        return W0_BY_FAMILY[family], f"family {family}"
    return DEFAULT_W0, f"default (family {family!r} has no reference value)"


@dataclass(kw_only=True)
class DD3DState(GradientMatchingState):
    """DD3D's learnable set: the generator (per-cloud codes included), its lr schedule and its w0 record."""

    generator: ConditionalSiren
    scheduler: torch.optim.lr_scheduler.LRScheduler
    #: the generator's first-layer frequency and where it came from (see :func:`dd3d_w0`)
    w0: float
    w0_source: str

    legacy_keys = {**GradientMatchingState.legacy_keys, "sched": "scheduler"}


class DD3DMethod(GradientMatchingMethod):
    """DD3D: a conditional SIREN point generator (per-cloud codes) trained by gradient matching; any resolution."""

    name = "dd3d"
    version = "1"
    display_name = "DD3D"
    Config = DD3DConfig
    default_backbone = "pointnet_in"
    lr_hint = "lr"

    @classmethod
    def storage_floats(cls, config, ppc, num_classes, points, family=""):
        """The generator's parameters, per-cloud codes included; independent of the resolution and the family."""
        module = ConditionalSiren(ppc * num_classes, config.hidden, config.layers)
        return sum(p.numel() for p in module.parameters())

    def setup(self, ctx: DistillContext, points: torch.Tensor, labels: torch.Tensor) -> DD3DState:
        cfg = self.config
        outer, inner = loops_for_ppc(self.config, ctx.ppc, DD3D_LOOPS, "dd3d")
        w0, w0_source = dd3d_w0(cfg, ctx.dataset_family)
        torch.manual_seed(ctx.seed)
        gen = ConditionalSiren(len(labels), cfg.hidden, cfg.layers, w0, cfg.w0_hidden).to(ctx.device)
        opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, cfg.iterations // 2), gamma=0.1)
        return DD3DState(generator=gen, labels=labels, optimisers=[opt], scheduler=sched, outer=outer, inner=inner,
                         w0=w0, w0_source=w0_source)

    def real_batches(self, ctx: DistillContext, per_class: int, gen: torch.Generator) -> list[torch.Tensor]:
        """Real batches reduced to the training resolution by FPS (as the generated clouds are)."""
        full = super().real_batches(ctx, per_class, gen)
        n = min(self.config.train_points, ctx.train.num_points)
        return [gather_points(b, farthest_point_sample(b, n)) for b in full]

    def synthetic_clouds(self, state: DD3DState, gen: torch.Generator) -> torch.Tensor:
        """Clouds freshly generated at the training resolution, their per-point noise drawn from ``gen``."""
        return state.generator.sample(self.config.train_points, gen)

    def learnable_tensors(self, state: DD3DState) -> list[torch.Tensor]:
        return list(state.generator.parameters())

    def end_iteration(self, state: DD3DState) -> None:
        state.scheduler.step()

    def materialise(self, ctx: DistillContext, state: DD3DState) -> SyntheticSet:
        cfg = self.config
        module = state.generator
        with torch.no_grad():
            clouds = module.sample(cfg.eval_points, torch.Generator().manual_seed(cfg.noise_seed))
        extras = generator_extras(module)
        return SyntheticSet(
            clouds.cpu(), state.labels.cpu(), list(ctx.train.class_names), extras=extras, stored=list(extras),
            info={"loss": "gradient matching (layer-wise cosine)", "outer_loop": state.outer,
                  "inner_loop": state.inner, "train_points": cfg.train_points, "w0": state.w0,
                  "w0_source": state.w0_source,
                  "generator": {"type": "conditional_siren", "config": module.config, "noise_seed": cfg.noise_seed,
                                "materialised_points": cfg.eval_points}},
        )
