"""The resolution layer: experiments and the arguments of ``ddbench distill`` / ``ddbench eval`` become typed,
resolved cells here, and only here is the component registry read (docs/results.md#the-grid).

Layers below receive classes, validated configs and factories; layers above (the CLI) call these functions.
Names are imported on first use, so that ``ddbench --help`` does not pay for torch and pandas.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "make_tables": "components", "open_dataset": "components", "table_labels": "components",
    "ExperimentConfig": "experiment", "build_experiment": "experiment", "load_experiment_file": "experiment",
    "expand_grid": "grid",
    "DistillRequest": "run", "EvalRequest": "run", "distill_one": "run", "evaluate_one": "run",
    "plan_grid": "run", "run_grid": "run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ddbench.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ddbench.pipeline.{_EXPORTS[name]}"), name)
