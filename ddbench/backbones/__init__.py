"""Networks: the backbone interface and the built-in architectures."""

from ddbench.backbones.base import Backbone, BackboneOutput, build_backbone

__all__ = ["Backbone", "BackboneOutput", "build_backbone"]
