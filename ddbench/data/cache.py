"""Prepared-tensor cache: the result of reading, subsampling and normalising a dataset, stored once.

An entry is keyed by everything that determines its content (dataset name and version, preparation
parameters, and a fingerprint of the source files). The key is stored inside the entry and compared on load,
so a change of any parameter or source file gives a new entry instead of silently stale data. A corrupt entry
is rebuilt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ddbench.io import atomic_path, stable_hash

log = logging.getLogger(__name__)


class PreparedCache:
    def __init__(self, directory: Path | None):
        self.directory = Path(directory) if directory is not None else None

    def path_for(self, prefix: str, key: dict[str, Any]) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / "prepared" / f"{prefix}-{stable_hash(key, 16)}.pt"

    def get_or_build(
        self, prefix: str, key: dict[str, Any], build: Callable[[], dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        path = self.path_for(prefix, key)
        if path is not None and path.exists():
            try:
                entry = torch.load(path, map_location="cpu", weights_only=True)
                if entry.get("key") == _jsonable(key):
                    return entry["tensors"]
                log.info("cache entry %s has a different key; rebuilding", path)
            except Exception as err:  # noqa: BLE001 - any unreadable entry is rebuilt
                log.warning("cache entry %s is unreadable (%s); rebuilding", path, err)
        tensors = build()
        if path is not None:
            try:
                with atomic_path(path) as tmp:
                    torch.save({"key": _jsonable(key), "tensors": tensors}, tmp)
            except OSError as err:
                log.warning("could not write cache entry %s (%s); continuing without cache", path, err)
        return tensors


def _jsonable(obj: Any) -> Any:
    """Normalise a key to plain JSON types so that the stored and requested keys compare equal."""
    import json

    return json.loads(json.dumps(obj, sort_keys=True, default=str))
