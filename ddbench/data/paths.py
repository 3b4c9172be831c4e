"""Where data and prepared caches live.

Data root: ``--data-root`` > ``$DDBENCH_DATA`` > ``$XDG_DATA_HOME/ddbench`` (``~/.local/share/ddbench``).
Cache:     ``--cache-dir`` > ``$DDBENCH_CACHE`` > ``$XDG_CACHE_HOME/ddbench`` (``~/.cache/ddbench``).
"""

from __future__ import annotations

import os
from pathlib import Path


def resolve_data_root(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("DDBENCH_DATA"):
        return Path(os.environ["DDBENCH_DATA"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ddbench"


def resolve_cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("DDBENCH_CACHE"):
        return Path(os.environ["DDBENCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ddbench"
