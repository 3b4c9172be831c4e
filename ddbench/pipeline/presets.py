"""Table presets resolved into experiments (docs/presets.md): the resolution layer reads the preset from the
registry, keeps the datasets whose data is present, and narrows the grid to what the user asks for."""

from __future__ import annotations

import logging
from typing import Any

from ddbench.errors import ConfigError
from ddbench.pipeline.experiment import ExperimentConfig, build_experiment
from ddbench.pipeline.resolve import open_dataset_of
from ddbench.plugins import Registries, get_registries

log = logging.getLogger(__name__)
#: the axes a user may narrow a preset's grid along (``--datasets``, ``--methods``, ``--ppc``)
NARROWABLE = ("datasets", "methods", "ppc")


def preset_class(name: str, reg: Registries | None = None) -> type:
    return (reg or get_registries()).preset.get(name).cls


def narrowed(run: dict[str, Any], narrow: dict[str, Any], preset: str) -> dict[str, Any]:
    """``run`` with its datasets, methods and PPCs cut to those in ``narrow`` (each must be in the preset)."""
    out = dict(run)
    for axis in NARROWABLE:
        wanted = narrow.get(axis)
        if wanted is None:
            continue
        outside = [v for v in wanted if v not in run.get(axis, [])]
        if outside:
            raise ConfigError(f"preset {preset} has no {axis} {outside}; it has {run.get(axis)}")
        out[axis] = [v for v in run[axis] if v in wanted]
    return out


def present_datasets(names: list[str], values: dict[str, Any], reg: Registries, data_root) -> list[str]:
    """The datasets of ``names`` whose data is present under ``data_root`` (the others are named in the log)."""
    present = []
    for name in names:
        ok, why = open_dataset_of(reg, name, values.get("dataset_config", {}).get(name), data_root, None).availability()
        if ok:
            present.append(name)
        else:
            log.warning("preset: skipping %s (%s)", name, why)
    return present


def preset_experiments(name: str, narrow: dict[str, Any], overrides: dict[str, Any],
                       data_root=None) -> list[ExperimentConfig]:
    """The experiments of preset ``name`` over the datasets present, narrowed, with ``overrides`` on top."""
    reg = get_registries()
    preset = preset_class(name, reg)
    experiments = []
    for run in preset.experiments():
        values = narrowed(run, narrow, name)
        values["datasets"] = present_datasets(values["datasets"], values, reg, data_root)
        if values["datasets"] and values.get("methods") and values.get("ppc"):
            experiments.append(build_experiment(values, overrides))
    if not experiments:
        raise ConfigError(f"none of preset {name}'s datasets ({', '.join(preset.grid.get('datasets', []))}) is present; "
                          "pass --data-root DIR or fetch one with `ddbench data fetch NAME`")
    return experiments


def preset_cells(name: str) -> set[tuple]:
    """(dataset, method, ppc, evaluation backbone) of every entry of the preset's table, as its grid spells it
    (full-data methods have no PPC)."""
    reg = get_registries()
    preset = preset_class(name, reg)
    out = set()
    for run in preset.experiments():
        ebbs = run.get("eval_backbones") or [reg.protocol.get(run.get("protocol", "sadm")).cls.Config().backbone]
        for m in run["methods"]:
            full = reg.method.get(m).cls.role == "full_data"
            out |= {(d, m, None if full else p, e) for d in run["datasets"] for p in run["ppc"] for e in ebbs}
    return out
