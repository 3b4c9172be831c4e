"""DD3D (ICML 2025): a conditional SIREN generator trained by gradient matching (docs/specification.md#dd3d).

The reference is the authors' released code, github.com/bdy9527/DD3D at a500ab4 (``gm_inr.py``, the classification
script, with ``CINR.py``, ``utils.py`` and ``provider.py``); file:line citations below are to that revision.

The synthetic set is a generator (``ddbench.synthetic.generators.ConditionalSiren``): one modulation code per
synthetic cloud, per-point noise that sets the resolution; first-layer frequency ``w0`` by dataset family (100 for
ModelNet, 50 for ScanObjectNN, 400 for part segmentation, 100 for any other; gm_inr.py:76, 107), later layers
``w0_hidden`` = 1 (``SirenNet``'s default, CINR.py:75) and SIREN's initialisation, output layer included. One
iteration (gm_inr.py:223-300):

1. a fresh network (``pointnet_in``, DD3D's); in the PCA setting behind the sign-fixing wrapper (``sign_fix``,
   gm_inr.py:226-227: ``InvariantWrapper``, the sign of the mean of sin(x_d) per axis, no parameters); its own SGD,
   lr ``lr_net`` 1e-3 (gm_inr.py:231, 325), x0.1 after half of its outer x inner epochs (gm_inr.py:232-234, stepped
   per inner epoch at 298);
2. for each outer step: per class, a real batch of 32 clouds reduced to ``train_points`` by one random subset of
   point indices and re-normalised to the unit sphere (gm_inr.py:249-252; with ``augment``, the paper's Table 7
   augmentation of the real batch, off in the code: gm_inr.py:256-259, 314); the generated clouds at the training
   resolution from fresh noise, not re-normalised (gm_inr.py:264-266); DC's layer-wise gradient distance
   (utils.py:84-112), summed over classes; one Adam step on the generator (lr 1e-3, weight decay 5e-4, x0.1 at half
   of the iterations; gm_inr.py:197-198, 279-281, 300);
3. except after the last outer step: a fresh sample of every synthetic cloud (new noise), re-normalised to the unit
   sphere, on which the network trains for ``inner`` epochs in batches of 256 (gm_inr.py:284-298).

Outer/inner loops by PPC (gm_inr.py:78-129): in the PCA setting (the code's ``--pca``: rotated clouds in their PCA
frame) 1 -> (5, 5), 10 -> (20, 10), 50 -> (40, 5); in the aligned setting ModelNet's 1 -> (10, 1), 10 -> (20, 1),
50 -> (40, 5) and ScanObjectNN's 1 -> (10, 1), 10 -> (20, 10), 50 -> (30, 5). ``loop_table = auto`` picks the PCA
table when the training set is served PCA-canonicalised (dataset ``canonical = pca``), else the aligned table of the
dataset's family (ModelNet's for every family but ScanObjectNN). DD3D gives no PPC 3: ddbench uses (10, 10) in the
PCA setting and, in the aligned one, half-way between the PPC 1 and PPC 10 entries, rounded down: (15, 1) for
ModelNet, (15, 5) for ScanObjectNN. The synthetic set's info records the table, ``w0``, ``w0_hidden`` and the sign
fix that were used and where each came from.

The artifact stores the generator and its clouds sampled at ``eval_points`` (1024); ``ddbench eval ARTIFACT
--points N`` samples it at any N. Where ddbench knowingly differs from the code: :attr:`DD3DMethod.departures`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field

from ddbench.backbones.utils import bn_warmup
from ddbench.data.transforms import jitter, perturb_rotation, random_scale
from ddbench.methods.base import DistillContext
from ddbench.methods.gradient_matching import (
    GradientMatchingMethod,
    GradientMatchingState,
    gradient_matching_loss,
    loops_for_ppc,
    train_inner,
)
from ddbench.methods.iterative import IterativeConfig
from ddbench.ops.canonical import CanonicalisedNet, Canonicaliser
from ddbench.references import Departure, Reference
from ddbench.synthetic.artifact import SyntheticSet
from ddbench.synthetic.generators import ConditionalSiren, generator_extras

REVISION = "a500ab4bf84dbbb49b73093d5137b7217caca3e5"
#: (outer, inner) by PPC in the PCA setting, ModelNet and ScanObjectNN alike (gm_inr.py:78-87, 109-118); PPC 3 ours
LOOPS_PCA = {1: (5, 5), 3: (10, 10), 10: (20, 10), 50: (40, 5)}
#: the aligned setting's tables (ModelNet gm_inr.py:89-98, ScanObjectNN 120-129); PPC 3 ours (see the module doc)
LOOPS_ALIGNED_MODELNET = {1: (10, 1), 3: (15, 1), 10: (20, 1), 50: (40, 5)}
LOOPS_ALIGNED_SCANOBJECTNN = {1: (10, 1), 3: (15, 5), 10: (20, 10), 50: (30, 5)}
LOOP_TABLES = {"pca": LOOPS_PCA, "aligned_modelnet": LOOPS_ALIGNED_MODELNET,
               "aligned_scanobjectnn": LOOPS_ALIGNED_SCANOBJECTNN}
#: the name DD3D v1 used for its only table (the PCA one)
DD3D_LOOPS = LOOPS_PCA
#: DD3D's first-layer frequency by dataset family (``Dataset.family``); any other family gets DEFAULT_W0
W0_BY_FAMILY = {"modelnet10": 100.0, "modelnet40": 100.0, "scanobjectnn": 50.0, "shapenetpart": 400.0}
DEFAULT_W0 = 100.0
#: provider.normalize_data (provider.py:4-20) divides by the largest radius plus this
NORMALISE_EPS = 1e-4


class DD3DConfig(IterativeConfig):
    iterations: int = Field(400, ge=0, description="400 for ModelNet, 200 for ScanObjectNN in DD3D")
    init: Literal["noise"] = Field("noise", description="the generator's SIREN initialisation (DD3D has no other)")
    real_batch: int = Field(32, gt=0, description="real clouds per class per matching step")
    train_points: int = Field(256, gt=0, description="resolution of distillation (real and generated clouds)")
    eval_points: int = Field(1024, gt=0, description="resolution the stored synthetic clouds are sampled at")
    hidden: int = Field(256, gt=0)
    layers: int = Field(2, ge=1)
    w0: float | None = Field(None, gt=0, description="first-layer frequency (None: by dataset, 100 for ModelNet)")
    w0_hidden: float = Field(1.0, gt=0, description="frequency of the later SIREN layers (the code's 1)")
    lr: float = Field(1e-3, gt=0, description="Adam lr of the generator")
    weight_decay: float = Field(5e-4, ge=0)
    warmup_per_class: int = Field(16, gt=0, description="real clouds per class of a BatchNorm network's warm-up "
                                  "(pointnet_in has none, and DD3D none)")
    lr_net: float = Field(1e-3, gt=0, description="SGD lr of the inner training of the network")
    net_schedule: Literal["step", "none"] = Field(
        "step", description="step: the inner lr x0.1 after half of the iteration's outer x inner epochs (the code)")
    inner_batch: int = Field(256, gt=0)
    outer_loop: int | None = Field(None, gt=0, description="None: DD3D's table by PPC (see loop_table)")
    inner_loop: int | None = Field(None, ge=0, description="None: DD3D's table by PPC (see loop_table)")
    loop_table: Literal["auto", "pca", "aligned"] = Field(
        "auto", description="auto: the PCA table when the training set is PCA-canonicalised, else the aligned one")
    sign_fix: Literal["auto", "sin", "learned", "none"] = Field(
        "auto", description="the distillation network's sign-fixing wrapper; auto: sin in the PCA setting, else "
        "none (the code); learned: the paper's learned sign encoder")
    w0_sign: float = Field(1.0, gt=0, description="frequency of the sin sign statistic (the code's --w0_sign)")
    augment: bool = Field(False, description="augment the real batches during distillation (the paper's Table 7; "
                          "the code's --aug, off by default)")
    noise_seed: int = Field(0, ge=0, description="seed of the noise the stored clouds are sampled with")


def dd3d_w0(cfg: DD3DConfig, family: str) -> tuple[float, str]:
    """(w0, where it came from): the config's where set, else :data:`W0_BY_FAMILY` by the dataset's family, else
    :data:`DEFAULT_W0`."""
    if cfg.w0 is not None:
        return float(cfg.w0), "config"
    if family in W0_BY_FAMILY:
        return W0_BY_FAMILY[family], f"family {family}"
    return DEFAULT_W0, f"default (family {family!r} has no reference value)"


def served_in_pca_frame(ctx: DistillContext) -> bool:
    """Whether the training set is served PCA-canonicalised (the dataset's ``canonical = pca``: DD3D's ``--pca``)."""
    return "pca" in str(ctx.train.meta.get("setting", ""))


def dd3d_loop_table(cfg: DD3DConfig, ctx: DistillContext) -> tuple[str, str]:
    """(name in :data:`LOOP_TABLES`, where the choice came from)."""
    if cfg.loop_table == "auto":
        pca = served_in_pca_frame(ctx)
        source = f"auto: the training set is {'PCA-canonicalised' if pca else 'not PCA-canonicalised'}"
    else:
        pca, source = cfg.loop_table == "pca", "config"
    if pca:
        return "pca", source
    family = "scanobjectnn" if ctx.dataset_family == "scanobjectnn" else "modelnet"
    return f"aligned_{family}", f"{source}; family {ctx.dataset_family!r}"


def dd3d_sign_fix(cfg: DD3DConfig, ctx: DistillContext) -> tuple[str, str]:
    """(sign fix of the distillation network's wrapper: sin, learned or none; where it came from)."""
    if cfg.sign_fix != "auto":
        return cfg.sign_fix, "config"
    if served_in_pca_frame(ctx):
        return "sin", "auto: the training set is PCA-canonicalised"
    return "none", "auto: the training set is not PCA-canonicalised"


def normalise(points: torch.Tensor) -> torch.Tensor:
    """``provider.normalize_data`` in torch: centre every cloud on its centroid, divide by its largest radius
    plus :data:`NORMALISE_EPS`."""
    centred = points - points.mean(dim=1, keepdim=True)
    return centred / (centred.norm(dim=-1).amax(dim=1)[:, None, None] + NORMALISE_EPS)


def random_point_subset(batch: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """The code's reduction of a real batch (gm_inr.py:249-254): one random subset of ``n`` point indices for the
    whole batch, then :func:`normalise`; unchanged when the clouds have no more than ``n`` points."""
    if n >= batch.shape[1]:
        return batch
    idx = torch.randperm(batch.shape[1], generator=gen)[:n].to(batch.device)
    return normalise(batch[:, idx])


def augment_real(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The code's ``--aug`` (gm_inr.py:256-259): per cloud a scale U[0.8, 1.25], per coordinate a jitter N(0, 0.01)
    clipped at 0.05, per cloud a rotation by angles N(0, 0.06) clipped at 0.18 rad about each axis."""
    batch = random_scale(batch, 0.8, 1.25, generator=gen)
    batch = jitter(batch, 0.01, 0.05, generator=gen)
    return perturb_rotation(batch, 0.06, 0.18, generator=gen)


def has_batchnorm(net: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())


@dataclass(kw_only=True)
class DD3DState(GradientMatchingState):
    """DD3D's learnable set: the generator (per-cloud codes included), its lr schedule and the records of what was
    resolved at run time (plain values: rebuilt by ``setup``, not checkpointed)."""

    generator: ConditionalSiren
    scheduler: torch.optim.lr_scheduler.LRScheduler
    #: the generator's first-layer frequency and where it came from (see :func:`dd3d_w0`)
    w0: float
    w0_source: str
    #: the loop table used (a key of :data:`LOOP_TABLES`) and why
    loop_table: str = "pca"
    loop_table_source: str = ""
    #: the distillation network's sign fix (sin, learned, none) and why
    sign_fix: str = "none"
    sign_fix_source: str = ""

    legacy_keys = {**GradientMatchingState.legacy_keys, "sched": "scheduler"}


def _src(lines: str) -> str:
    return f"github.com/bdy9527/DD3D@{REVISION[:7]} {lines}"


DEPARTURES = (
    Departure(
        what="real batches augmented during distillation",
        reference=_src("gm_inr.py:256-259, 314: --aug (scale, jitter, small rotation of the real batch) is off by "
                       "default"),
        ours="scale U[0.8, 1.25], jitter N(0, 0.01) clipped 0.05, rotation N(0, 0.06) clipped 0.18 per axis on "
             "every real matching batch", reason="the paper's Table 7 reading (distillation with augmentation)",
        switch="dd3d.augment=false", when={"augment": True}),
    Departure(
        what="learned sign encoder in the distillation network's wrapper",
        reference=_src("CINR.py:234-235, 241-250 (learned encoder commented out), 252-253: sign of the mean of "
                       "sin(w0 x_d), no parameters"),
        ours="ddbench's reading of the paper's learned SIREN sign encoder (ddbench.ops.canonical.LearnedSignFix), "
             "trained with the network", reason="the paper's description", switch="dd3d.sign_fix=auto",
        when={"sign_fix": "learned"}),
    Departure(
        what="no sign-fixing wrapper on the distillation network",
        reference=_src("gm_inr.py:226-227: InvariantWrapper around the network whenever --pca"),
        ours="the plain network (in the PCA setting the generated clouds' axis signs are then left free)",
        reason="ablation", switch="dd3d.sign_fix=auto", when={"sign_fix": "none"}),
    Departure(
        what="inner network lr constant",
        reference=_src("gm_inr.py:232-234, 298: StepLR x0.1 after (outer x inner) // 2 inner epochs"),
        ours="lr_net for every inner epoch (ddbench's DD3D v1)", reason="ablation",
        switch="dd3d.net_schedule=step", when={"net_schedule": "none"}),
    Departure(
        what="distillation at 256 points",
        reference=_src("gm_inr.py:337: --train_num_point defaults to 1024 (the repository gives no command lines)"),
        ours="train_points 256 (generated and real clouds)",
        reason="the paper trains at low resolution and evaluates at 1024 (its Table 5); 4x cheaper",
        switch="dd3d.train_points=1024", when={"train_points": 256}),
    Departure(
        what="one more generator update",
        reference=_src("gm_inr.py:203-221: the loop runs Iteration + 1 times and evaluates and saves the generator "
                       "before the update of iteration it, at (it + 1) % 50 == 0, so its last one has 399 updates"),
        ours="400 updates, the synthetic set taken after the last", reason="the specification's 400 iterations",
        switch="dd3d.iterations=399", when={"iterations": 400}),
)


class DD3DMethod(GradientMatchingMethod):
    """DD3D: a conditional SIREN point generator (per-cloud codes) trained by gradient matching; any resolution."""

    name = "dd3d"
    version = "2"
    display_name = "DD3D"
    Config = DD3DConfig
    default_backbone = "pointnet_in"
    lr_hint = "lr"
    task_variants = {"segmentation": "ddbench.methods.dd3d_seg:DD3DSegMethod"}
    reference = Reference(
        paper="Bo and Wang, Point Cloud Dataset Distillation, ICML 2025 (PMLR 267:4588-4601)",
        repository="github.com/bdy9527/DD3D", revision=REVISION,
        notes="classification: gm_inr.py with CINR.py, utils.py, provider.py (accu_gm_inr.py is its multi-GPU "
              "variant for MVP)")
    departures = DEPARTURES

    @classmethod
    def storage_floats(cls, config, ppc, num_classes, points, family=""):
        """The generator's parameters, per-cloud codes included; independent of the resolution and the family."""
        module = ConditionalSiren(ppc * num_classes, config.hidden, config.layers)
        return sum(p.numel() for p in module.parameters())

    def setup(self, ctx: DistillContext, points: torch.Tensor, labels: torch.Tensor) -> DD3DState:
        cfg = self.config
        table, table_source = dd3d_loop_table(cfg, ctx)
        outer, inner = loops_for_ppc(cfg, ctx.ppc, LOOP_TABLES[table], "dd3d")
        w0, w0_source = dd3d_w0(cfg, ctx.dataset_family)
        sign, sign_source = dd3d_sign_fix(cfg, ctx)
        torch.manual_seed(ctx.seed)
        gen = ConditionalSiren(len(labels), cfg.hidden, cfg.layers, w0, cfg.w0_hidden).to(ctx.device)
        opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, cfg.iterations // 2), gamma=0.1)
        return DD3DState(generator=gen, labels=labels, optimisers=[opt], scheduler=sched, outer=outer, inner=inner,
                         w0=w0, w0_source=w0_source, loop_table=table, loop_table_source=table_source,
                         sign_fix=sign, sign_fix_source=sign_source)

    def real_batches(self, ctx: DistillContext, per_class: int, gen: torch.Generator) -> list[torch.Tensor]:
        """Real batches reduced to the training resolution by a random subset of points, re-normalised."""
        full = super().real_batches(ctx, per_class, gen)
        return [random_point_subset(b, self.config.train_points, gen) for b in full]

    def synthetic_clouds(self, state: DD3DState, gen: torch.Generator) -> torch.Tensor:
        """Clouds freshly generated at the training resolution, their per-point noise drawn from ``gen``."""
        return state.generator.sample(self.config.train_points, gen)

    def learnable_tensors(self, state: DD3DState) -> list[torch.Tensor]:
        return list(state.generator.parameters())

    def end_iteration(self, state: DD3DState) -> None:
        state.scheduler.step()

    # -- the iteration (gm_inr.py:223-300) ------------------------------------------------------------------------
    def distillation_net(self, ctx: DistillContext, state: DD3DState) -> torch.nn.Module:
        """A fresh network, behind the sign-fixing wrapper unless the state's sign fix is ``none``: the clouds it
        sees are taken as already in their frame (the PCA setting serves real clouds so), only signs are fixed."""
        net = self.fresh_net(ctx, frozen=False)
        if state.sign_fix == "none":
            return net
        wrapper = Canonicaliser(state.sign_fix, frame="given", w0=self.config.w0_sign)
        return CanonicalisedNet(net, wrapper).to(ctx.device)

    def network_optimiser(self, net: torch.nn.Module, state: DD3DState):
        """(SGD at ``lr_net``, its StepLR x0.1 after half of the outer x inner epochs or None)."""
        opt = torch.optim.SGD(net.parameters(), lr=self.config.lr_net)
        if self.config.net_schedule == "none":
            return opt, None
        step = max(1, state.outer * state.inner // 2)
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=0.1)

    def train_network(self, net, state: DD3DState, opt, sched, gen: torch.Generator) -> None:
        """``inner`` epochs on a fresh sample of the synthetic set (new noise), re-normalised; the schedule steps
        once per epoch."""
        with torch.no_grad():
            clouds = normalise(self.synthetic_clouds(state, gen))
        for _ in range(state.inner):
            train_inner(net, clouds, state.labels, 1, self.config.inner_batch, opt, gen)
            if sched is not None:
                sched.step()

    def iteration(self, ctx: DistillContext, state: DD3DState, gen: torch.Generator, it: int) -> float:
        cfg = self.config
        net = self.distillation_net(ctx, state)
        opt_net, sched_net = self.network_optimiser(net, state)
        warm_up = has_batchnorm(net)  # DD3D's pointnet_in has InstanceNorm only, and the code no warm-up
        total = 0.0
        for outer in range(state.outer):
            if warm_up:
                bn_warmup(net, torch.cat(self.real_batches(ctx, cfg.warmup_per_class, gen)))
            else:
                net.train()
            reals = self.real_batches(ctx, cfg.real_batch, gen)
            if cfg.augment:
                reals = [augment_real(b, gen) for b in reals]
            clouds = self.synthetic_clouds(state, gen)
            loss = gradient_matching_loss(net, clouds, state.labels, reals)
            self.optimiser_step(state, loss)
            total += float(loss.detach())
            self.check_finite(self.learnable_tensors(state), it, self.name, self.lr_hint)
            if outer < state.outer - 1:
                self.train_network(net, state, opt_net, sched_net, gen)
        self.end_iteration(state)
        return total / state.outer

    def materialise(self, ctx: DistillContext, state: DD3DState) -> SyntheticSet:
        cfg = self.config
        module = state.generator
        with torch.no_grad():
            clouds = module.sample(cfg.eval_points, torch.Generator().manual_seed(cfg.noise_seed))
        extras = generator_extras(module)
        return SyntheticSet(
            clouds.cpu(), state.labels.cpu(), list(ctx.train.class_names), extras=extras, stored=list(extras),
            info={"loss": "gradient matching (layer-wise cosine)", "outer_loop": state.outer,
                  "inner_loop": state.inner, "loop_table": state.loop_table,
                  "loop_table_source": state.loop_table_source, "train_points": cfg.train_points, "w0": state.w0,
                  "w0_source": state.w0_source, "w0_hidden": cfg.w0_hidden, "sign_fix": state.sign_fix,
                  "sign_fix_source": state.sign_fix_source, "augment": cfg.augment,
                  "net_optimiser": {"type": "sgd", "lr": cfg.lr_net, "schedule": cfg.net_schedule},
                  "generator": {"type": "conditional_siren", "config": module.config, "noise_seed": cfg.noise_seed,
                                "materialised_points": cfg.eval_points}},
        )
