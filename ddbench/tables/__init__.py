"""Tables derived from the cell files: tidy CSV, aggregates, and the papers' layouts in CSV/Markdown/LaTeX."""

from pathlib import Path

from ddbench.tables.layouts import Labels
from ddbench.tables.tidy import aggregate, read_cells, tidy_frame

__all__ = ["Labels", "aggregate", "make_tables", "read_cells", "tidy_frame"]


def make_tables(results_dir, fmt="markdown", metric="oa", std="nets", decimals=1, published=None,
                datasets=None, methods=None, iteration=None, layout="methods", ppc=None, by="ppc",
                storage=False, labels: Labels | None = None) -> str:
    """Render every like-with-like table found under ``results_dir`` (one directory or several) in ``fmt`` and
    ``layout``. ``labels`` gives display names (``ddbench.pipeline.table_labels`` reads them from the installed
    components); the full-data methods are those whose cells record that role."""
    from ddbench.errors import DDBenchError
    from ddbench.tables.layouts import (
        LAYOUTS,
        backbone_table_groups,
        build_backbone_table,
        build_table,
        load_published,
        table_groups,
    )
    from ddbench.tables.render import render
    from ddbench.tables.tidy import select_iteration

    if layout not in LAYOUTS:
        raise DDBenchError(f"unknown table layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if by not in ("ppc", "budget"):
        raise DDBenchError(f"--by must be ppc or budget, got {by!r}")
    cells, _ = read_cells(results_dir)
    labels = Labels((labels or Labels()).display_names,
                    frozenset(c.method for c in cells if c.method_role == "full_data"))
    tidy = tidy_frame(cells)
    if datasets:
        tidy = tidy[tidy["dataset"].isin(datasets)]
    if methods:
        tidy = tidy[tidy["method"].isin(methods)]
    if ppc:
        tidy = tidy[tidy["ppc"].isin(ppc) | tidy["ppc"].isna()]
    if fmt == "tidy":
        return tidy.to_csv(index=False)
    agg = aggregate(tidy if fmt == "long" else select_iteration(tidy, iteration), metric)
    if fmt == "long":
        return agg.to_csv(index=False)
    if agg.empty:
        failed = sum(c.status == "failed" for c in cells)
        where = results_dir if isinstance(results_dir, (str, Path)) else ", ".join(map(str, results_dir))
        raise DDBenchError(
            f"no finished cells under {where} ({len(cells)} cell files, {failed} failed); "
            "run `ddbench run` first or check the failures with `ddbench status`"
        )
    if by == "budget" and agg["budget_bytes"].isna().all():
        raise DDBenchError("no cell was run at a storage budget; run with --budget-bytes first")
    pub = load_published(None if published == "all" else published) if published else None
    groups, build = (table_groups, build_table) if layout == "methods" else (backbone_table_groups, build_backbone_table)
    parts = [render(build({**spec, "iteration": iteration}, sub, std, decimals, metric, pub, by, storage, labels),
                    fmt, decimals)
             for spec, sub in groups(agg, labels)]
    if not parts:
        raise DDBenchError(f"nothing to show in the {layout} layout (it needs methods with a PPC)")
    return "\n".join(parts)
