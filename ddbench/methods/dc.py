"""DC (gradient matching, Zhao et al. 2021) and PCC (DC initialised with herding), docs/specification.md#dc-and-pcc.

PCC's two readings. The PCC paper (ACM MM 2024) describes gradient matching started from the clouds nearest to the
class feature mean, which is how SADM's comparison and the specification define it: DC + herding, ddbench's
default. The only released PCC code, github.com/XLechter/PointCondensation at a2f42a9, runs the script its README
gives, ``main_DM_pointnet.py``, which is distribution matching (DM) from random real clouds: per class, the squared
distance between the mean max-pooled features of a real batch and of the class's synthetic clouds
(main_DM_pointnet.py:234-258), SGD lr 1e-4 and momentum 0.9 on the points (44, 171), 6000 iterations (43),
``--init real`` (README). ``pcc.matching = distribution`` selects that reading. The default follows the project
rule (the code that produced the compared numbers): the PCC numbers ddbench compares with are 3DDP's main table
(ddbench/reference/published_results.csv, ``ddp3d2026``); neither 3DDP's nor SADM's released code contains PCC, and
those numbers behave like gradient matching, not like DM: ModelNet40 55.3 and ShapeNet 50.9 at PPC 1, against
SADM's DC 52.0 and 49.8 and 3DDP's own DM 31.1 and 26.3. So no released code is known to have produced them, and
the description they match (gradient matching from the herding selection) is the default; the DM script is the
switch.

Per iteration a fresh network is drawn. For each outer step: the frozen-BN warm-up on 16 real clouds per class;
per class, the layer-wise cosine distance between the parameter gradients of the cross-entropy on a real batch
(detached) and on the class's synthetic clouds (kept in the graph: matching needs the gradient of a gradient,
i.e. a double backward through the network down to the coordinates); one SGD step on the coordinates; then,
except after the last outer step, ``inner_loop`` epochs of training the network on the synthetic set. The loop
is :class:`~ddbench.methods.gradient_matching.GradientMatchingMethod`'s, shared with DD3D; DC's synthetic clouds
are its learnable coordinates.

Outer/inner loops by PPC follow DC: 1 -> (1, 1), 10 -> (10, 50), 20 -> (20, 25), 30 -> (30, 20), 40 -> (40, 15),
50 -> (50, 10). DC defines no PPC 3; ddbench uses (3, 10): outer = PPC as in every DC setting, and 10 inner epochs,
between PPC 1 (1) and PPC 10 (50). Any other PPC needs ``outer_loop`` and ``inner_loop`` set explicitly.

The learning rate on the coordinates is 0.01, the low end of the reference range 0.01-0.1: on ModelNet10
(benchmarks/calibrate_step_sizes.py, training set only) one update at lr 0.1 moves points by 2.2e-2 on average
and up to 2.6 units (beyond the unit sphere) because PointNet routes each channel's gradient through a single
point; at 0.01 the mean step (2.2e-3) is closest to SADM's at its reference lr (1.0e-3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from ddbench.methods.base import DistillContext
from ddbench.methods.gradient_matching import (  # noqa: F401 - re-exported: DC's loss and loops, by their old home
    GradientMatchingMethod,
    GradientMatchingState,
    gradient_matching_loss,
    loops_for_ppc,
    train_inner,
)
from ddbench.methods.initialisation import InitName
from ddbench.methods.iterative import IterativeConfig
from ddbench.references import Departure, Reference
from ddbench.synthetic.artifact import SyntheticSet

PCC_REVISION = "a2f42a91d34a74e7a9058b7328f8c18481f240d7"

DC_LOOPS = {1: (1, 1), 3: (3, 10), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


class DCConfig(IterativeConfig):
    iterations: int = Field(1000, ge=0)
    init: InitName = "random"
    real_batch: int = Field(256, gt=0, description="real clouds per class per matching step")
    warmup_per_class: int = Field(16, gt=0, description="real clouds per class of the frozen-BN warm-up")
    lr_points: float = Field(
        0.01, gt=0, description="SGD lr on the coordinates (reference range 0.01-0.1; 0.01: see the module doc)"
    )
    momentum: float = Field(0.5, ge=0)
    lr_net: float = Field(0.01, gt=0, description="SGD lr of the inner training of the network")
    inner_batch: int = Field(256, gt=0, description="batch of the inner training on the synthetic set")
    outer_loop: int | None = Field(None, gt=0, description="outer steps per iteration (None: DC's table by PPC)")
    inner_loop: int | None = Field(None, ge=0, description="inner epochs per outer step (None: DC's table)")


def dc_loops(cfg: DCConfig, ppc: int) -> tuple[int, int]:
    return loops_for_ppc(cfg, ppc, DC_LOOPS, "dc")


@dataclass(kw_only=True)
class DCState(GradientMatchingState):
    """DC's learnable set: the coordinates of the synthetic clouds."""

    #: (K*PPC, N, 3) synthetic clouds, class-major
    points: torch.Tensor


