"""The ``ddbench`` command line.

Every deliberate error is a :class:`~ddbench.errors.DDBenchError` and is printed as one line
(``error: ...``) with exit status 2; tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table as RichTable

from ddbench import __version__
from ddbench.cli.data import data_app
from ddbench.cli.reports import reports_app
from ddbench.errors import ConfigError, DDBenchError

app = typer.Typer(
    name="ddbench",
    help="Benchmark suite for dataset distillation of 3D point clouds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(reports_app)  # plot, render, report, compare
out = Console(soft_wrap=True)
#: listings are tables: give them room even when stdout is not a terminal (which rich treats as 80 columns)
wide = Console(width=max(160, shutil.get_terminal_size((160, 40)).columns))
err_console = Console(stderr=True)
_DEBUG = {"on": False}

from ddbench.pipeline.overrides import KIND_ALIASES, parse_set_options  # noqa: E402 - after the app is set up

# -- helpers ---------------------------------------------------------------------------------------------------


def split_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConfigError(f"empty list {text!r}; give comma-separated names")
    return names


def split_ints(text: str | None, what: str) -> list[int] | None:
    names = split_names(text)
    if names is None:
        return None
    try:
        return [int(n) for n in names]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None


def parse_executor_options(items: list[str] | None) -> dict:
    """``--executor-opt KEY=VALUE`` items -> options; ``a.b=v`` nests (``sbatch.mail-type=END``), ``v1,v2`` is a
    list (``devices=0,1``)."""
    from ddbench.config import parse_scalar

    options: dict = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"cannot read --executor-opt {item!r}; write it as KEY=VALUE, e.g. workers=4")
        value = [parse_scalar(v) for v in text.split(",")] if "," in text else parse_scalar(text)
        *parents, leaf = [k.strip() for k in key.split(".")]
        target = options
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return options


def executor_overrides(executor: str | None, items: list[str] | None, workers: str | None,
                       file_values: dict | None) -> dict:
    """``--executor``, ``--executor-opt`` and ``--workers`` as experiment overrides."""
    from ddbench.config import parse_scalar

    options = parse_executor_options(items)
    if workers is not None:
        options["workers"] = parse_scalar(workers)
        file_executor = (file_values or {}).get("executor", "inprocess")
        file_name = file_executor.get("name", "inprocess") if isinstance(file_executor, dict) else file_executor
        if executor is None and file_name == "inprocess":
            executor = "pool"
    return {"executor": executor, "executor_config": options or None}


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_time=False, show_path=False)],
        force=True,
    )


@app.callback()
def main_callback(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    _DEBUG["on"] = debug
    _setup_logging(verbose)


@app.command()
def version() -> None:
    """Print the ddbench version."""
    out.print(f"ddbench {__version__}")


# -- run ---------------------------------------------------------------------------------------------------------


@app.command()
def run(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Experiment file (TOML or YAML).")] = None,
    preset: Annotated[Optional[str], typer.Option(help="Run a published table's grid (ddbench list presets) over the datasets present; --datasets, --methods, --ppc narrow it.")] = None,
    methods: Annotated[Optional[str], typer.Option(help="Comma-separated methods, or 'all'.")] = None,
    datasets: Annotated[Optional[str], typer.Option(help="Comma-separated datasets, or 'all' (data present).")] = None,
    ppc: Annotated[Optional[str], typer.Option(help="Clouds per class, e.g. 1,3,10.")] = None,
    budget_bytes: Annotated[Optional[str], typer.Option(help="Compare at equal storage: bytes per class, e.g. 12288,61440 (replaces --ppc).")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="Draw seeds, e.g. 0,1,2.")] = None,
    distill_backbones: Annotated[Optional[str], typer.Option(help="Backbones used by the methods.")] = None,
    eval_backbones: Annotated[Optional[str], typer.Option(help="Evaluation backbones (default: the protocol's).")] = None,
    protocol: Annotated[Optional[str], typer.Option(help="Evaluation protocol (sadm, dd3d, dd3d_seg; default: the task's).")] = None,
    task: Annotated[Optional[str], typer.Option(help="classification (default) or segmentation (docs/segmentation.md).")] = None,
    eval_nets: Annotated[Optional[int], typer.Option(help="Override the protocol's number of nets (recorded).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override the protocol's epochs (recorded).")] = None,
    iterations: Annotated[Optional[int], typer.Option(help="Override the methods' iterations (recorded).")] = None,
    eval_iterations: Annotated[Optional[str], typer.Option(help="Also evaluate iterative methods at these iterations, e.g. 0,250,500.")] = None,
    selection: Annotated[Optional[str], typer.Option(help="final (default) or best_test (test-set selection, labelled).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    eval_engine: Annotated[Optional[str], typer.Option(help="auto, sequential or ensemble: evaluation nets one after another or batched (same results; recorded).")] = None,
    ensemble_size: Annotated[Optional[int], typer.Option(help="Most evaluation nets trained at once by the ensemble engine.")] = None,
    results: Annotated[Optional[str], typer.Option(help="Results directory (default results/runs).")] = None,
    data_root: Annotated[Optional[str], typer.Option(help="Data root (default $DDBENCH_DATA).")] = None,
    cache_dir: Annotated[Optional[str], typer.Option(help="Prepared-data cache (default $DDBENCH_CACHE).")] = None,
    executor: Annotated[Optional[str], typer.Option(help="Where cells run: inprocess (default), pool, ray, slurm or a plugin (docs/running.md).")] = None,
    executor_opt: Annotated[Optional[list[str]], typer.Option("--executor-opt", help="Executor option KEY=VALUE, e.g. partition=gpu, sbatch.mail-type=END (repeatable).")] = None,
    workers: Annotated[Optional[str], typer.Option(help="Worker processes of the pool executor, or auto (implies --executor pool).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Re-run finished cells.")] = False,
    no_recompute: Annotated[bool, typer.Option("--no-recompute", help="Refuse (one-line error) instead of re-running a cell finished on other data.")] = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="COMPONENT.KEY=VALUE config override.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the cells and exit.")] = False,
) -> None:
    """Run a grid of dataset x method x PPC x backbones x seeds; finished cells are skipped."""
    if selection is not None and selection not in ("final", "best_test"):
        raise ConfigError(f"--selection must be final or best_test, got {selection!r}")
    file_values = _load_experiment_file(config) if config else None
    overrides = {
        "methods": split_names(methods), "datasets": split_names(datasets), "ppc": split_ints(ppc, "--ppc"),
        "budget_bytes": split_ints(budget_bytes, "--budget-bytes"),
        "seeds": split_ints(seeds, "--seeds"), "distill_backbones": split_names(distill_backbones),
        "eval_backbones": split_names(eval_backbones), "protocol": protocol, "task": task, "eval_nets": eval_nets,
        "epochs": epochs, "iterations": iterations, "selection": selection, "device": device,
        "eval_engine": eval_engine, "ensemble_size": ensemble_size,
        "eval_iterations": split_ints(eval_iterations, "--eval-iterations"),
        "results": results, "data_root": data_root, "cache_dir": cache_dir,
        "overwrite": overwrite or None, "no_recompute": no_recompute or None, **parse_set_options(set_),
        **executor_overrides(executor, executor_opt, workers, file_values),
    }
    experiments = _experiments(file_values, preset, overrides, config)
    if dry_run:
        for exp in experiments:
            _print_cells(exp, _plan(exp))
        return
    failed = sum(_run_experiment(exp) for exp in experiments)
    _store_listings()
    if failed:
        raise typer.Exit(code=1)


def _store_listings() -> None:
    """Store every kind's ``ddbench list`` rows while a run has the registries loaded, so that a first listing
    after it answers from the cache (docs/plugins.md#how-fast-a-listing-answers); a listing that cannot be built
    or stored is left to ``ddbench list`` itself, never a reason for the run to fail."""
    for kind in sorted(set(KIND_ALIASES.values())):
        try:
            _listing_rows(kind, None)
        except Exception:  # a convenience for a later command; the run's results are already saved
            return


def _load_experiment_file(path: Path) -> dict:
    from ddbench.pipeline import load_experiment_file

    return load_experiment_file(path)


def _experiments(file_values: dict | None, preset: str | None, overrides: dict, config: Path | None) -> list:
    """The experiment of the file and the options, or (``--preset``) one per run of the preset's table."""
    from ddbench.pipeline import build_experiment
    from ddbench.pipeline.presets import NARROWABLE, preset_experiments

    if preset is None:
        return [build_experiment(file_values, overrides)]
    if config is not None:
        raise ConfigError("--preset and --config both name a grid; give one of them")
    narrow = {axis: overrides.pop(axis) for axis in NARROWABLE}
    if narrow["datasets"] == ["all"]:
        narrow["datasets"] = None
    return preset_experiments(preset, narrow, overrides, data_root=overrides.get("data_root"))


def _plan(exp) -> list:
    from ddbench.pipeline import plan_grid

    return plan_grid(exp)


def _run_experiment(exp) -> int:
    """Run one experiment's grid; the number of failed cells."""
    from ddbench.pipeline import run_grid
    from ddbench.runner.progress import RichReporter

    try:
        summary = run_grid(exp, RichReporter(err_console))
    except KeyboardInterrupt:
        err_console.print("interrupted: finished cells are saved; run the same command again to resume")
        raise typer.Exit(code=130) from None
    return summary.failed


def _print_cells(exp, cells) -> None:
    """``--dry-run``: the cells; with the slurm executor also the sbatch script of their job array."""
    from ddbench.pipeline.run import build_executor
    from ddbench.runner.progress import describe_cell

    for cell in cells:
        out.print(f"{cell.cell_id}  ({describe_cell(cell.spec)})", highlight=False)
    out.print(f"{len(cells)} cells")
    executor = build_executor(exp) if exp.executor != "inprocess" else None
    if hasattr(executor, "sbatch_script"):
        out.print(f"sbatch script of the job array ({len(cells)} cells, finished ones included):")
        out.print(executor.sbatch_script(exp.results, exp.device, max(len(cells), 1)), highlight=False, markup=False)


# -- table / status ----------------------------------------------------------------------------------------------


@app.command()
def table(
    results: Annotated[str, typer.Option(help="Results directory to read, or several, comma-separated.")] = "results/runs",
    format: Annotated[str, typer.Option("--format", "-f", help="latex, markdown, csv (layout), tidy (one row per net), long (aggregates).")] = "markdown",
    metric: Annotated[str, typer.Option(help="oa (overall accuracy) or macc (mean class accuracy).")] = "oa",
    std: Annotated[str, typer.Option(help="nets (spread over evaluation nets, the papers' ±) or draws.")] = "nets",
    decimals: Annotated[int, typer.Option(help="Decimals shown.")] = 1,
    published: Annotated[Optional[str], typer.Option(help="Add published rows from SOURCE (e.g. sadm2025) or 'all'.")] = None,
    datasets: Annotated[Optional[str], typer.Option(help="Only these datasets.")] = None,
    methods: Annotated[Optional[str], typer.Option(help="Only these methods.")] = None,
    iteration: Annotated[Optional[int], typer.Option(help="Show iterative methods at this (intermediate) iteration instead of the final one.")] = None,
    layout: Annotated[str, typer.Option(help="methods (rows = methods, columns = dataset x PPC), backbones (rows = evaluation backbone, columns = dataset x method, per PPC) or segmentation (DD3D Table 2: columns = CPC x {OA, instance mIoU, class mIoU}; segmentation cells also appear under methods).")] = "methods",
    ppc: Annotated[Optional[str], typer.Option(help="Only these PPCs.")] = None,
    by: Annotated[str, typer.Option(help="Columns by ppc, or by budget (equal storage per class, from --budget-bytes runs).")] = "ppc",
    storage: Annotated[bool, typer.Option("--storage", help="Note each cell's stored bytes and clouds per class.")] = False,
    significant: Annotated[bool, typer.Option("--significant", help="Bold and underline only where the best is significantly better than the next (Welch's t-test, p < 0.05; the tests are noted).")] = False,
    preset: Annotated[Optional[str], typer.Option(help="Set our cells beside a published table (ddbench list presets): ours, published, difference, within ±2 std, marks.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file.")] = None,
) -> None:
    """Print the results table (derived from the cell files) in the papers' layout."""
    from ddbench.io import atomic_path
    from ddbench.pipeline import make_tables
    from ddbench.pipeline.components import preset_table
    from ddbench.tables.render import FORMATS

    if format not in (*FORMATS, "tidy", "long"):
        raise ConfigError(f"unknown --format {format!r}; use {', '.join(FORMATS)}, tidy or long")
    if std not in ("nets", "draws"):
        raise ConfigError(f"--std must be nets or draws, got {std!r}")
    if preset:
        text = preset_table(preset, split_names(results), format, decimals, split_names(datasets),
                            split_names(methods), split_ints(ppc, "--ppc"))
    else:
        text = make_tables(split_names(results), format, metric, std, decimals, published, split_names(datasets),
                           split_names(methods), iteration, layout, split_ints(ppc, "--ppc"), by, storage,
                           significant=significant)
    if output:
        with atomic_path(output) as tmp:
            tmp.write_text(text)
        err_console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


@app.command()
def status(
    results: Annotated[str, typer.Option(help="Results directory to read.")] = "results/runs",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Summarise a results directory: finished and failed cells (with the errors), cells running now (worker,
    host, since when, stage) and stale claims (their worker is gone; the next run takes them over)."""
    from ddbench.runner.claims import read_claims
    from ddbench.tables.tidy import read_cells

    cells, bad = read_cells(results)
    ok = [c for c in cells if c.status == "ok"]
    failed = [c for c in cells if c.status == "failed"]
    claims = read_claims(results) + read_claims(results, "distill")
    running = [c for c in claims if c.state == "running"]
    stale = [c for c in claims if c.state == "stale"]
    if as_json:
        sys.stdout.write(json.dumps({
            "ok": [c.cell_id for c in ok], "failed": {c.cell_id: c.error for c in failed}, "unreadable": bad,
            "running": [vars(c) for c in running], "stale": [vars(c) for c in stale]}, indent=2) + "\n")
        return
    out.print(f"{len(ok)} ok, {len(failed)} failed, {len(running)} running, {len(stale)} stale, {len(bad)} unreadable "
              f"cell files under {results}", highlight=False)
    for c in failed:
        out.print(f"[red]failed[/] {c.cell_id}: {c.error}", highlight=False)
    for c in running + stale:
        what = f"{c.kind} {c.key}" if c.kind != "cell" else c.key
        doing = f": {c.stage} {c.done}/{c.total}" if c.stage else ""
        colour = "cyan" if c.state == "running" else "yellow"
        out.print(f"[{colour}]{c.state}[/] {what} on {c.worker}@{c.host} (pid {c.pid}) since {c.since_text}{doing}",
                  highlight=False)
    for b in bad:
        out.print(f"[yellow]unreadable[/] {b}", highlight=False)


# -- list / plugins ------------------------------------------------------------------------------------------------


@app.command("list")
def list_components(
    kind: Annotated[str, typer.Argument(help="methods, backbones, datasets, protocols, executors or transforms")],
    data_root: Annotated[Optional[str], typer.Option(help="Data root, to show which datasets are present.")] = None,
    throughput: Annotated[bool, typer.Option("--throughput/--no-throughput", help="Backbones: also measure forward throughput on the device (slow).")] = False,
    device: Annotated[str, typer.Option(help="Device for the throughput measurement.")] = "auto",
    throughput_batch: Annotated[int, typer.Option(min=1, help="Clouds per timed forward pass of the throughput measurement.")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="Rebuild the listing instead of reusing the cached one.")] = False,
) -> None:
    """List installed components with versions, origin and default config (backbones: parameters, outputs).

    A listing is cached until any imported code, installed plugin or (datasets) the data root changes."""
    from ddbench.errors import UnknownNameError

    if kind not in KIND_ALIASES:
        raise UnknownNameError("component kind", kind, sorted({k for k in KIND_ALIASES if k.endswith("s")}))
    kind = KIND_ALIASES[kind]
    rows = _listing_rows(kind, data_root, refresh)
    if throughput and kind == "backbone":
        from ddbench.environment import resolve_device
        from ddbench.pipeline.components import backbone_factories

        factories, dev = backbone_factories(), resolve_device(device)
        for row in rows:
            row["forward clouds/s (1024 pts)"] = round(forward_throughput(factories[row["name"]](40), dev,
                                                                          throughput_batch), 1)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    t = RichTable(title=f"{kind}s", show_lines=True)
    for col in rows[0] if rows else ["name"]:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*[json.dumps(v) if isinstance(v, dict) else str(v) for v in row.values()])
    wide.print(t)


def _listing_rows(kind: str, data_root: str | None, refresh: bool = False) -> list[dict]:
    """The rows of ``ddbench list KIND`` (a registry kind), from the listing cache while it holds."""
    from ddbench.data.paths import resolve_cache_dir, resolve_data_root
    from ddbench.pipeline.listing_cache import cached_rows

    def compute():
        from ddbench.pipeline.components import component_rows

        return component_rows(kind, data_root)

    root = resolve_data_root(data_root) if kind == "dataset" else None
    return cached_rows(kind, resolve_cache_dir(), compute, root, refresh=refresh)


def forward_throughput(net, device, batch: int = 8, points: int = 1024) -> float:
    """Clouds per second of an eval-mode forward pass (one warm-up, then the best of two timed passes)."""
    import time

    import torch

    net = net.to(device).eval()
    x = torch.randn(batch, points, 3, device=device)
    # a segmentation network also takes each cloud's category (docs/segmentation.md)
    extra = () if "classification" in net.tasks else (torch.zeros(batch, dtype=torch.long, device=device),)
    best = float("inf")
    with torch.no_grad():
        for i in range(3):
            start = time.perf_counter()
            net(x, *extra)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                best = min(best, time.perf_counter() - start)
    return batch / best


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Show loaded, disabled and broken plugins (a broken plugin never stops ddbench)."""
    from ddbench.pipeline.components import plugin_report

    infos = plugin_report()
    if as_json:
        sys.stdout.write(json.dumps([vars(p) for p in infos], indent=2) + "\n")
        return
    t = RichTable(title="plugins", show_lines=True)
    for col in ("name", "distribution", "version", "status", "components / error"):
        t.add_column(col, overflow="fold")
    for p in infos:
        detail = p.error if p.status != "loaded" else ", ".join(f"{k}:{n}" for k, n in p.components)
        style = {"loaded": "green", "broken": "red", "disabled": "yellow"}[p.status]
        t.add_row(p.name, p.distribution, p.version, f"[{style}]{p.status}[/]", detail)
    wide.print(t)


# -- distill / eval -------------------------------------------------------------------------------------------------


@app.command()
def distill(
    method: Annotated[str, typer.Option(help="Method name.")],
    dataset: Annotated[str, typer.Option(help="Dataset name.")],
    out_path: Annotated[Path, typer.Option("--out", help="Artifact path (.h5).")],
    ppc: Annotated[int, typer.Option(help="Clouds per class.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    backbone: Annotated[Optional[str], typer.Option(help="Backbone the method uses (default: the method's own).")] = None,
    iterations: Annotated[Optional[int], typer.Option(help="Override the method's iterations.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    data_root: Annotated[Optional[str], typer.Option(help="Data root.")] = None,
    cache_dir: Annotated[Optional[str], typer.Option(help="Cache directory.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="COMPONENT.KEY=VALUE config override.")] = None,
    task: Annotated[str, typer.Option(help="classification or segmentation (docs/segmentation.md).")] = "classification",
) -> None:
    """Distil one synthetic set and save it as an artifact (HDF5 + manifest)."""
    from ddbench.pipeline import DistillRequest, distill_one

    request = DistillRequest(method, dataset, ppc, seed, backbone, iterations, device, data_root, cache_dir,
                             parse_set_options(set_), task)
    st = distill_one(request, out_path)["storage"]
    out.print(f"wrote {out_path}: {st['clouds']} clouds, {st['floats']} floats, {st['bytes']} bytes")


@app.command("eval")
def evaluate(
    artifact: Annotated[Path, typer.Argument(help="Artifact (.h5 or .manifest.json).")],
    protocol: Annotated[Optional[str], typer.Option(help="Evaluation protocol (default: the artifact's task's: sadm, dd3d_seg).")] = None,
    eval_nets: Annotated[Optional[int], typer.Option(help="Override the number of nets.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override the epochs.")] = None,
    backbone: Annotated[Optional[str], typer.Option(help="Evaluation backbone (default: the protocol's).")] = None,
    seed: Annotated[int, typer.Option(help="Draw seed for the net seeds (default: the artifact's).")] = -1,
    points: Annotated[Optional[int], typer.Option(help="Evaluate at this resolution: a generator is sampled at it, a stored set reduced to it by FPS.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    eval_engine: Annotated[str, typer.Option(help="auto, sequential or ensemble (same results; recorded).")] = "auto",
    ensemble_size: Annotated[Optional[int], typer.Option(help="Most nets trained at once by the ensemble engine.")] = None,
    data_root: Annotated[Optional[str], typer.Option(help="Data root.")] = None,
    cache_dir: Annotated[Optional[str], typer.Option(help="Cache directory.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the result JSON here.")] = None,
) -> None:
    """Evaluate a synthetic-set artifact on its dataset's test set, without the method's code."""
    from ddbench.io import write_json_atomic
    from ddbench.pipeline import EvalRequest, evaluate_one

    request = EvalRequest(artifact, protocol, eval_nets, epochs, backbone, seed, points, device, eval_engine,
                          ensemble_size, data_root, cache_dir)
    record, manifest, synth, _ = evaluate_one(request)
    result = record["results"]
    scores = [(label, key) for label, key in (("OA", "oa"), ("mAcc", "macc"), ("instance mIoU", "instance_miou"),
                                              ("class mIoU", "class_miou")) if result.get(f"{key}_mean") is not None]
    out.print(
        f"{manifest.get('method')} on {manifest.get('dataset')} (PPC {manifest.get('ppc')}, "
        f"{synth.points.shape[1]} points), protocol {record['protocol']}: "
        + ", ".join(f"{label} {result[f'{key}_mean']:.2f} ± {result[f'{key}_std']:.2f}" for label, key in scores)
        + f" over {result['num_nets']} nets (ddof={result['ddof']})",
        highlight=False,
    )
    if output:
        write_json_atomic(output, record)

def main() -> None:
    from ddbench.cli.allocator import arrange_allocator

    arrange_allocator(sys.argv[1:])
    try:
        app()
    except DDBenchError as err:
        if _DEBUG["on"]:
            raise
        err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
