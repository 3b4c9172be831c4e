"""The loop shared by the optimisation-based methods (DC, PCC, DM, SADM, DD3D, 3DDP).

A subclass declares its learnable state as a dataclass derived from :class:`IterativeState` and implements the
interface of :class:`IterativeMethod`: :meth:`~IterativeMethod.setup` (build the state from the initial clouds),
:meth:`~IterativeMethod.iteration` (one distillation iteration; returns the loss),
:meth:`~IterativeMethod.materialise` (the synthetic set of a state) and :meth:`~IterativeMethod.matching_loss`
(the method's loss under a given network, summed over a subset of classes). The base class does the rest the same
way for every method: initialisation through the coreset method the context carries, seeding (iteration i draws
its fresh network from a seed derived from the cell's seed and i), real-batch sampling, NaN/inf checks, a loss
curve, per-iteration timing, progress, the snapshots the runner evaluates at intermediate iterations, and
checkpoints that resume an interrupted distillation with the same result.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import Field

from ddbench.backbones.base import Backbone
from ddbench.backbones.utils import fold_frozen_batchnorm
from ddbench.config import ComponentConfig
from ddbench.errors import TrainingDivergedError
from ddbench.methods.base import DistillContext, Method
from ddbench.methods.initialisation import InitName, initial_clouds
from ddbench.synthetic.artifact import SyntheticSet


class IterativeConfig(ComponentConfig):
    """Options every optimisation-based method has. Subclasses set the reference defaults."""

    iterations: int = Field(1000, ge=0, description="distillation iterations")
    init: InitName = Field("random", description="initial synthetic set: noise, random, herding or kcenter")
    init_config: dict[str, Any] = Field(default_factory=dict, description="config of the coreset used as init")
    real_batch: int = Field(8, gt=0, description="real clouds per class per iteration")
    log_every: int = Field(10, gt=0, description="iterations between two points of the recorded loss curve")


def iteration_seed(seed: int, iteration: int) -> int:
    """Seed of iteration ``iteration``'s fresh network, derived from the cell's seed."""
    return (seed * 1_000_003 + iteration) % (2**63 - 1)


#: synthetic points whose activations are kept for backward at once: 16 clouds of 1024 points, about 45 MB of
#: PointNet activations per 1024-point cloud, so well under 1 GB per chunk
POINTS_PER_CHUNK = 16 * 1024


def class_chunks(num_classes: int, clouds_per_class: int, points: int, budget: int = POINTS_PER_CHUNK) -> list[range]:
    """Consecutive class ranges whose synthetic clouds hold at most ``budget`` points in all (at least one class).

    Methods whose loss is a sum over classes forward and backward one range at a time and step once: the same
    update as one pass over every class, with memory bounded at any number of classes."""
    per = max(1, budget // max(1, clouds_per_class * points))
    return [range(lo, min(lo + per, num_classes)) for lo in range(0, num_classes, per)]


def rows_by_class(rows: torch.Tensor, labels: torch.Tensor, classes: Sequence[int]) -> list[torch.Tensor]:
    """``[rows[labels == k] for k in classes]``. When the rows of each class form one run, in ``classes``
    order (the methods lay their synthetic clouds out so), the pieces are views of ``rows``: their backward
    pass writes one gradient of ``rows``, where a boolean index per class writes a zero-filled gradient of all
    of ``rows`` per class and adds them up (docs/methods.md#one-gradient-per-synthetic-batch)."""
    counts = [int((labels == k).sum()) for k in classes]
    grouped = torch.repeat_interleave(torch.as_tensor(list(classes), device=labels.device),
                                      torch.as_tensor(counts, device=labels.device))
    if len(labels) == len(rows) and torch.equal(labels, grouped):
        return list(rows.split(counts))
    return [rows[labels == k] for k in classes]


@dataclass(kw_only=True)
class IterativeState:
    """The learnable state of an iterative method; each method derives a dataclass with its named fields.

    Checkpoints keep every field that is a tensor or has a ``state_dict()`` (optimisers, modules, lr schedulers),
    also lists of them (:meth:`IterativeMethod._state_payload`), under the field's name; plain values (loop counts,
    records) are rebuilt by :meth:`IterativeMethod.setup`."""

    #: every optimiser of the state, stepped together once per update (possibly none, e.g. every part frozen)
    optimisers: list[torch.optim.Optimizer]

    #: checkpoint keys of the string-keyed state dicts ddbench used before these dataclasses, mapped to the field
    #: that holds that value now, so that a checkpoint written then still resumes (a single value restores into a
    #: list field as its only element)
    legacy_keys: ClassVar[dict[str, str]] = {"opt": "optimisers", "opts": "optimisers"}

    def field_for(self, key: str) -> str:
        """The field a checkpoint key restores into (its own name, or a legacy key's field)."""
        name = self.legacy_keys.get(key, key)
        if name not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(f"checkpoint holds {key!r}, which {type(self).__name__} has no field for")
        return name


@dataclass(kw_only=True)
class PointsState(IterativeState):
    """A learnable set of clouds (DM; the base of SADM's state)."""

    #: (K*PPC, N, 3) synthetic clouds, class-major
    points: torch.Tensor
    #: (K*PPC,) their labels
    labels: torch.Tensor


class IterativeMethod(Method):
    """Base class of methods that optimise a synthetic set for a number of iterations."""

    uses_backbone: ClassVar[bool] = True
    iterations_field: ClassVar[str | None] = "iterations"
    Config: ClassVar[type[IterativeConfig]] = IterativeConfig

    @classmethod
    def initialiser_request(cls, config: IterativeConfig) -> tuple[str, dict[str, Any]] | None:
        """The ``init`` coreset method and its config (None for ``noise``, which needs no method)."""
        if config.init == "noise":
            return None
        return config.init, dict(config.init_config)

    # -- the interface: to implement ---------------------------------------------------------------------------
    def initialise(self, ctx: DistillContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """(initial clouds, labels, record); by default the ``init`` coreset rule at the cell's PPC, through
        ``ctx.initialiser``."""
        return initial_clouds(ctx, self.config.init)

    def setup(self, ctx: DistillContext, points: torch.Tensor, labels: torch.Tensor) -> IterativeState:
        """The learnable state built from the initial clouds ``points`` (K*PPC, N, 3) and their ``labels``, on
        ``ctx.device``: its tensors, modules, optimisers and schedulers. Called before a checkpoint is restored
        into it, so it must build the same structure every time."""
        raise NotImplementedError

    def iteration(self, ctx: DistillContext, state: IterativeState, gen: torch.Generator, it: int) -> float:
        """One distillation iteration ``it`` (1-based): draw real batches from ``gen`` (the distillation's only
        generator of real-data draws; ``torch``'s global seed is set per iteration for fresh networks), update
        ``state`` in place, and return the iteration's loss."""
        raise NotImplementedError

    def materialise(self, ctx: DistillContext, state: IterativeState) -> SyntheticSet:
        """The synthetic set of ``state`` (detached, on the CPU), with what it stores and an ``info`` record."""
        raise NotImplementedError

    def matching_loss(self, ctx: DistillContext, state: IterativeState, net: Backbone, reals: Sequence[Any],
                      classes: Sequence[int] | None = None) -> torch.Tensor:
        """The method's loss under ``net`` for the real batches ``reals`` (``reals[k]``: class k's batch, clouds
        (B, N, 3) or a method's own form of them), summed over ``classes`` (default: every class). Differentiable
        in the state's learnable tensors; the sum over a partition of the classes equals the sum over all of them
        (to rounding). Used by the iterations (the gradient-matching loop excepted: it matches the clouds it then
        trains the network on) and to measure the loss under held-out networks."""
        raise NotImplementedError

    # -- shared helpers ---------------------------------------------------------------------------------------
    def fresh_net(self, ctx: DistillContext, frozen: bool = True) -> Backbone:
        net = ctx.build_backbone().to(ctx.device)
        if frozen:
            for p in net.parameters():
                p.requires_grad_(False)
        return net

    def real_batches(self, ctx: DistillContext, per_class: int, gen: torch.Generator) -> list[torch.Tensor]:
        """One batch of ``per_class`` real clouds for every class, on the device."""
        return [ctx.train.class_batch(k, per_class, gen).to(ctx.device) for k in range(ctx.num_classes)]

    def real_batch_indices(self, ctx: DistillContext, per_class: int, gen: torch.Generator) -> list[torch.Tensor]:
        """The training-set indices of :meth:`real_batches` (the same draw for the same generator state), for
        methods that cache per-cloud work."""
        return [ctx.train.class_batch_indices(k, per_class, gen) for k in range(ctx.num_classes)]

    def warmed_net(self, ctx: DistillContext, warmup: torch.Tensor, frozen: bool = True) -> Backbone:
        """A fresh network after the frozen-BN warm-up on ``warmup`` (docs/specification.md#frozen-bn-warm-up)."""
        net = self.fresh_net(ctx, frozen)
        net.warm_up_batchnorm(warmup, needs=self.needs)
        if frozen:
            fold_frozen_batchnorm(net)  # same outputs, one memory pass less per BN in every forward/backward
        return net

    @staticmethod
    def optimiser_step(state: IterativeState, loss: torch.Tensor) -> None:
        """Zero the gradients of every optimiser of ``state``, backpropagate ``loss``, step every optimiser."""
        for opt in state.optimisers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in state.optimisers:
            opt.step()

    def step_by_class_chunks(self, ctx: DistillContext, state: IterativeState, net: Backbone, reals: Sequence[Any],
                             clouds_per_class: int, points: int) -> float:
        """One optimiser step on a loss that is a sum over classes (``matching_loss(..., classes)``): forward and
        backward a chunk of classes at a time (:func:`class_chunks`), summing gradients, then step once. The
        same update as one pass over every class, with memory bounded at any number of classes. Returns the
        loss."""
        opts = state.optimisers
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        total = 0.0
        for classes in class_chunks(ctx.num_classes, clouds_per_class, points):
            loss = self.matching_loss(ctx, state, net, reals, classes)
            if opts:
                loss.backward()
            total += float(loss.detach())
        for opt in opts:
            opt.step()
        return total

    @staticmethod
    def check_finite(state_tensors: list[torch.Tensor], it: int, method: str, lr_hint: str) -> None:
        for t in state_tensors:
            if not torch.isfinite(t).all():
                raise TrainingDivergedError(
                    f"{method}: the synthetic set became NaN/inf at iteration {it}; lower {lr_hint}"
                )

    # -- checkpoints ------------------------------------------------------------------------------------------
    @staticmethod
    def _state_payload(state: IterativeState) -> dict[str, Any]:
        """What a checkpoint keeps of ``state``, by field name: tensors (copied), and the ``state_dict()`` of
        anything that has one (optimisers, modules, lr schedulers), also inside non-empty lists. Plain values are
        rebuilt by ``setup``."""

        def save(value):
            if isinstance(value, torch.Tensor):
                return value.detach().cpu().clone()
            if hasattr(value, "state_dict") and hasattr(value, "load_state_dict"):
                return value.state_dict()
            return None

        out: dict[str, Any] = {}
        for f in dataclasses.fields(state):
            value = getattr(state, f.name)
            if isinstance(value, list) and value:
                saved = [save(v) for v in value]
                if all(v is not None for v in saved):
                    out[f.name] = saved
            elif (saved := save(value)) is not None:
                out[f.name] = saved
        return out

    @staticmethod
    def _restore_state(state: IterativeState, saved: dict[str, Any]) -> None:
        """Load a checkpoint's ``saved`` state into ``state`` (as built by ``setup``), in place. Keys of the
        string-keyed dicts of earlier versions restore through :attr:`IterativeState.legacy_keys`."""

        def restore(target, value):
            if isinstance(target, torch.Tensor):
                with torch.no_grad():
                    target.copy_(value)
            else:
                target.load_state_dict(value)

        for key, value in saved.items():
            target = getattr(state, state.field_for(key))
            if isinstance(target, list):
                values = value if isinstance(value, list) else [value]
                for t, v in zip(target, values, strict=True):
                    restore(t, v)
            else:
                restore(target, value)

    def _save_checkpoint(self, ctx, state, gen, it, curve, init_record, elapsed) -> None:
        from ddbench.io import atomic_path

        snaps = {i: {"points": s.points, "labels": s.labels, "extras": s.extras, "stored": s.stored, "info": s.info}
                 for i, s in ctx.snapshots.items()}
        payload = {"data": ctx.data_fingerprint, "iteration": it, "state": self._state_payload(state),
                   "generator": gen.get_state(), "curve": curve, "init_record": init_record, "snapshots": snaps, "elapsed": elapsed,
                   "config": self.config.model_dump(mode="json"), "method": self.name}
        with atomic_path(ctx.checkpoint_path) as tmp:
            torch.save(payload, tmp)

    def _load_checkpoint(self, ctx) -> dict[str, Any] | None:
        path = ctx.checkpoint_path
        if path is None or not path.exists():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - an unreadable checkpoint means starting over
            return None
        if saved.get("method") != self.name or saved.get("config") != self.config.model_dump(mode="json"):
            return None
        if saved.get("data") not in (None, ctx.data_fingerprint):
            return None  # made on other data: start over (checkpoints before fingerprints carry none)
        return saved

    def _resume(self, ctx: DistillContext, state: IterativeState, gen: torch.Generator,
                saved: dict[str, Any]) -> tuple[list[list[float]], int, float, dict[str, Any]]:
        """Restore a loaded checkpoint into ``state``, ``gen`` and ``ctx.snapshots``; returns (loss curve, first
        iteration to run, elapsed seconds, init record)."""
        self._restore_state(state, saved["state"])
        gen.set_state(saved["generator"])
        for i, snap in saved["snapshots"].items():
            ctx.snapshot(int(i), SyntheticSet(snap["points"], snap["labels"], list(ctx.train.class_names),
                                              snap["extras"], snap["stored"], snap["info"]))
        init_record = {**saved["init_record"], "resumed_from_iteration": saved["iteration"]}
        return saved["curve"], saved["iteration"] + 1, saved["elapsed"], init_record

    # -- the loop ---------------------------------------------------------------------------------------------
    def distill(self, ctx: DistillContext) -> SyntheticSet:
        """Run the iterations; with ``ctx.checkpoint_path`` the state is saved every ``ctx.checkpoint_every``
        iterations and an interrupted distillation resumes from its last checkpoint (same result)."""
        cfg = self.config
        points, labels, init_record = self.initialise(ctx)
        state = self.setup(ctx, points.to(ctx.device), labels.to(ctx.device))
        gen = torch.Generator().manual_seed(ctx.seed)
        curve: list[list[float]] = []
        first, elapsed = 1, 0.0
        saved = self._load_checkpoint(ctx)
        if saved is not None:
            curve, first, elapsed, init_record = self._resume(ctx, state, gen, saved)
        elif ctx.wants_snapshot(0):
            ctx.snapshot(0, self.materialise(ctx, state))
        start = time.perf_counter() - elapsed
        for it in range(first, cfg.iterations + 1):
            torch.manual_seed(iteration_seed(ctx.seed, it))
            loss = self.iteration(ctx, state, gen, it)
            if not math.isfinite(loss):
                raise TrainingDivergedError(
                    f"{self.name}: the matching loss became {loss} at iteration {it}; lower the learning rates"
                )
            if it == 1 or it % cfg.log_every == 0 or it == cfg.iterations:
                curve.append([it, loss])
            ctx.report(it, cfg.iterations, f"{self.name} iteration {it}/{cfg.iterations} (loss {loss:.4g})")
            if ctx.wants_snapshot(it):
                ctx.snapshot(it, self.materialise(ctx, state))
            if ctx.checkpoint_path is not None and it % ctx.checkpoint_every == 0 and it < cfg.iterations:
                self._save_checkpoint(ctx, state, gen, it, curve, init_record, time.perf_counter() - start)
        seconds = time.perf_counter() - start
        synth = self.materialise(ctx, state)
        synth.info.update(
            init=init_record, iterations=cfg.iterations, loss_curve=curve,
            seconds_per_iteration=seconds / cfg.iterations if cfg.iterations else 0.0,
        )
        return synth