def _pcc(lines: str) -> str:
    return f"github.com/XLechter/PointCondensation@{PCC_REVISION[:7]} {lines}"


DC_DEPARTURES = (
    Departure(
        what="inner lr of the network 0.01",
        reference=_pcc("dc_origin.py:25: --lr_net 0.001 (the point-cloud port of DC)"),
        ours="0.01 (DC's image code and docs/specification.md#dc-and-pcc)", reason="the specification's reference value",
        switch="dc.lr_net=0.001", when={"lr_net": 0.01}),
    Departure(
        what="initialised from random real clouds",
        reference=_pcc("dc_origin.py:28, 90: --init noise, N(0, 1) coordinates"),
        ours="random real clouds of the class", reason="the real initialisation of the DC and SADM papers' tables",
        switch="dc.init=noise", when={"init": "random"}),
    Departure(
        what="PPC 3 loops (3, 10)", reference=_pcc("utils.py:311-329: no loops for PPC 3 (the script exits)"),
        ours="(outer, inner) = (3, 10), ddbench's choice (docs/specification.md#values-left-open)",
        reason="the papers report PPC 3"),
)


class DCMethod(GradientMatchingMethod):
    """DC: match the per-class parameter gradients of real and synthetic clouds (layer-wise cosine)."""

    name = "dc"
    version = "1"
    display_name = "DC"
    Config = DCConfig
    lr_hint = "lr_points"
    task_variants = {"segmentation": "ddbench.methods.segmentation:DCSegMethod"}
    reference = Reference(
        paper="Zhao, Mopuri and Bilen, Dataset Condensation with Gradient Matching, ICLR 2021",
        repository="github.com/XLechter/PointCondensation", revision=PCC_REVISION,
        notes="DC's image code (github.com/VICO-UoE/DatasetCondensation) is not mirrored here; the point-cloud port "
              "read is PointCondensation's dc_origin.py with utils.py (match_loss, distance_wb, get_loops)")
    departures = DC_DEPARTURES

    def setup(self, ctx: DistillContext, points: torch.Tensor, labels: torch.Tensor) -> DCState:
        outer, inner = dc_loops(self.config, ctx.ppc)
        pts = points.clone().requires_grad_(True)
        opt = torch.optim.SGD([pts], lr=self.config.lr_points, momentum=self.config.momentum)
        return DCState(points=pts, labels=labels, optimisers=[opt], outer=outer, inner=inner)

    def synthetic_clouds(self, state: DCState, gen: torch.Generator) -> torch.Tensor:
        """The learnable coordinates themselves (no randomness: ``gen`` is not drawn from)."""
        return state.points

    def learnable_tensors(self, state: DCState) -> list[torch.Tensor]:
        return [state.points]

    def materialise(self, ctx: DistillContext, state: DCState) -> SyntheticSet:
        return SyntheticSet(
            state.points.detach().cpu(), state.labels.cpu(), list(ctx.train.class_names),
            info={"loss": "gradient matching (layer-wise cosine)", "outer_loop": state.outer,
                  "inner_loop": state.inner},
        )


