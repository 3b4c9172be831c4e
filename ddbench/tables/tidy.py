"""Cell files -> a tidy frame with one row per evaluation net, and its aggregation.

The cell JSON files are the source of truth; everything here is derived from them and never edited by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ddbench.cells.deviations import Deviation
from ddbench.cells.record import CellRecord, load_record
from ddbench.data.base import setting_suffix
from ddbench.errors import DDBenchError

log = logging.getLogger(__name__)

#: the columns that identify one aggregated number
GROUP_KEYS = [
    "protocol", "protocol_version", "dataset", "method", "ppc", "distill_backbone", "eval_backbone",
    "selection", "budget", "config_deviation", "iteration", "final", "budget_bytes", "data_release",
]


class _Setting:
    """The setting fields of a recorded dataset config (absent in cells made before they existed: aligned)."""

    def __init__(self, rotation: str = "aligned", canonical: str = "none", **_ignored):
        self.rotation, self.canonical = rotation, canonical


def read_cells(results_dir: str | Path | Sequence[str | Path]) -> tuple[list[CellRecord], list[str]]:
    """All cell records under ``results_dir`` (one directory or several; any depth) and, for every file that could
    not be read, its path and the reason."""
    roots = [Path(results_dir)] if isinstance(results_dir, (str, Path)) else [Path(r) for r in results_dir]
    for root in roots:
        if not root.exists():
            raise DDBenchError(f"results directory {root} does not exist; run `ddbench run --results {root}` first")
    cells, bad = [], []
    files = {p.resolve(): p for root in reversed(roots) for p in root.rglob("*.json")}  # nested roots: once each
    for path in sorted(files.values()):
        if path.name.endswith(".manifest.json") or path.name.startswith("."):
            continue
        try:
            record = load_record(path)
        except ValueError as err:
            bad.append(str(err))
            continue
        if record is not None and record.cell_id != path.stem:
            bad.append(f"{path}: holds cell {record.cell_id}, not the cell its name says")
        elif record is not None:
            cells.append(record)
    for b in bad:
        log.warning("left out of the tables: %s", b)
    return cells, bad


def _deviation_text(devs: list[Deviation], kind: str) -> str:
    return "; ".join(f"{d.label()}={d.used} (ref. {d.reference})" for d in devs if d.kind == kind)


def _config_text(c: CellRecord) -> str:
    """A cell's config deviations and its departures from the components' references (one footnote each)."""
    parts = [_deviation_text(c.deviations, "config")]
    if c.departures:
        parts.append("departs from the reference: " + "; ".join(f"{d['component']} {d['what']}" for d in c.departures))
    return "; ".join(p for p in parts if p)


def _cell_columns(c: CellRecord) -> dict:
    """The columns of one cell that every one of its nets' rows repeats."""
    res, env = c.results, c.environment
    storage = c.artifact.get("storage", {})
    return {
        "cell_id": c.cell_id,
        "protocol": c.protocol,
        "protocol_version": c.protocol_version,
        # the served setting is part of what a column means: modelnet40 vs modelnet40_rotated(_pca)
        "dataset": c.dataset + setting_suffix(_Setting(**c.spec.get("dataset_config", {}))),
        "method": c.method,
        "ppc": c.ppc if c.ppc is not None else np.nan,
        "seed": c.seed,
        "distill_backbone": c.distill_backbone or "",
        "eval_backbone": c.eval_backbone,
        "selection": res.selection,
        "budget": _deviation_text(c.deviations, "budget"),
        "config_deviation": _config_text(c),
        "ddof": res.ddof,
        "storage_floats": storage.get("floats"),
        "storage_bytes": storage.get("bytes"),
        "storage_bytes_per_class": storage.get("bytes_per_class"),
        "effective_clouds_per_class": storage.get("effective_clouds_per_class"),
        "budget_bytes": c.spec.get("budget_bytes") or np.nan,
        "distill_seconds": c.timing.get("distill_seconds"),
        "eval_seconds": c.timing.get("eval_seconds"),
        "peak_rss_bytes": c.memory.get("peak_rss_bytes"),
        "device": env.get("device"),
        "device_name": env.get("device_name"),
        "ddbench_version": env.get("versions", {}).get("ddbench"),
        "torch_version": env.get("versions", {}).get("torch"),
        "engine": res.engine,
        "data_release": _release_text(c.data.get("release") or {}),
    }


def _release_text(release: dict) -> str:
    """A cell's data release and sampling, as table captions name it ("" when the record predates it)."""
    if not release:
        return ""
    text = f"{release.get('release', '?')} release, {release.get('sampling', 'sampling unknown')}"
    return text if release.get("catalogued", True) else text + " (files not in ddbench's catalogue)"


