"""The report commands: ``ddbench plot``, ``render``, ``report`` and ``compare`` (docs/reports.md).

Thin wrappers: display names come from the pipeline (the one reader of the registry), real clouds from the
pipeline's ``open_dataset``; everything else is ``ddbench.reports``. Heavy libraries are imported inside the
commands, so that ``ddbench --help`` stays fast. Registered on the main app by ``ddbench.cli.app``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ddbench.errors import ConfigError

reports_app = typer.Typer()
err_console = Console(stderr=True)

ResultsOption = Annotated[str, typer.Option(help="Results directory to read, or several, comma-separated.")]
StdOption = Annotated[str, typer.Option(help="Error bars / spread: nets (over evaluation nets, the papers' ±) or draws (over draw seeds).")]
MetricOption = Annotated[str, typer.Option(help="oa (overall accuracy) or macc (mean class accuracy).")]


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConfigError(f"empty list {text!r}; give comma-separated names")
    return names


def _check(std: str, metric: str) -> None:
    if std not in ("nets", "draws"):
        raise ConfigError(f"--std must be nets or draws, got {std!r}")
    if metric not in ("oa", "macc"):
        raise ConfigError(f"--metric must be oa or macc, got {metric!r}")


def _labels(cells):
    from ddbench.pipeline import table_labels
    from ddbench.tables.layouts import Labels

    names = table_labels().display_names
    return Labels(names, frozenset(c.method for c in cells if c.method_role == "full_data"))


def _published(source: str | None):
    from ddbench.tables.layouts import load_published

    if not source or source == "none":
        return None
    return load_published(None if source == "all" else source)


def real_loader(data_root: str | None, cache_dir: str | None):
    """A loader of the real training clouds an artifact was distilled from (from its manifest), one dataset
    load per dataset and config."""
    import json

    loaded: dict[str, tuple] = {}

    def load(manifest: dict):
        from ddbench.pipeline import open_dataset

        key = json.dumps([manifest.get("dataset"), manifest.get("dataset_config")], sort_keys=True, default=str)
        if key not in loaded:
            dataset = open_dataset(manifest["dataset"], manifest.get("dataset_config") or {}, data_root, cache_dir)
            train = dataset.load("train")
            loaded[key] = (train.points, train.labels)
        return loaded[key]

    return load


# -- plot ----------------------------------------------------------------------------------------------------------


@reports_app.command()
def plot(
    kind: Annotated[str, typer.Argument(help="ppc, storage, iteration, heatmap, cost, or all.")] = "all",
    results: ResultsOption = "results/runs",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="File (.png, .svg, .pdf) for one plot; a directory for all (default plots/).")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="png, svg or pdf, for the files written into a directory.")] = "png",
    std: StdOption = "nets",
    metric: MetricOption = "oa",
    published: Annotated[str, typer.Option(help="Overlay published numbers (ppc plot): SOURCE (e.g. sadm2025), all, or none.")] = "all",
    datasets: Annotated[Optional[str], typer.Option(help="Only these datasets.")] = None,
    methods: Annotated[Optional[str], typer.Option(help="Only these methods.")] = None,
    dpi: Annotated[int, typer.Option(help="Resolution of PNG files.")] = 150,
) -> None:
    """Plot the results: accuracy vs PPC (published numbers overlaid), vs storage, vs iteration; method x
    evaluation-network heat map; cost panel."""
    from ddbench.reports.frames import final_tidy
    from ddbench.reports.plots import FORMATS, KINDS, all_figures, save_figure
    from ddbench.tables import read_cells

    _check(std, metric)
    kinds = KINDS if kind == "all" else tuple(_names(kind))
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    cells, _ = read_cells(_names(results))
    tidy = final_tidy(cells, final=False)
    if datasets:
        tidy = tidy[tidy["dataset"].isin(_names(datasets))]
    if methods:
        tidy = tidy[tidy["method"].isin(_names(methods))]
    figs = all_figures(tidy, std, metric, _published(published), _labels(cells), kinds)
    out = out or Path("plots")
    one_file = len(figs) == 1 and out.suffix.lstrip(".").lower() in FORMATS
    for name, fig in figs.items():
        path = save_figure(fig, out if one_file else out / f"{name}.{format}", dpi)
        err_console.print(f"wrote {path}")


# -- render --------------------------------------------------------------------------------------------------------


@reports_app.command()
def render(
    artifact: Annotated[Path, typer.Argument(help="Artifact (.h5 or .manifest.json).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Gallery file (.png, .svg, .pdf); further views are written beside it (NAME_resolutions, NAME_anchors). Default: ARTIFACT's name, .png, here.")] = None,
    real: Annotated[bool, typer.Option("--real/--no-real", help="Show real training clouds of each class beside the synthetic ones (needs the dataset).")] = True,
    per_class: Annotated[int, typer.Option(help="Synthetic clouds shown per class.")] = 2,
    real_per_class: Annotated[int, typer.Option(help="Real clouds shown per class.")] = 2,
    classes: Annotated[Optional[str], typer.Option(help="Only these classes (names, comma-separated).")] = None,
    max_classes: Annotated[int, typer.Option(help="At most this many classes (rows).")] = 10,
    resolutions: Annotated[str, typer.Option(help="Generator artifacts: the resolutions shown.")] = "256,1024,4096",
    up: Annotated[str, typer.Option(help="The vertical axis of the clouds (x, y or z; ModelNet in ddbench: z).")] = "z",
    data_root: Annotated[Optional[str], typer.Option(help="Data root, for the real clouds.")] = None,
    cache_dir: Annotated[Optional[str], typer.Option(help="Prepared-data cache.")] = None,
    dpi: Annotated[int, typer.Option(help="Resolution of PNG files.")] = 150,
) -> None:
    """Render a synthetic set: a per-class gallery beside real clouds of the class; a generator at several
    resolutions; anchors and morphs."""
    from ddbench.errors import DDBenchError
    from ddbench.reports.gallery import AXES, artifact_figures
    from ddbench.reports.plots import save_figure
    from ddbench.synthetic.artifact import load_artifact

    if up not in AXES:
        raise ConfigError(f"--up must be x, y or z, got {up!r}")
    try:
        sizes = tuple(int(n) for n in _names(resolutions))
    except ValueError:
        raise ConfigError(f"--resolutions must be comma-separated integers, got {resolutions!r}") from None
    synth, manifest = load_artifact(artifact)
    clouds = None
    if real:
        try:
            clouds = real_loader(data_root, cache_dir)(manifest)
        except (DDBenchError, OSError) as err:
            err_console.print(f"[yellow]real clouds not shown:[/] {err}", highlight=False)
    figs = artifact_figures(synth, manifest, clouds, up, per_class, real_per_class, _names(classes), max_classes,
                            sizes)
    base = out or Path(artifact.name.split(".")[0] + ".png")
    for name, fig in figs.items():
        path = base if name == "gallery" else base.with_name(f"{base.stem}_{name}{base.suffix}")
        err_console.print(f"wrote {save_figure(fig, path, dpi)}")


# -- report --------------------------------------------------------------------------------------------------------


@reports_app.command()
def report(
    results: Annotated[list[str], typer.Option(help="Results directory (repeat it, list several after it, or comma-separate them).")],
    more: Annotated[Optional[list[str]], typer.Argument(help="Further results directories.", show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write report.html into.")] = Path("report"),
    title: Annotated[str, typer.Option(help="Title of the page.")] = "ddbench report",
    std: StdOption = "nets",
    metric: MetricOption = "oa",
    published: Annotated[str, typer.Option(help="Published rows and overlays: SOURCE, all, or none.")] = "all",
    baseline: Annotated[str, typer.Option(help="The method other methods are compared with (gain over random).")] = "random",
    galleries: Annotated[bool, typer.Option("--galleries/--no-galleries", help="Render every artifact.")] = True,
    real: Annotated[bool, typer.Option("--real/--no-real", help="Real clouds beside the synthetic ones (needs the data).")] = True,
    max_classes: Annotated[int, typer.Option(help="Classes per gallery.")] = 10,
    up: Annotated[str, typer.Option(help="Vertical axis of the clouds.")] = "z",
    data_root: Annotated[Optional[str], typer.Option(help="Data root, for the real clouds.")] = None,
    cache_dir: Annotated[Optional[str], typer.Option(help="Prepared-data cache.")] = None,
) -> None:
    """Write one static, self-contained HTML page (opens offline): tables with significance, metrics, every
    plot, galleries of every artifact, provenance and every cell."""
    from ddbench.reports.report import ReportOptions, build_report, read_inputs

    _check(std, metric)
    dirs = [d for r in [*results, *(more or [])] for d in _names(r)]
    opts = ReportOptions(title=title, std=std, metric=metric, published=None if published == "none" else published,
                         baseline=baseline, galleries=galleries, max_classes=max_classes, up=up)
    labels = _labels(read_inputs(dirs)[0])
    path = build_report(dirs, out, labels, opts, real_loader(data_root, cache_dir) if real else None)
    err_console.print(f"wrote {path}")


# -- compare -------------------------------------------------------------------------------------------------------


def _compare_frames(a: str, b: str, results: str, method: str | None, metric: str):
    """(draws of A, draws of B, label of A, label of B) for methods A and B in ``results`` or for directories A
    and B (their common methods, or ``method``)."""
    from ddbench.errors import DDBenchError
    from ddbench.reports.compare import variant_label
    from ddbench.reports.frames import draw_frame, final_tidy
    from ddbench.tables import read_cells

    if Path(a).is_dir() and Path(b).is_dir():
        cells_a, cells_b = read_cells(a)[0], read_cells(b)[0]
        labels = _labels(cells_a + cells_b)
        da, db = draw_frame(final_tidy(cells_a), metric), draw_frame(final_tidy(cells_b), metric)
        common = sorted(set(da.get("method", [])) & set(db.get("method", [])))
        chosen = [method] if method else common
        if not chosen or any(m not in common for m in chosen):
            raise DDBenchError(f"no method in both {a} and {b}" if not method else
                               f"{method} is not in both directories (common: {', '.join(common) or 'none'})")
        da, db = da[da["method"].isin(chosen)], db[db["method"].isin(chosen)]
        return da, db, labels, (lambda v: variant_label(f"{labels.display_name('method', v['method'])} [{a}]")(v),
                                lambda v: variant_label(f"{labels.display_name('method', v['method'])} [{b}]")(v))
    cells = read_cells(_names(results))[0]
    labels = _labels(cells)
    draws = draw_frame(final_tidy(cells), metric)
    present = sorted(set(draws.get("method", [])))
    for m in (a, b):
        if m not in present:
            raise DDBenchError(f"{m!r} is neither a directory nor a method with finished cells under {results} "
                               f"(methods there: {', '.join(present) or 'none'})")
    return (draws[draws["method"] == a], draws[draws["method"] == b], labels,
            (variant_label(labels.display_name("method", a), labels), variant_label(labels.display_name("method", b))))


@reports_app.command()
def compare(
    a: Annotated[str, typer.Argument(help="A method in --results, or a results directory.")],
    b: Annotated[str, typer.Argument(help="Another method, or another results directory.")],
    results: ResultsOption = "results/runs",
    method: Annotated[Optional[str], typer.Option(help="Two directories: compare only this method (default: every method in both).")] = None,
    metric: MetricOption = "oa",
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    format: Annotated[str, typer.Option("--format", "-f", help="markdown, csv or json.")] = "markdown",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file.")] = None,
) -> None:
    """Compare two methods (or two results directories) cell by cell: Welch's t-test, Mann-Whitney U, paired
    tests over shared draw seeds, a bootstrap CI of the difference; the draw is the unit when there are several."""
    from ddbench.errors import DDBenchError
    from ddbench.io import atomic_path
    from ddbench.reports.compare import compare_draws, render_comparisons

    _check("nets", metric)
    if format not in ("markdown", "csv", "json"):
        raise ConfigError(f"--format must be markdown, csv or json, got {format!r}")
    da, db, labels, (label_a, label_b) = _compare_frames(a, b, results, method, metric)
    comparisons = compare_draws(da, db, label_a, label_b, alpha=alpha)
    if not comparisons:
        raise DDBenchError(f"{a} and {b} share no cell (same dataset, PPC, protocol, evaluation network, "
                           "selection, data and evaluation settings)")
    text = render_comparisons(comparisons, format, labels, alpha)
    if output:
        with atomic_path(output) as tmp:
            tmp.write_text(text)
        err_console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)