#: the released script's values (main_DM_pointnet.py:43-46, 171; README: --init real), filled in under
#: ``matching = distribution`` for every option not given explicitly
PCC_RELEASED_DM = {"iterations": 6000, "init": "random", "lr_points": 1e-4, "momentum": 0.9, "real_batch": 256}


class PCCConfig(DCConfig):
    init: InitName = "herding"
    matching: Literal["gradient", "distribution"] = Field(
        "gradient", description="gradient: DC from the herding selection (the PCC paper, SADM's definition); "
        "distribution: the released script main_DM_pointnet.py (DM from random real clouds, lr 1e-4, momentum 0.9, "
        "6000 iterations; options given explicitly win)")

    @model_validator(mode="before")
    @classmethod
    def _released_script(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("matching") == "distribution":
            values = {**PCC_RELEASED_DM, **values}
        return values


PCC_DEPARTURES = (
    Departure(
        what="gradient matching from the herding selection, not the released DM script",
        reference=_pcc("README.md and main_DM_pointnet.py:171-289: distribution matching of mean max-pooled features "
                       "from random real clouds, SGD lr 1e-4 momentum 0.9, 6000 iterations"),
        ours="DC's gradient matching (dc.py) from the herding selection",
        reason="the PCC paper's description and SADM's definition; the compared numbers (3DDP's PCC row) behave like "
               "gradient matching (module doc)", switch="pcc.matching=distribution", when={"matching": "gradient"}),
    Departure(
        what="frozen-BN warm-up under the DM reading",
        reference=_pcc("main_DM_pointnet.py:221-258 with pointnet.py:11-64, 169-181: the network stays in train mode "
                       "(every forward normalised by its own batch) and its T-Net has no BatchNorm"),
        ours="ddbench's pointnet after the frozen-BN warm-up (its T-Net's BatchNorm cannot normalise one cloud in "
             "train mode)", reason="the PPC 1 synthetic batch is a single cloud", when={"matching": "distribution"}),
    Departure(
        what="seeded networks under the DM reading",
        reference=_pcc("utils.py:207-208: every network seeded from the clock"),
        ours="a network seed per iteration, derived from the cell's seed", reason="reproducible cells",
        when={"matching": "distribution"}),
)


class PCCMethod(DCMethod):
    """PCC: DC initialised with herding (nearest to the class feature mean), as SADM's comparison defines it;
    ``matching = distribution`` runs the released script's DM reading instead."""

    name = "pcc"
    version = "1"
    display_name = "PCC"
    Config = PCCConfig
    task_variants = {}
    reference = Reference(
        paper="Informative Point cloud Dataset Extraction for Classification via Gradient-based Points Moving, "
              "ACM MM 2024",
        repository="github.com/XLechter/PointCondensation", revision=PCC_REVISION,
        notes="the README's script is main_DM_pointnet.py (DM); dc_origin.py is the DC port; the compared numbers are "
              "3DDP's (ddp3d2026) main table")
    departures = PCC_DEPARTURES

    def iteration(self, ctx: DistillContext, state: DCState, gen: torch.Generator, it: int) -> float:
        if self.config.matching == "gradient":
            return super().iteration(ctx, state, gen, it)
        from ddbench.methods.dm import DMMethod

        cfg = self.config
        net = self.warmed_net(ctx, torch.cat(self.real_batches(ctx, cfg.warmup_per_class, gen)))
        loss = DMMethod.matching_loss(self, ctx, state, net, self.real_batches(ctx, cfg.real_batch, gen))
        self.optimiser_step(state, loss)
        self.check_finite([state.points], it, self.name, "lr_points")
        return float(loss.detach())

    def materialise(self, ctx: DistillContext, state: DCState) -> SyntheticSet:
        synth = super().materialise(ctx, state)
        if self.config.matching == "distribution":
            synth.info = {"loss": "distribution matching (mean global feature), PCC's released script"}
        return synth
