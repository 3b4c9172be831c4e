"""Test helpers: networks by registered name (tests may read the registry; the package's lower layers may not)."""

from __future__ import annotations

from ddbench.backbones.base import BackboneFactory
from ddbench.plugins import get_registries


def backbone_factory(name: str = "pointnet", config: dict | None = None) -> BackboneFactory:
    """The registered backbone ``name`` with ``config``, as the pipeline would resolve it."""
    return BackboneFactory.of(get_registries().backbone.get(name).cls, config)


def build_net(name: str, num_classes: int, config: dict | None = None):
    """A fresh network of the registered backbone ``name``."""
    return backbone_factory(name, config)(num_classes)


def network_of(protocol_config) -> BackboneFactory:
    """The evaluation network a protocol config names (its backbone with its backbone config)."""
    return backbone_factory(protocol_config.backbone, protocol_config.backbone_config)
