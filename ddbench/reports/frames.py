"""The frames reports work from, derived from the typed cell records (through ``ddbench.tables.read_cells``).

- :func:`final_tidy`: the tables' tidy frame (one row per evaluation net) of the final evaluations, with the
  cell's evaluation settings and method role added;
- :func:`draw_frame`: one row per draw (a cell: one synthetic set and its nets), with the per-draw mean and the
  per-net values. When several draws exist the draw is the unit of comparison: the nets of one draw share its
  synthetic set and are not independent samples of the method.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ddbench.cells.record import CellRecord
from ddbench.tables.tidy import GROUP_KEYS, tidy_frame

#: experiment-level overrides that change how a set is evaluated (not how it is made)
EVAL_SETTINGS = ("eval_nets", "epochs", "selection")
#: what two cells must share for one to be the other's reference (the random set of the same size, the whole
#: dataset): the same evaluation of the same data
MATCH = ["protocol", "protocol_version", "dataset", "eval_backbone", "selection", "data_release", "eval_settings"]
#: the group keys whose missing values are filled for grouping
_NUMERIC_KEYS = ("ppc", "iteration", "budget_bytes")


def eval_settings(record: CellRecord) -> str:
    """The cell's departures from the reference evaluation (fewer nets, fewer epochs, protocol options)."""
    devs = [d for d in record.deviations if d.setting in EVAL_SETTINGS or d.component_kind == "protocol"]
    return "; ".join(sorted(f"{d.label()}={d.used}" for d in devs))


def final_tidy(cells: list[CellRecord], final: bool = True) -> pd.DataFrame:
    """The tidy frame (final evaluations only unless ``final`` is False), with ``eval_settings`` and ``role``."""
    tidy = tidy_frame(cells)
    if final:
        tidy = tidy[tidy["final"]]
    by_id = {c.cell_id: c for c in cells}
    tidy = tidy.copy()
    tidy["eval_settings"] = tidy["cell_id"].map(lambda i: eval_settings(by_id[i]))
    tidy["role"] = tidy["cell_id"].map(lambda i: by_id[i].method_role)
    return tidy


def filled(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the numeric group keys' NaN replaced by -1 (groupby and merge keys)."""
    out = frame.copy()
    for key in _NUMERIC_KEYS:
        if key in out:
            out[key] = out[key].fillna(-1)
    return out


def unfilled(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for key in _NUMERIC_KEYS:
        if key in out:
            out[key] = out[key].replace(-1, np.nan)
    return out


def draw_frame(tidy: pd.DataFrame, metric: str = "oa") -> pd.DataFrame:
    """One row per group x draw seed: ``value`` (mean of the draw's nets), ``n_nets``, ``values`` (the nets)."""
    keys = [*GROUP_KEYS, "seed", "eval_settings", "role"]
    if tidy.empty:
        return pd.DataFrame(columns=[*keys, "value", "n_nets", "values"])
    rows = []
    for key, g in filled(tidy).groupby(keys, dropna=False, sort=False):
        rows.append({**dict(zip(keys, key)), "value": float(g[metric].mean()), "n_nets": len(g),
                     "values": g[metric].astype(float).tolist()})
    return pd.DataFrame(rows)


def artifact_paths(cells: list[CellRecord]) -> dict[str, Path]:
    """The artifact file of every successful cell that records one and whose file exists (cell id -> path);
    artifact paths are recorded relative to the results directory (the parent of ``cells/``)."""
    out = {}
    for c in cells:
        rel = c.artifact.get("path")
        if c.status != "ok" or not rel or not c.path:
            continue
        here = Path(c.path).resolve()
        root = next((p.parent for p in here.parents if p.name == "cells"), here.parent.parent)
        path = Path(rel) if Path(rel).is_absolute() else root / rel
        if path.exists():
            out[c.cell_id] = path
    return out
