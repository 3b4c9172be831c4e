"""The stable public surface of ddbench: the one module a third-party plugin imports.

Everything a plugin needs to write a method, backbone, dataset, protocol, executor or transform is re-exported
here under a name that stays put while ddbench's internals move::

    from ddbench.api import ComponentConfig, DistillContext, Field, Method, SyntheticSet, check_ppc, hookimpl

Import from ``ddbench.api`` only. Other ``ddbench.*`` modules are internal: they may be renamed, split or
merged between releases without notice, and a plugin that imports them may break. A name leaves this module
only after a deprecation period.

Importing this module is cheap: it loads the component base classes (and torch, which they need), but not the
plugin loader, the registries or the command line. The executor-side names (:class:`Executor`,
:class:`CellTask`, :class:`CellOutcome`, :func:`execute_cell`) live next to the grid runner, so they are
imported on first access (``from ddbench.api import Executor`` works as usual).

See docs/plugins.md for the hooks and the contracts each kind of component follows.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ddbench.backbones.base import Backbone, BackboneFactory, BackboneOutput, reading
from ddbench.config import ComponentConfig
from ddbench.data.base import Dataset, DatasetConfig
from ddbench.data.cloudset import PointCloudSet
from ddbench.data.transforms import Transform, fps_subsample, normalize_unit_sphere
from ddbench.errors import (
    ArtifactError,
    ConfigError,
    DataError,
    DDBenchError,
    IncompatibleError,
    TrainingDivergedError,
)
from ddbench.evaluation.protocols import Protocol, ProtocolConfig
from ddbench.hookspecs import hookimpl
from ddbench.methods.base import DistillContext, Method, check_ppc
from ddbench.methods.gradient_matching import GradientMatchingMethod
from ddbench.methods.iterative import IterativeConfig, IterativeMethod, IterativeState, PointsState
from ddbench.ops.backends import farthest_point_sample
from ddbench.ops.neighbors import ball_query, group, knn
from ddbench.ops.rotation import apply_rotation, random_rotation_matrices
from ddbench.ops.sampling import gather_points
from ddbench.presets.base import Preset
from ddbench.runner.progress import Reporter
from ddbench.synthetic.artifact import SyntheticSet

if TYPE_CHECKING:  # imported lazily at run time, see __getattr__
    from ddbench.runner.cell import CellOutcome, CellTask, execute_cell
    from ddbench.runner.executors import Executor

#: names whose home module imports the plugin loader: resolved on first access (PEP 562)
_LAZY: dict[str, str] = {
    "Executor": "ddbench.runner.executors",
    "CellTask": "ddbench.runner.cell",
    "CellOutcome": "ddbench.runner.cell",
    "execute_cell": "ddbench.runner.cell",
}

__all__ = [
    # hooks and configuration
    "hookimpl",
    "ComponentConfig",
    "Field",
    # methods
    "Method",
    "DistillContext",
    "check_ppc",
    "IterativeMethod",
    "IterativeConfig",
    "IterativeState",
    "PointsState",
    "GradientMatchingMethod",
    "Preset",
    "SyntheticSet",
    # backbones
    "Backbone",
    "BackboneFactory",
    "BackboneOutput",
    "reading",
    # data
    "Dataset",
    "DatasetConfig",
    "PointCloudSet",
    "Transform",
    # evaluation
    "Protocol",
    "ProtocolConfig",
    # executors
    "Executor",
    "CellTask",
    "CellOutcome",
    "execute_cell",
    "Reporter",
    # errors
    "DDBenchError",
    "ConfigError",
    "DataError",
    "ArtifactError",
    "IncompatibleError",
    "TrainingDivergedError",
    # point operations on (B, N, 3) tensors
    "farthest_point_sample",
    "gather_points",
    "fps_subsample",
    "knn",
    "ball_query",
    "group",
    "apply_rotation",
    "random_rotation_matrices",
    "normalize_unit_sphere",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
