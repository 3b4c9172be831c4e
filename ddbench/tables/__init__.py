"""Tables derived from the cell files: tidy CSV, aggregates, and the papers' layouts in CSV/Markdown/LaTeX."""

from pathlib import Path

from ddbench.tables.layouts import Labels
from ddbench.tables.tidy import aggregate, read_cells, tidy_frame

__all__ = ["Labels", "aggregate", "build_tables", "make_tables", "read_cells", "tidy_frame"]


def _no_cells_error(results_dir, cells):
    from ddbench.errors import DDBenchError

    failed = sum(c.status == "failed" for c in cells)
    where = results_dir if isinstance(results_dir, (str, Path)) else ", ".join(map(str, results_dir))
    return DDBenchError(
        f"no finished cells under {where} ({len(cells)} cell files, {failed} failed); "
        "run `ddbench run` first or check the failures with `ddbench status`"
    )


def _selected_tidy(cells, datasets, methods, ppc):
    tidy = tidy_frame(cells)
    if datasets:
        tidy = tidy[tidy["dataset"].isin(datasets)]
    if methods:
        tidy = tidy[tidy["method"].isin(methods)]
    if ppc:
        tidy = tidy[tidy["ppc"].isin(ppc) | tidy["ppc"].isna()]
    return tidy


def build_tables(results_dir, metric="oa", std="nets", decimals=1, published=None, datasets=None, methods=None,
                 iteration=None, layout="methods", ppc=None, by="ppc", storage=False, labels: Labels | None = None,
                 significant=False, alpha=0.05, cells=None) -> list:
    """Every like-with-like table (:class:`ddbench.tables.render.Table`) of the cells under ``results_dir`` (one
    directory or several; or the records ``cells`` already read) in ``layout``. ``significant``: bold and
    underline only where Welch's t-test at ``alpha`` supports it (docs/results.md#tables)."""
    from ddbench.errors import DDBenchError
    from ddbench.tables.layouts import (
        LAYOUTS,
        attach_samples,
        backbone_table_groups,
        build_backbone_table,
        build_table,
        load_published,
        table_groups,
    )
    from ddbench.tables.tidy import select_iteration

    if layout not in LAYOUTS:
        raise DDBenchError(f"unknown table layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if by not in ("ppc", "budget"):
        raise DDBenchError(f"--by must be ppc or budget, got {by!r}")
    cells = read_cells(results_dir)[0] if cells is None else cells
    labels = Labels((labels or Labels()).display_names,
                    frozenset(c.method for c in cells if c.method_role == "full_data"))
    segmentation = [c for c in cells if c.task == "segmentation"]
    cells = [c for c in cells if c.task != "segmentation"]
    pub = load_published(None if published == "all" else published) if published else None
    seg_tables = (segmentation_tables(segmentation, std, decimals, pub, datasets, methods, ppc, labels)
                  if segmentation and layout in ("methods", "segmentation") else [])
    if layout == "segmentation" or (segmentation and not any(c.status == "ok" for c in cells)):
        if not seg_tables:
            raise DDBenchError("no finished segmentation cells; run `ddbench run --task segmentation` first")
        return seg_tables
    tidy = select_iteration(_selected_tidy(cells, datasets, methods, ppc), iteration)
    agg = aggregate(tidy, metric)
    if agg.empty:
        raise _no_cells_error(results_dir, cells)
    if by == "budget" and agg["budget_bytes"].isna().all():
        raise DDBenchError("no cell was run at a storage budget; run with --budget-bytes first")
    if significant:
        agg = attach_samples(agg, tidy, metric)
    groups, build = (table_groups, build_table) if layout == "methods" else (backbone_table_groups, build_backbone_table)
    tables = [build({**spec, "iteration": iteration}, sub, std, decimals, metric, pub, by, storage, labels,
                    significant, alpha)
              for spec, sub in groups(agg, labels)]
    if not tables:
        raise DDBenchError(f"nothing to show in the {layout} layout (it needs methods with a PPC)")
    return tables + seg_tables


def segmentation_tables(cells, std, decimals, pub, datasets, methods, ppc, labels: Labels) -> list:
    """The DD3D Table 2 layout of every like-with-like group of segmentation cells (docs/segmentation.md); ``pub``:
    the published rows to set beside them, or None."""
    from ddbench.tables.segmentation import SEG_METRICS, build_segmentation_table, segmentation_groups
    from ddbench.tables.tidy import select_iteration

    tidy = select_iteration(_selected_tidy(cells, datasets, methods, ppc), None)
    if tidy.empty:
        return []
    aggs = {m: aggregate(tidy, m) for m in SEG_METRICS}
    tables = []
    for spec, oa_group in segmentation_groups(aggs["oa"], labels):
        keep = oa_group.index
        tables.append(build_segmentation_table(spec, {m: a.loc[keep] for m, a in aggs.items()}, std, decimals, pub,
                                               labels))
    return tables


def make_tables(results_dir, fmt="markdown", metric="oa", std="nets", decimals=1, published=None,
                datasets=None, methods=None, iteration=None, layout="methods", ppc=None, by="ppc",
                storage=False, labels: Labels | None = None, significant=False) -> str:
    """Render every like-with-like table found under ``results_dir`` (one directory or several) in ``fmt`` and
    ``layout``. ``labels`` gives display names (``ddbench.pipeline.table_labels`` reads them from the installed
    components); the full-data methods are those whose cells record that role. ``significant``: bold and
    underline only where the best is significantly better than the next (Welch's t-test, p < 0.05)."""
    from ddbench.errors import DDBenchError
    from ddbench.tables.layouts import LAYOUTS
    from ddbench.tables.render import render

    if layout not in LAYOUTS:
        raise DDBenchError(f"unknown table layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if by not in ("ppc", "budget"):
        raise DDBenchError(f"--by must be ppc or budget, got {by!r}")
    if fmt in ("tidy", "long"):
        tidy = _selected_tidy(read_cells(results_dir)[0], datasets, methods, ppc)
        return tidy.to_csv(index=False) if fmt == "tidy" else aggregate(tidy, metric).to_csv(index=False)
    tables = build_tables(results_dir, metric, std, decimals, published, datasets, methods, iteration, layout, ppc,
                          by, storage, labels, significant)
    return "\n".join(render(t, fmt, decimals) for t in tables)
