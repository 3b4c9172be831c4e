"""Cached answers of ``ddbench list`` (docs/plugins.md#how-fast-a-listing-answers).

Building the registries imports torch and every plugin, which takes seconds on a small machine, while a listing
changes only when code, installed plugins or (for datasets) the data root change. The first listing of a kind
stores its rows together with a *stamp*: the modification time and size of every Python file that was imported
to build them (ddbench, its plugins and their libraries, torch included) and of ddbench's data files, the installed ``ddbench`` entry points,
the plugin environment variables, the interpreter, and for datasets the folders of the data root down to two
levels. A later listing reuses the rows only when the stamp is unchanged; anything else recomputes them. This
module imports nothing heavy, so a valid cache answers without importing torch.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from ddbench.io import stable_hash, write_json_atomic
from ddbench.plugins import ALLOW_ENV, DENY_ENV, installed_entry_points

#: bump when the stored format changes
FORMAT = 1
PACKAGE = Path(__file__).resolve().parents[1]


def cached_rows(kind: str, cache_dir: Path, compute: Callable[[], list[dict[str, Any]]],
                data_root: Path | None = None, refresh: bool = False) -> list[dict[str, Any]]:
    """The rows of ``ddbench list KIND``: from ``cache_dir`` when its stamp still holds, else (or with
    ``refresh``) ``compute()``, stored for the next listing."""
    key = _key(kind, data_root)
    path = cache_dir / "listings" / f"{stable_hash(key, 16)}.json"
    stored = None if refresh else _read(path)
    if stored is not None and stored.get("key") == key and _still_valid(stored, data_root):
        return stored["rows"]
    rows = compute()
    stamp = {"files": _module_files(), "data": _data_tree(data_root)}
    try:
        write_json_atomic(path, {"key": key, "stamp": stamp, "rows": rows})
    except OSError:  # a read-only cache only costs speed
        pass
    return rows


def _key(kind: str, data_root: Path | None) -> dict[str, Any]:
    return {
        "format": FORMAT, "kind": kind, "python": sys.executable, "version": sys.version, "path": sys.path,
        "env": {k: os.environ.get(k) for k in (ALLOW_ENV, DENY_ENV)},
        "entry_points": sorted([ep.name, ep.value, getattr(ep.dist, "name", "?"), getattr(ep.dist, "version", "?")]
                               for ep in installed_entry_points()),
        "data_root": str(data_root) if data_root is not None else None,
    }


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _still_valid(stored: dict, data_root: Path | None) -> bool:
    files = stored["stamp"]["files"]
    return all(_stat(p) == s for p, s in files.items()) and stored["stamp"]["data"] == _data_tree(data_root)


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


def _module_files() -> dict[str, list[int] | None]:
    """Modification time and size of every imported module's file, and of ddbench's data files (the published
    results a preset cites)."""
    files = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
    files |= {str(p) for p in PACKAGE.rglob("*") if p.is_file() and p.suffix not in (".pyc", ".py")}
    return {f: _stat(f) for f in sorted(f for f in files if isinstance(f, str))}


def _data_tree(data_root: Path | None) -> dict[str, list[int] | None] | None:
    """Stamps of the data root and of the folders one and two levels below it (adding or removing a file in any
    of them changes its modification time)."""
    if data_root is None:
        return None
    root = Path(data_root)
    folders = [root] + [p for p in root.glob("*") if p.is_dir()] + [p for p in root.glob("*/*") if p.is_dir()]
    return {str(p): _stat(str(p)) for p in sorted(folders)}
