"""Networks: the backbone interface and the built-in architectures."""

from ddbench.backbones.base import Backbone, BackboneFactory, BackboneOutput

__all__ = ["Backbone", "BackboneOutput", "BackboneFactory"]
