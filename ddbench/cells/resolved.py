"""A resolved cell: its identity (:class:`~ddbench.cells.spec.CellSpec`) plus the component classes and validated
configs that compute it, so that the layers that run it never look anything up by name.

The resolution layer (``ddbench.pipeline``) builds these; the runner, the methods and the evaluation receive them.
Everything here pickles by reference to the component classes, so executors can ship cells to other processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ddbench.backbones.base import BackboneFactory
from ddbench.backbones.tasks import Task
from ddbench.cells.spec import CellSpec
from ddbench.config import ComponentConfig
from ddbench.references import active_departures


@dataclass(frozen=True)
class Resolved:
    """A component class with its validated config."""

    cls: type
    config: ComponentConfig

    @property
    def name(self) -> str:
        return self.cls.name

    @property
    def version(self) -> str:
        return str(getattr(self.cls, "version", "1"))

    def build(self, *args: Any):
        """An instance: ``cls(config, *args)``."""
        return self.cls(self.config, *args)


@dataclass(frozen=True)
class DataIdentity:
    """What data a cell is computed on: the content fingerprint of the prepared train and test sets and the
    release record (which release, how it was sampled, its files' checksums); see ddbench/data/fingerprint.py."""

    content: str
    release: dict[str, Any]


@dataclass(frozen=True)
class ResolvedCell:
    """One cell, ready to run."""

    spec: CellSpec
    dataset: Resolved
    method: Resolved
    #: the coreset method that makes the method's initial set (None: the method needs none)
    initialiser: Resolved | None
    #: the method's network (None: the method uses none)
    distill_backbone: BackboneFactory | None
    #: the evaluation network (the protocol's backbone config merged with the experiment's)
    eval_backbone: BackboneFactory
    #: the protocol with its config for this cell (its ``backbone`` is ``eval_backbone``)
    protocol: Resolved
    #: the data it is computed on (None: not fingerprinted, e.g. a cell built by hand)
    data: DataIdentity | None = None
    #: the task class (docs/segmentation.md); its instance for the cell's dataset is ``task.for_dataset(dataset)``
    task: type[Task] = Task

    @property
    def cell_id(self) -> str:
        return self.spec.cell_id

    @property
    def distill_key(self) -> str:
        return self.spec.distill_key

    @property
    def role(self) -> str:
        return getattr(self.method.cls, "role", "distilled")

    def _components(self) -> list[tuple[str, Resolved]]:
        parts = [("dataset", self.dataset), ("method", self.method), ("protocol", self.protocol)]
        return parts + ([("initialiser", self.initialiser)] if self.initialiser else [])

    def references(self) -> dict[str, dict[str, str]]:
        """The declared reference of each component (docs/departures.md)."""
        return {kind: {"component": r.name, **r.cls.reference.to_dict()} for kind, r in self._components()
                if getattr(r.cls, "reference", None) is not None}

    def departures(self) -> list[dict[str, Any]]:
        """The declared departures from those references that hold under this cell's configs."""
        return [{"component_kind": kind, "component": r.name, **d}
                for kind, r in self._components() for d in active_departures(r.cls, r.config)]
