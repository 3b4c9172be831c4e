"""Versioned evaluation protocols (docs/specification.md#evaluation-protocols).

A protocol fixes how a synthetic set is scored: the network, optimiser, schedule, batch size, augmentation,
how many evaluation nets are trained and with which seeds, and which epoch is reported. Every result records
the protocol's name, version and full config. Bump ``version`` whenever a default changes.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ddbench.config import ComponentConfig
from ddbench.registry import Component


class ProtocolConfig(ComponentConfig):
    backbone: str = Field("pointnet", description="evaluation network")
    backbone_config: dict[str, Any] = Field(default_factory=dict)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(5e-4, ge=0)
    epochs: int = Field(500, gt=0)
    schedule: Literal["step", "cosine", "constant"] = "step"
    step_epoch: int | None = Field(
        251, description="1-based epoch from which the lr is multiplied by step_gamma (step schedule)"
    )
    step_gamma: float = Field(0.1, gt=0)
    recreate_optimizer_at_step: bool = Field(
        True, description="build a fresh optimiser (momentum reset) at the step, as the SADM code does"
    )
    lr_min: float = Field(0.0, ge=0, description="final lr of the cosine schedule")
    batch_size: int = Field(8, gt=0)
    augmentation: Literal["none", "dd3d"] = "none"
    renormalize_synthetic: bool = Field(True, description="re-normalise synthetic clouds to the unit sphere")
    selection: Literal["final", "best_test"] = Field(
        "final",
        description="final: accuracy after the last epoch; best_test: best epoch on the TEST set (selection "
        "on the test set, reproduces DD3D's reporting; labelled in results and tables)",
    )
    num_nets: int = Field(10, gt=0, description="evaluation nets trained per synthetic set")
    seed_base: int = Field(1996, description="net i of draw seed s uses seed_base + 1000*s + i")
    test_batch_size: int = Field(128, gt=0)
    ddof: int = Field(0, ge=0, description="ddof of the reported std over nets (numpy's default, as the papers)")
    canonicalise: Literal["none", "pca", "learned"] = Field(
        "none", description="wrap the network in PCA canonicalisation (sign fix: pca = DD3D's code, learned = the paper's)"
    )

    @model_validator(mode="after")
    def _step_in_range(self):
        if self.schedule == "step" and self.step_epoch is not None and not 1 <= self.step_epoch <= self.epochs + 1:
            raise ValueError(f"step_epoch {self.step_epoch} outside 1..epochs+1 ({self.epochs + 1})")
        return self

    def with_epochs(self, epochs: int) -> "ProtocolConfig":
        """The same protocol at a different epoch budget; a step schedule keeps its step at the same fraction."""
        update: dict[str, Any] = {"epochs": epochs}
        if self.schedule == "step" and self.step_epoch is not None:
            frac = (self.step_epoch - 1) / self.epochs
            update["step_epoch"] = int(round(frac * epochs)) + 1
        return self.model_validate({**self.model_dump(), **update})

    def net_seeds(self, draw_seed: int, num_nets: int | None = None) -> list[int]:
        n = self.num_nets if num_nets is None else num_nets
        return [self.seed_base + 1000 * draw_seed + i for i in range(n)]


class Protocol(Component):
    """Base class of registrable evaluation protocols (the Config defaults define the protocol)."""

    kind: ClassVar[str] = "protocol"
    Config: ClassVar[type[ProtocolConfig]] = ProtocolConfig
    display_name: ClassVar[str] = ""


class SADMProtocolConfig(ProtocolConfig):
    pass  # the ProtocolConfig defaults are the sadm protocol


class SADMProtocol(Protocol):
    """SADM/3DDP Table 1: pointnet, SGD 0.01 m0.9 wd5e-4, 500 epochs, lr x0.1 from 251, batch 8, final epoch."""

    name = "sadm"
    version = "1"
    display_name = "SADM protocol"
    Config = SADMProtocolConfig


class DD3DProtocolConfig(ProtocolConfig):
    backbone: str = "pointnet_in"
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.0, ge=0)
    weight_decay: float = Field(5e-4, ge=0)
    epochs: int = Field(200, gt=0)
    schedule: Literal["step", "cosine", "constant"] = "cosine"
    step_epoch: int | None = None
    lr_min: float = Field(1e-4, ge=0)
    batch_size: int = Field(256, gt=0)
    augmentation: Literal["none", "dd3d"] = "dd3d"
    renormalize_synthetic: bool = False


class DD3DProtocol(Protocol):
    """DD3D: pointnet_in, Adam 1e-3 wd5e-4, cosine to 1e-4 over 200 epochs, batch 256, scale/jitter/rotation aug."""

    name = "dd3d"
    version = "1"
    display_name = "DD3D protocol"
    Config = DD3DProtocolConfig


BUILTIN_PROTOCOLS = (SADMProtocol, DD3DProtocol)
