"""Metrics beyond accuracy, per aggregated number (docs/reports.md#metrics).

- ``gain_over_random``: the improvement over the random set of the same size, as DD-Ranking defines its IOR
  (accuracy of the distilled set minus accuracy of a randomly selected real subset of the same size, under the
  same evaluation), taken draw by draw: a method's draw ``s`` is set against the random baseline's draw ``s``
  (same dataset, PPC, protocol, evaluation network, selection rule, evaluation budget and data), then averaged
  over the draws that have such a partner (``gain_draws``). Draw ``s`` of an initialised method starts from the
  random set of draw ``s``, so the gain is what the distillation added to those clouds.
- ``fraction_of_whole``: accuracy divided by the whole-data accuracy of the same evaluation (a full-data cell).
- ``acc_per_kib``: accuracy (%) per KiB stored per class (``artifact.storage.bytes_per_class``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddbench.cells.record import CellRecord
from ddbench.reports.frames import MATCH, draw_frame, filled, final_tidy, unfilled
from ddbench.tables.tidy import GROUP_KEYS, aggregate

METRIC_COLUMNS = ["gain_over_random", "gain_draws", "whole_mean", "fraction_of_whole", "acc_per_kib"]


def _gains(draws: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per group: the mean over matched draws of (draw value - baseline value of the same draw), and how many."""
    on = [*MATCH, "ppc", "seed"]
    base = (draws[draws["method"] == baseline].groupby(on, dropna=False)["value"].mean()
            .rename("base_value").reset_index())
    merged = draws.merge(base, on=on, how="left")
    merged["gain"] = merged["value"] - merged["base_value"]
    out = merged.groupby(GROUP_KEYS, dropna=False).agg(gain_over_random=("gain", "mean"),
                                                       gain_draws=("gain", "count")).reset_index()
    is_base = out["method"] == baseline
    out.loc[is_base, "gain_over_random"] = np.nan  # the baseline is the reference, not a result
    out.loc[is_base, "gain_draws"] = 0
    return out


def _whole(draws: pd.DataFrame) -> pd.DataFrame:
    """The whole-data accuracy of each evaluation (mean over the full-data cells' draws)."""
    whole = draws[draws["role"] == "full_data"]
    return whole.groupby(MATCH, dropna=False)["value"].mean().rename("whole_mean").reset_index()


def metrics_frame(cells: list[CellRecord], metric: str = "oa", baseline: str = "random") -> pd.DataFrame:
    """The tables' aggregate of the final evaluations with the metric columns (:data:`METRIC_COLUMNS`) and the
    method ``role`` added."""
    tidy = final_tidy(cells)
    agg = aggregate(tidy, metric)
    if agg.empty:
        return agg.assign(**{c: pd.Series(dtype=float) for c in METRIC_COLUMNS}, role=pd.Series(dtype=str))
    draws = draw_frame(tidy, metric)
    settings = draws.groupby(GROUP_KEYS, dropna=False)[["eval_settings", "role"]].first().reset_index()
    out = filled(agg).merge(settings, on=GROUP_KEYS, how="left").merge(_gains(draws, baseline), on=GROUP_KEYS,
                                                                       how="left")
    out = out.merge(_whole(draws), on=MATCH, how="left")
    full = out["role"] == "full_data"
    out["fraction_of_whole"] = np.where(full, np.nan, out["mean"] / out["whole_mean"])
    kib = pd.to_numeric(out["storage_bytes_per_class"], errors="coerce") / 1024
    out["acc_per_kib"] = out["mean"] / kib.where(kib > 0)
    out.loc[full, "gain_over_random"] = np.nan
    return unfilled(out)
