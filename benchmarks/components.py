"""Components by registered name for the benchmark scripts (scripts may read the registry; the package's lower
layers receive what they need from ddbench.pipeline instead)."""

from __future__ import annotations

from ddbench.backbones.base import BackboneFactory
from ddbench.methods.base import DistillContext
from ddbench.plugins import get_registries


def backbone_factory(name: str = "pointnet", config: dict | None = None) -> BackboneFactory:
    return BackboneFactory.of(get_registries().backbone.get(name).cls, config)


def build_net(name: str, num_classes: int):
    return backbone_factory(name)(num_classes)


def method_info(name: str):
    return get_registries().method.get(name)


def distill_context(train, ppc: int, device, family: str = "modelnet10", init: str | None = None) -> DistillContext:
    """A context as the pipeline builds it for a cell (PointNet distillation network, ``init`` coreset)."""
    initialiser = None
    if init not in (None, "noise"):
        info = method_info(init)
        initialiser = info.cls(info.make_config({}))
    return DistillContext(train, ppc, 0, device, dataset=family, backbone=backbone_factory("pointnet"),
                          dataset_family=family, initialiser=initialiser)


def network_of(protocol_config) -> BackboneFactory:
    """The evaluation network a protocol config names."""
    return backbone_factory(protocol_config.backbone, protocol_config.backbone_config)
