"""The hooks a ddbench plugin may implement.

A plugin is a module (or object) with functions decorated by :data:`hookimpl` and named after the specs below.
Each hook receives a ``register`` callback; call it once per component class::

    from ddbench.api import hookimpl

    @hookimpl
    def register_methods(register):
        register(MyMethod)

Built-in components are registered through exactly these hooks. Third-party plugins are found through the
``ddbench`` entry-point group of an installed distribution (see docs/plugins.md).
"""

from __future__ import annotations

import pluggy

PROJECT = "ddbench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_methods(register):
    """Register distillation / selection methods (subclasses of ddbench.api.Method)."""


@hookspec
def register_backbones(register):
    """Register networks (subclasses of ddbench.api.Backbone)."""


@hookspec
def register_datasets(register):
    """Register datasets (subclasses of ddbench.api.Dataset)."""


@hookspec
def register_protocols(register):
    """Register evaluation protocols (subclasses of ddbench.api.Protocol)."""


@hookspec
def register_executors(register):
    """Register grid executors (subclasses of ddbench.api.Executor)."""


@hookspec
def register_transforms(register):
    """Register point-cloud transforms (subclasses of ddbench.api.Transform)."""


@hookspec
def register_presets(register):
    """Register table presets (subclasses of ddbench.api.Preset): a published table as data."""


#: hook name -> component kind it registers
HOOK_KINDS = {
    "register_methods": "method",
    "register_backbones": "backbone",
    "register_datasets": "dataset",
    "register_protocols": "protocol",
    "register_executors": "executor",
    "register_transforms": "transform",
    "register_presets": "preset",
}
