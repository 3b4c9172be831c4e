"""Learning tasks (docs/segmentation.md#the-task-axis): what a network predicts and how it is trained.

``classification`` predicts one label per cloud (the papers' main tables); ``segmentation`` predicts one part label
per point, given the cloud's category (ShapeNetPart, DD3D's Table 2). Every dataset, method, backbone and protocol
declares the tasks it supports (``tasks``); the pipeline checks a grid against them before it starts. A task object
carries what the methods and the evaluation need to treat clouds of that task alike: how to build a network for a
dataset, its training loss on a batch, its global feature (herding, k-center), and how real batches are drawn
(segmentation batches carry their per-point part labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ddbench.backbones.base import BackboneFactory
from ddbench.data.cloudset import PointCloudSet
from ddbench.errors import ConfigError, DataError

TASK_NAMES = ("classification", "segmentation")


@dataclass(frozen=True)
class Task:
    """Base class: the classification behaviour (one label per cloud)."""

    name: ClassVar[str] = "classification"
    #: category -> its global part ids (segmentation only)
    category_parts: tuple[tuple[int, ...], ...] = ()

    @classmethod
    def for_dataset(cls, dataset) -> Task:
        return cls()

    @property
    def per_point(self) -> bool:
        return False

    def build_net(self, factory: BackboneFactory, num_classes: int):
        return factory(num_classes)

    def logits(self, net, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scores of the predicted targets: (B, K) per cloud."""
        return net(points).logits

    def loss(self, net, points: torch.Tensor, labels: torch.Tensor,
             point_labels: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss on one batch: cross-entropy of the cloud labels."""
        return F.cross_entropy(net(points).logits, labels)

    def global_feature(self, net, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return net(points).global_feature

    def point_labels_of(self, data: PointCloudSet, index: torch.Tensor) -> torch.Tensor | None:
        """The per-point targets of clouds ``index`` of ``data`` (None: the task has none)."""
        return None


@dataclass(frozen=True)
class SegmentationTask(Task):
    """Part segmentation: per-point part labels; the network sees the cloud's category (its one-hot)."""

    name: ClassVar[str] = "segmentation"

    @classmethod
    def for_dataset(cls, dataset) -> SegmentationTask:
        return cls(tuple(tuple(int(p) for p in parts) for parts in dataset.category_parts()))

    @property
    def per_point(self) -> bool:
        return True

    @property
    def num_parts(self) -> int:
        return 1 + max(p for parts in self.category_parts for p in parts)

    @property
    def num_categories(self) -> int:
        return len(self.category_parts)

    def build_net(self, factory: BackboneFactory, num_classes: int):
        if num_classes != self.num_categories:
            raise ConfigError(f"{num_classes} categories but the dataset's part table has {self.num_categories}")
        return factory.cls(factory.config, self.num_parts, self.num_categories)

    def logits(self, net, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, N, P) part scores of every point."""
        return net(points, labels).point_logits

    def loss(self, net, points: torch.Tensor, labels: torch.Tensor,
             point_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy of the part label of every point (mean over all points of the batch), as DD3D's code
        trains its segmentation nets (seg_inr.py:75-86, utils.py:184-185)."""
        if point_labels is None:
            raise DataError("segmentation needs per-point part labels; the clouds given carry none")
        out = net(points, labels).point_logits
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), point_labels.reshape(-1))

    def global_feature(self, net, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return net(points, labels).global_feature

    def point_labels_of(self, data: PointCloudSet, index: torch.Tensor) -> torch.Tensor:
        if data.point_labels is None:
            raise DataError(f"{data.name or 'the data'} has no per-point part labels; segmentation needs them")
        return data.point_labels[index]


TASKS: dict[str, type[Task]] = {Task.name: Task, SegmentationTask.name: SegmentationTask}


def task_class(name: str) -> type[Task]:
    """The task called ``name`` (one-line error naming the known ones)."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; use {' or '.join(TASKS)}")
    return TASKS[name]


def supports(component: type, task: str) -> bool:
    """Whether a component class declares ``task`` (components that declare nothing are classification-only)."""
    return task in getattr(component, "tasks", ("classification",))


def unsupported(components: Sequence[tuple[str, type]], task: str) -> list[str]:
    """'kind name' of every component of ``components`` that does not support ``task``."""
    return [f"{kind} {cls.name}" for kind, cls in components if not supports(cls, task)]