#: the per-net scores of segmentation cells (docs/segmentation.md#metrics), added as columns when any cell has them
SEGMENTATION_METRICS = ("instance_miou", "class_miou")
METRICS = ("oa", "macc", *SEGMENTATION_METRICS)


def tidy_frame(cells: list[CellRecord]) -> pd.DataFrame:
    """One row per evaluation net of every successful cell; intermediate iterations (``final`` False) included.
    Segmentation cells add their instance and class mIoU (``oa`` is then the point accuracy, ``macc`` empty)."""
    rows = []
    segmentation = any(c.task == "segmentation" for c in cells)
    for c in cells:
        if c.status != "ok":
            continue
        base = _cell_columns(c)
        evaluations = [(c.results, True)] + [(r, False) for r in c.results_by_iteration]
        for ev, final in evaluations:
            for i, net in enumerate(ev.nets):
                rows.append({**base, "iteration": np.nan if ev.iteration is None else ev.iteration, "final": final,
                             "net": i, "net_seed": net.seed, "oa": net.oa, "macc": net.macc,
                             "selected_epoch": net.selected_epoch, "epochs": net.epochs,
                             **{m: getattr(net, m, np.nan) for m in SEGMENTATION_METRICS if segmentation}})
    scores = ["oa", "macc", *(SEGMENTATION_METRICS if segmentation else ())]
    columns = ["cell_id", *GROUP_KEYS, "seed", "net", "net_seed", *scores, "selected_epoch", "epochs",
               "ddof", "storage_floats", "storage_bytes", "storage_bytes_per_class", "effective_clouds_per_class",
               "distill_seconds", "eval_seconds", "peak_rss_bytes",
               "device", "device_name", "engine", "ddbench_version", "torch_version"]
    return pd.DataFrame(rows, columns=columns)


def select_iteration(tidy: pd.DataFrame, iteration: int | None) -> pd.DataFrame:
    """The rows a table shows: final results by default; with ``iteration``, iterative methods at that iteration
    (intermediate or final) and every other method's final result."""
    if iteration is None:
        return tidy[tidy["final"]]
    iterative = tidy["iteration"].notna()
    return tidy[(iterative & (tidy["iteration"] == iteration)) | (~iterative & tidy["final"])]


def aggregate(tidy: pd.DataFrame, metric: str = "oa", ddof: int | None = None) -> pd.DataFrame:
    """Mean and the two levels of spread of ``metric`` per group.

    - ``std_nets``: spread over evaluation nets of one synthetic set (the papers' ±); with several draw seeds,
      the root mean square of the per-draw values.
    - ``std_draws``: spread of the per-draw means over draw seeds (NaN with one draw).
    ``ddof`` defaults to the one recorded in the cells (the protocol's, 0 for the built-ins).
    """
    if metric not in METRICS:
        raise DDBenchError(f"unknown metric {metric!r}; use {', '.join(METRICS)}")
    if tidy.empty:
        return pd.DataFrame(columns=[*GROUP_KEYS, "mean", "std_nets", "std_draws", "n_draws", "n_nets", "ddof"])
    if metric not in tidy.columns:
        raise DDBenchError(f"no cell has {metric} (it is a segmentation metric; run --task segmentation)")
    keys = [k for k in GROUP_KEYS]
    frame = tidy.copy()
    frame["ppc"] = frame["ppc"].fillna(-1)
    frame["iteration"] = frame["iteration"].fillna(-1)
    frame["budget_bytes"] = frame["budget_bytes"].fillna(-1)
    out = []
    for group, g in frame.groupby(keys, dropna=False, sort=False):
        dd = int(g["ddof"].iloc[0]) if ddof is None else ddof
        per_draw = g.groupby("seed")[metric]
        draw_std = per_draw.apply(lambda x, dd=dd: float(np.std(x, ddof=dd)) if len(x) > dd else np.nan)
        draw_means = per_draw.mean()
        row = dict(zip(keys, group))
        row.update(
            mean=float(g[metric].mean()),
            std_nets=float(np.sqrt(np.nanmean(draw_std**2))) if draw_std.notna().any() else np.nan,
            std_draws=float(np.std(draw_means, ddof=dd)) if len(draw_means) > max(dd, 1) else np.nan,
            n_draws=int(len(draw_means)),
            n_nets=int(len(g)),
            ddof=dd,
            storage_bytes=g["storage_bytes"].iloc[0],
            storage_bytes_per_class=g["storage_bytes_per_class"].iloc[0],
            effective_clouds_per_class=g["effective_clouds_per_class"].iloc[0],
            seeds=",".join(str(s) for s in sorted(draw_means.index)),
        )
        out.append(row)
    agg = pd.DataFrame(out)
    agg["ppc"] = agg["ppc"].replace(-1, np.nan)
    agg["iteration"] = agg["iteration"].replace(-1, np.nan)
    agg["budget_bytes"] = agg["budget_bytes"].replace(-1, np.nan)
    return agg
