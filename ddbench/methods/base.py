"""The method plugin interface.

A method turns a real training set into a :class:`~ddbench.synthetic.artifact.SyntheticSet` with ``ppc``
clouds per class (or whatever its parameterisation stores). It receives everything through a
:class:`DistillContext` and must not read the test set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from ddbench.backbones.base import BackboneFactory
from ddbench.backbones.tasks import Task
from ddbench.config import ComponentConfig
from ddbench.data.cloudset import PointCloudSet
from ddbench.registry import Component
from ddbench.synthetic.artifact import SyntheticSet

#: progress(done, total, description)
DistillProgress = Callable[[int, int, str], None]


@dataclass
class DistillContext:
    """Inputs of one distillation."""

    train: PointCloudSet
    ppc: int | None  # None for methods that keep the whole set
    seed: int
    device: torch.device
    #: the dataset's name (for records only: behaviour follows ``dataset_family``)
    dataset: str = ""
    #: builds the distillation network (None for methods that need none); see docs/plugins.md
    backbone: BackboneFactory | None = None
    #: the dataset's declared family (``Dataset.family``, e.g. ``modelnet10``), for methods whose reference
    #: settings differ by family (DD3D's w0, 3DDP's preset); "" when the dataset declares none
    dataset_family: str = ""
    #: the coreset method that makes an iterative method's initial set (resolved from its ``init``), or None
    initialiser: Method | None = None
    cache_dir: Path | None = None
    progress: DistillProgress | None = None
    #: iterations at which an iterative method hands over a copy of its synthetic set for evaluation
    snapshot_iterations: tuple[int, ...] = ()
    snapshots: dict[int, SyntheticSet] = field(default_factory=dict)
    #: where an iterative method keeps its resumable state (None: no checkpoints)
    checkpoint_path: Path | None = None
    checkpoint_every: int = 50
    #: content fingerprint of the data (ddbench.data.fingerprint); a checkpoint made on other data is not resumed
    data_fingerprint: str | None = None
    #: what the networks predict (docs/segmentation.md): builds them, gives their loss and features
    task: Task = field(default_factory=Task)

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    def build_backbone(self, num_classes: int | None = None):
        """A fresh distillation network for ``num_classes`` (default: the training set's classes)."""
        if self.backbone is None:
            from ddbench.errors import ConfigError

            raise ConfigError("this method needs a distillation backbone and none was given; pass one "
                              "(--distill-backbones pointnet)")
        return self.task.build_net(self.backbone, self.num_classes if num_classes is None else num_classes)

    def report(self, done: int, total: int, desc: str = "") -> None:
        if self.progress is not None:
            self.progress(done, total, desc)

    def wants_snapshot(self, iteration: int) -> bool:
        return iteration in self.snapshot_iterations

    def snapshot(self, iteration: int, synth: SyntheticSet) -> None:
        """Keep the state after ``iteration`` updates (evaluated by the runner as an intermediate result)."""
        self.snapshots[iteration] = synth


#: what a method's synthetic set is for: ``distilled`` (a learned set), ``coreset`` (selected real clouds) or
#: ``full_data`` (the whole training set: the upper reference row of tables, never ranked, not in ``all``)
ROLES = ("distilled", "coreset", "full_data")


class Method(Component):
    """Base class of method plugins."""

    kind: ClassVar[str] = "method"
    #: one of :data:`ROLES`; recorded in every cell and read by the tables
    role: ClassVar[str] = "distilled"
    display_name: ClassVar[str] = ""
    #: backbone outputs the method needs (checked before distillation starts)
    needs: ClassVar[frozenset[str]] = frozenset()
    #: whether the distillation backbone affects the result (False: the grid does not expand that axis)
    uses_backbone: ClassVar[bool] = False
    #: the backbone the method's paper distils with (used when an experiment names none)
    default_backbone: ClassVar[str] = "pointnet"
    #: the default distillation backbone under other tasks than classification
    task_backbones: ClassVar[dict[str, str]] = {"segmentation": "pointnet_seg"}
    #: whether the method is defined per PPC (False: one set per dataset, like ``whole``)
    uses_ppc: ClassVar[bool] = True
    #: name of the Config field that ``--iterations`` overrides (None: the method has no iterations)
    iterations_field: ClassVar[str | None] = None
    #: the tasks the method runs for (docs/segmentation.md#the-task-axis)
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    #: classes that run the method for other tasks (e.g. DD3D's segmentation generator), by task, as
    #: ``"module:Class"`` (imported on use, so that the variant may build on this class)
    task_variants: ClassVar[dict[str, str]] = {}

    def __init__(self, config: ComponentConfig | None = None):
        self.config = config if config is not None else self.Config()

    def distill(self, ctx: DistillContext) -> SyntheticSet:
        raise NotImplementedError

    @classmethod
    def for_task(cls, task: str) -> type[Method] | None:
        """The class that runs this method for ``task``: itself, a declared variant, or None (unsupported)."""
        if task in cls.tasks:
            return cls
        if task in cls.task_variants:
            import importlib

            module, _, name = cls.task_variants[task].partition(":")
            return getattr(importlib.import_module(module), name)
        return None

    @classmethod
    def initialiser_request(cls, config: ComponentConfig) -> tuple[str, dict[str, Any]] | None:
        """(method name, config values) of the coreset method that makes this method's initial set, or None.
        The resolution layer builds that method and passes it as ``DistillContext.initialiser``."""
        return None

    @classmethod
    def storage_floats(cls, config: ComponentConfig, ppc: int, num_classes: int, points: int, family: str = "") -> int:
        """Floats the synthetic set of ``ppc`` clouds per class will store (checked against the artifact's own
        count by the tests), for a dataset of ``family`` (``Dataset.family``). Default: the clouds' coordinates."""
        return ppc * num_classes * points * 3


def check_ppc(train: PointCloudSet, ppc: int, method: str) -> None:
    """Every class must have at least ``ppc`` real clouds for a selection method."""
    from ddbench.errors import ConfigError

    if ppc is None or ppc < 1:
        raise ConfigError(f"method {method!r} needs a positive --ppc, got {ppc}")
    small = [(train.class_names[k], c) for k, c in enumerate(train.class_counts()) if c < ppc]
    if small:
        name, count = small[0]
        raise ConfigError(
            f"{method}: class {name!r} has only {count} training clouds, fewer than ppc={ppc}; lower --ppc"
        )
