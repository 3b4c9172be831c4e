"""The backbone plugin interface.

A backbone maps clouds (B, N, 3) to a :class:`BackboneOutput` with the logits (B, K), the global feature
(B, C) and, when it has them, the point-wise features (B, C, N) whose max over points is the global feature.
Methods declare which of these they need (``Method.needs``); :func:`check_provides` says clearly, before any
work starts, when a backbone cannot serve a method.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ddbench.backbones.utils import bn_warmup
from ddbench.config import ComponentConfig
from ddbench.errors import DataError, IncompatibleError
from ddbench.registry import Component

FEATURES = frozenset({"logits", "global_feature", "point_features"})


@dataclass
class BackboneOutput:
    logits: torch.Tensor  # (B, K)
    global_feature: torch.Tensor  # (B, C)
    point_features: torch.Tensor | None = None  # (B, C, N)


class Backbone(nn.Module, Component):
    """Base class of backbone plugins. Subclasses implement :meth:`forward_features`."""

    kind: ClassVar[str] = "backbone"
    display_name: ClassVar[str] = ""
    provides: ClassVar[frozenset[str]] = FEATURES
    #: fewest points per cloud the architecture accepts
    min_points: ClassVar[int] = 1
    #: the tasks the network serves (docs/segmentation.md#the-task-axis)
    tasks: ClassVar[tuple[str, ...]] = ("classification",)

    def __init__(self, config: ComponentConfig | None, num_classes: int):
        nn.Module.__init__(self)
        self.config = config if config is not None else self.Config()
        self.num_classes = int(num_classes)
        #: the outputs callers read (set by :meth:`warm_up_batchnorm`); a backbone may leave the others None
        self.needs: frozenset[str] = FEATURES

    def forward(self, points: torch.Tensor) -> BackboneOutput:
        if points.dim() != 3 or points.shape[-1] != 3:
            raise DataError(f"{self.name} expects clouds of shape (B, N, 3), got {tuple(points.shape)}")
        if points.shape[1] < self.min_points:
            raise IncompatibleError(
                f"{self.name} needs at least {self.min_points} points per cloud, got {points.shape[1]}"
            )
        return self.forward_features(points)

    def forward_features(self, points: torch.Tensor) -> BackboneOutput:
        raise NotImplementedError

    def warm_up_batchnorm(self, batch: torch.Tensor, *inputs: torch.Tensor,
                          needs: frozenset[str] = FEATURES) -> None:
        """The frozen-BN warm-up (docs/specification.md#frozen-bn-warm-up): one train-mode forward on ``batch``
        (and ``inputs``), then every BatchNorm to eval. ``needs``: the outputs the caller will read from the
        warmed network; a backbone may skip the layers none of them depends on (:class:`PointNet` skips its
        head when no logits are needed), whose BatchNorm then holds NaN statistics so that a caller reading
        them anyway gets NaN, never a silently different number. The warmed network keeps ``needs`` and may
        then return None for outputs outside it (:class:`PointNet`'s point-wise features)."""
        self.needs = frozenset(needs)
        bn_warmup(self, batch, *inputs)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@contextmanager
def reading(net: nn.Module, needs: frozenset[str]) -> Iterator[nn.Module]:
    """``net`` with :attr:`Backbone.needs` set to ``needs`` inside the block (restored after it): a caller that
    reads only some outputs lets the backbone skip the others."""
    before = getattr(net, "needs", FEATURES)
    net.needs = frozenset(needs)
    try:
        yield net
    finally:
        net.needs = before


def check_provides(backbone_cls: type[Backbone], needs: frozenset[str], method: str) -> None:
    missing = set(needs) - set(backbone_cls.provides)
    if missing:
        raise IncompatibleError(
            f"method {method!r} needs {', '.join(sorted(missing))} from its backbone, which "
            f"{backbone_cls.name!r} does not expose; choose a backbone that does (e.g. pointnet)"
        )


@dataclass(frozen=True)
class BackboneFactory:
    """A backbone class with its validated config: builds fresh networks for any number of classes.

    The resolution layer (``ddbench.pipeline``) looks the class up once and hands this factory to whatever needs
    networks (methods, evaluation), so that no lower layer reads the registry. It pickles by reference to the
    class, so executors can ship it to other processes."""

    cls: type[Backbone]
    config: ComponentConfig

    def __call__(self, num_classes: int) -> Backbone:
        return self.cls(self.config, num_classes)

    @property
    def name(self) -> str:
        return self.cls.name

    def config_dict(self) -> dict:
        return self.config.model_dump(mode="json")

    @classmethod
    def of(cls, backbone_cls: type[Backbone], values: dict | None = None) -> BackboneFactory:
        """The factory of ``backbone_cls`` with ``values`` validated against its Config."""
        return cls(backbone_cls, backbone_cls.make_config(values))
