"""Tables derived from the cell files: tidy CSV, aggregates, and the papers' layout in CSV/Markdown/LaTeX."""

from ddbench.tables.tidy import aggregate, read_cells, tidy_frame

__all__ = ["aggregate", "make_tables", "read_cells", "tidy_frame"]


def make_tables(results_dir, fmt="markdown", metric="oa", std="nets", decimals=1, published=None,
                datasets=None, methods=None, iteration=None) -> str:
    """Render every like-with-like table found under ``results_dir`` in ``fmt``."""
    from ddbench.errors import DDBenchError
    from ddbench.tables.render import build_table, load_published, render, table_groups
    from ddbench.tables.tidy import select_iteration

    cells, _ = read_cells(results_dir)
    tidy = tidy_frame(cells)
    if datasets:
        tidy = tidy[tidy["dataset"].isin(datasets)]
    if methods:
        tidy = tidy[tidy["method"].isin(methods)]
    if fmt == "tidy":
        return tidy.to_csv(index=False)
    agg = aggregate(tidy if fmt == "long" else select_iteration(tidy, iteration), metric)
    if fmt == "long":
        return agg.to_csv(index=False)
    if agg.empty:
        failed = sum(c.get("status") == "failed" for c in cells)
        raise DDBenchError(
            f"no finished cells under {results_dir} ({len(cells)} cell files, {failed} failed); "
            "run `ddbench run` first or check the failures with `ddbench status`"
        )
    pub = load_published(None if published == "all" else published) if published else None
    parts = [render(build_table({**spec, "iteration": iteration}, sub, std, decimals, metric, pub), fmt, decimals)
             for spec, sub in table_groups(agg)]
    return "\n".join(parts)
