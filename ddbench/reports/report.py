"""``ddbench report``: one static, self-contained HTML page of one or more results directories.

The page holds the tables (bold / underline by significance, the tests noted), the metrics beyond accuracy,
each method against the random baseline, every plot, a gallery of every artifact, the provenance of every
directory and a row for every cell. Images are PNG ``data:`` URIs and the CSS is inline: the page opens offline
and fetches nothing. The HTML comes from a jinja2 template shipped with the package
(``ddbench/reports/templates/report.html.j2``), with autoescaping on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ddbench.cells.record import CellRecord
from ddbench.errors import ArtifactError, DataError
from ddbench.reports.compare import compare_draws, comparison_rows, variant_label
from ddbench.reports.frames import artifact_paths, draw_frame, final_tidy
from ddbench.reports.html import data_uri, metrics_view, table_view
from ddbench.reports.metrics import metrics_frame
from ddbench.reports.provenance import cell_rows, directory_provenance
from ddbench.tables import build_tables, read_cells
from ddbench.tables.layouts import Labels, load_published

TEMPLATE = "report.html.j2"
PLOT_TITLES = {
    "ppc": "Accuracy against PPC", "storage": "Accuracy against stored bytes per class",
    "iteration": "Accuracy against distillation iteration", "heatmap": "Method x evaluation network",
    "cost": "Cost: distillation and evaluation time, peak memory",
}
#: (points, labels) of the real training clouds an artifact was distilled from, given its manifest
RealLoader = Callable[[dict], tuple | None]


@dataclass
class ReportOptions:
    title: str = "ddbench report"
    std: str = "nets"
    metric: str = "oa"
    published: str | None = "all"
    baseline: str = "random"
    alpha: float = 0.05
    galleries: bool = True
    per_class: int = 2
    real_per_class: int = 2
    max_classes: int = 10
    up: str = "z"
    dpi: int = 90


def read_inputs(results_dirs: Sequence[str | Path]) -> tuple[list[CellRecord], list[dict]]:
    """Every cell record under the directories (each file once) and each directory's provenance."""
    cells, seen, provenance = [], set(), []
    for root in map(Path, results_dirs):
        here, bad = read_cells(root)
        fresh = [c for c in here if Path(c.path).resolve() not in seen]
        seen |= {Path(c.path).resolve() for c in fresh}
        cells += fresh
        provenance.append(directory_provenance(root, here, bad))
    return cells, provenance


def _comparisons(cells: list[CellRecord], labels: Labels, opts: ReportOptions) -> list[dict]:
    """Every method against the random baseline of the same cell."""
    draws = draw_frame(final_tidy(cells), opts.metric)
    if draws.empty or opts.baseline not in set(draws["method"]):
        return []
    base = draws[draws["method"] == opts.baseline]
    rows = []
    for method in sorted(set(draws["method"]) - {opts.baseline} - set(labels.full_data)):
        comps = compare_draws(draws[draws["method"] == method], base,
                              variant_label(labels.display_name("method", method)),
                              variant_label(labels.display_name("method", opts.baseline)), alpha=opts.alpha)
        rows += comparison_rows(comps, labels, opts.alpha)
    return rows


def _plots(cells: list[CellRecord], labels: Labels, opts: ReportOptions) -> list[dict]:
    from ddbench.reports.plots import all_figures, png_bytes

    published = load_published(None if opts.published == "all" else opts.published) if opts.published else None
    figs = all_figures(final_tidy(cells, final=False), opts.std, opts.metric, published, labels)
    return [{"kind": k, "title": PLOT_TITLES[k], "uri": data_uri(png_bytes(f, opts.dpi))} for k, f in figs.items()]


def _gallery(path: Path, cell_ids: list[str], real_loader: RealLoader | None, opts: ReportOptions) -> dict:
    from ddbench.reports.gallery import artifact_figures
    from ddbench.reports.plots import png_bytes
    from ddbench.synthetic.artifact import load_artifact

    entry = {"artifact": path.name, "title": path.name, "cells": cell_ids, "images": [], "note": ""}
    try:
        synth, manifest = load_artifact(path)
    except ArtifactError as err:
        entry["note"] = f"not rendered: {err}"
        return entry
    real = None
    if real_loader is not None:
        try:
            real = real_loader(manifest)
        except (DataError, OSError, ValueError) as err:
            entry["note"] = f"real clouds not shown: {err}"
    figs = artifact_figures(synth, manifest, real, opts.up, opts.per_class, opts.real_per_class,
                            max_classes=opts.max_classes)
    entry["title"] = (f"{manifest.get('method')} on {manifest.get('dataset')}, PPC {manifest.get('ppc')}, "
                      f"draw seed {manifest.get('seed')}")
    entry["images"] = [{"caption": k, "uri": data_uri(png_bytes(f, opts.dpi))} for k, f in figs.items()]
    return entry


def _galleries(cells: list[CellRecord], real_loader: RealLoader | None, opts: ReportOptions) -> list[dict]:
    by_artifact: dict[Path, list[str]] = {}
    for cell_id, path in sorted(artifact_paths(cells).items()):
        by_artifact.setdefault(path, []).append(cell_id)
    return [_gallery(p, ids, real_loader, opts) for p, ids in sorted(by_artifact.items(), key=lambda kv: kv[0].name)]


def report_context(results_dirs: Sequence[str | Path], labels: Labels = Labels(), opts: ReportOptions | None = None,
                   real_loader: RealLoader | None = None) -> dict:
    """Everything the template shows, as plain values."""
    from ddbench import __version__

    opts = opts or ReportOptions()
    cells, provenance = read_inputs(results_dirs)
    labels = Labels(labels.display_names, frozenset(c.method for c in cells if c.method_role == "full_data"))
    tables = build_tables([str(d) for d in results_dirs], opts.metric, opts.std, 1, opts.published, labels=labels,
                          significant=True, alpha=opts.alpha, cells=cells)
    return {
        "title": opts.title, "version": __version__, "generated": time.strftime("%Y-%m-%d %H:%M %Z"),
        "inputs": [str(d) for d in results_dirs], "std": opts.std, "alpha": opts.alpha, "baseline": opts.baseline,
        "tables": [table_view(t) for t in tables],
        "metrics": metrics_view(metrics_frame(cells, opts.metric, opts.baseline), labels, opts.std),
        "comparisons": _comparisons(cells, labels, opts),
        "plots": _plots(cells, labels, opts),
        "galleries": _galleries(cells, real_loader, opts) if opts.galleries else [],
        "provenance": provenance,
        "cells": cell_rows(cells),
    }


def render_html(context: dict) -> str:
    import jinja2

    text = resources.files("ddbench.reports").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    return env.from_string(text).render(**context)


def build_report(results_dirs: Sequence[str | Path], out_dir: str | Path, labels: Labels = Labels(),
                 opts: ReportOptions | None = None, real_loader: RealLoader | None = None) -> Path:
    """Write ``out_dir/report.html``; returns its path."""
    from ddbench.io import atomic_path

    html = render_html(report_context(results_dirs, labels, opts, real_loader))
    out = Path(out_dir) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return out
