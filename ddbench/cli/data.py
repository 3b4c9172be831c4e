"""``ddbench data``: list, fetch, import, verify and inspect datasets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from ddbench.errors import DDBenchError

data_app = typer.Typer(help="List, fetch, import, verify and inspect datasets.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True)

DataRoot = Annotated[Optional[str], typer.Option(help="Data root (default $DDBENCH_DATA).")]
CacheDir = Annotated[Optional[str], typer.Option(help="Prepared-data cache (default $DDBENCH_CACHE).")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="KEY=VALUE dataset option, e.g. variant=obj_bg.")]


def _dataset(name: str, data_root: str | None, cache_dir: str | None, options: list[str] | None = None):
    from ddbench.config import parse_scalar
    from ddbench.errors import ConfigError
    from ddbench.pipeline import open_dataset

    values = {}
    for item in options or []:
        if "=" not in item:
            raise ConfigError(f"cannot read --set {item!r}; write KEY=VALUE")
        key, value = item.split("=", 1)
        values[key.strip()] = parse_scalar(value)
    return open_dataset(name, values, data_root, cache_dir)


def _root(data_root: str | None) -> Path:
    from ddbench.data.paths import resolve_data_root

    return resolve_data_root(data_root)


@data_app.command("list")
def list_datasets(data_root: DataRoot = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every known dataset: present or not, where, and its official archives."""
    from ddbench.pipeline.components import dataset_classes

    rows = []
    for name, cls, source in dataset_classes():
        present, where = cls(None, _root(data_root), None).availability()
        rows.append({"name": name, "present": present, "where": where if present else "",
                     "archives": [a.filename for a in cls.archives], "source": source})
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    t = Table(title=f"datasets (data root {_root(data_root)})")
    for col in ("name", "present", "where", "official archives"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["name"], "[green]yes[/]" if r["present"] else "[red]no[/]", r["where"], ", ".join(r["archives"]))
    out.print(t)


@data_app.command()
def fetch(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    data_root: DataRoot = None,
    url: Annotated[Optional[str], typer.Option(help="Download from this address (or file:// path) instead.")] = None,
    archive: Annotated[Optional[str], typer.Option(help="Which official archive (file name), if several.")] = None,
    keep_archive: Annotated[bool, typer.Option("--keep-archive", help="Keep the downloaded archive.")] = False,
) -> None:
    """Download an official archive (resuming a partial download), verify its checksum and extract it."""
    from ddbench.data.fetch import choose_archive
    from ddbench.data.fetch import fetch as do_fetch
    from ddbench.pipeline.components import dataset_class

    dataset_class(name)
    choose_archive(name, url, archive)  # fail before drawing a progress bar
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=err) as progress:
        task = progress.add_task(f"fetching {name}", total=None)
        entry = do_fetch(name, _root(data_root), url, archive,
                         lambda done, total, desc: progress.update(task, completed=done, total=total,
                                                                   description=desc),
                         keep_archive)
    out.print(f"fetched {entry['filename']} (sha256 {entry['sha256'][:16]}...), created {', '.join(entry['created'])}")


@data_app.command("import")
def import_(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    path: Annotated[Path, typer.Argument(help="An official archive (.zip/.tar) or its extracted folder.")],
    data_root: DataRoot = None,
    link: Annotated[bool, typer.Option("--link", help="Symlink a folder instead of copying it.")] = False,
) -> None:
    """Take an archive or folder you already have: checksum, extract or copy under the data root, record it."""
    from ddbench.data.fetch import import_data
    from ddbench.pipeline.components import dataset_class

    cls = dataset_class(name)
    entry = import_data(name, path, _root(data_root), link)
    present, where = cls(None, _root(data_root), None).availability()
    out.print(f"imported {entry['filename']} -> {', '.join(entry['created'])}; "
              f"{name} is {'present: ' + where if present else 'still missing: ' + where}")
    if not present:
        raise typer.Exit(1)


@data_app.command()
def verify(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    data_root: DataRoot = None,
    cache_dir: CacheDir = None,
    set_: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check a dataset: files, checksums, split sizes, shapes, labels, NaN/inf, scale. Exit 1 on any failure."""
    from ddbench.data.inspect import verify_dataset

    ds = _dataset(name, data_root, cache_dir, set_)
    checks = verify_dataset(ds, _root(data_root))
    if as_json:
        sys.stdout.write(json.dumps([vars(c) for c in checks], indent=2) + "\n")
    else:
        t = Table(title=f"verify {name}")
        for col in ("check", "result", "detail"):
            t.add_column(col, overflow="fold")
        for c in checks:
            t.add_row(c.name, "[green]ok[/]" if c.ok else "[red]FAIL[/]", c.detail)
        out.print(t)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@data_app.command()
def info(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    data_root: DataRoot = None,
    cache_dir: CacheDir = None,
    set_: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Classes, split sizes, points per cloud and a per-class count table."""
    from ddbench.data.inspect import dataset_info

    ds = _dataset(name, data_root, cache_dir, set_)
    inf = dataset_info(ds)
    if as_json:
        sys.stdout.write(json.dumps(inf, indent=2) + "\n")
        return
    if not inf["present"]:
        raise DDBenchError(inf["where"])
    out.print(f"{inf['display_name'] or name} v{inf['version']}: {len(inf['classes'])} classes, "
              + ", ".join(f"{s} {v['clouds']} clouds x {v['points']} points" for s, v in inf["splits"].items())
              + f"; from {inf['where']}")
    t = Table(title="clouds per class")
    for col in ("class", "train", "test"):
        t.add_column(col, justify="right" if col != "class" else "left")
    for k, cls in enumerate(inf["classes"]):
        t.add_row(cls, str(inf["splits"]["train"]["per_class"][k]), str(inf["splits"]["test"]["per_class"][k]))
    t.add_row("[bold]total", str(inf["splits"]["train"]["clouds"]), str(inf["splits"]["test"]["clouds"]))
    out.print(t)
