"""Turning release files into prepared tensors: a base class for file-backed datasets and the reduction of
clouds of any size to a fixed number of points."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from ddbench.data.base import Dataset, DatasetConfig
from ddbench.data.cloudset import PointCloudSet
from ddbench.data.paths import resolve_data_root
from ddbench.data.transforms import normalize_unit_sphere
from ddbench.errors import DataError
from ddbench.io import sha256_file
from ddbench.ops.sampling import farthest_point_sample

log = logging.getLogger(__name__)

#: config fields that do not change the prepared tensors (kept out of the cache key)
NON_CONTENT_FIELDS = {"verify_checksums", "check_sizes", "folder", "rotation", "rotation_seed", "canonical"}


def reduce_clouds(
    clouds: list[np.ndarray], n: int, method: str = "fps", seed: int = 0, pad: bool = False, what: str = "a cloud"
) -> np.ndarray:
    """Clouds (P_i, C) of any sizes -> (M, n, C). Columns after xyz (normals, part labels) follow their points.

    ``fps``: farthest point sampling on xyz from point 0 (deterministic); ``first``: the first n points. A cloud
    with fewer than n points is an error, unless ``pad``: then it keeps all its points and repeats randomly drawn
    ones (seeded) to reach n.
    """
    if not clouds:
        return np.zeros((0, n, 3), np.float32)
    width = clouds[0].shape[1]
    out = np.empty((len(clouds), n, width), dtype=np.float32)
    rng = np.random.default_rng(seed)
    by_size: dict[int, list[int]] = {}
    for i, c in enumerate(clouds):
        if c.shape[1] != width:
            raise DataError(f"clouds with {c.shape[1]} and {width} columns cannot be prepared together")
        by_size.setdefault(len(c), []).append(i)
    for size, idx in by_size.items():
        if size < n and not pad:
            raise DataError(
                f"{what} has {size} points, fewer than the {n} requested; lower the dataset's `points` option"
            )
        group = np.stack([clouds[i] for i in idx])
        if size < n:
            extra = rng.integers(0, size, size=(len(idx), n - size))
            repeated = np.take_along_axis(group, extra[..., None].repeat(width, -1), axis=1)
            out[idx] = np.concatenate([group, repeated], axis=1)
        elif size == n or method == "first":
            out[idx] = group[:, :n]
        else:
            sel = farthest_point_sample(torch.from_numpy(np.ascontiguousarray(group[..., :3])), n).numpy()
            out[idx] = np.take_along_axis(group, sel[..., None].repeat(width, -1), axis=1)
    return out


def normalize_np(points: np.ndarray) -> np.ndarray:
    return normalize_unit_sphere(torch.from_numpy(np.ascontiguousarray(points))).numpy()


def verify_sha256sums(folder: Path, names: set[str]) -> None:
    """Check the files ``names`` against ``folder/SHA256SUMS`` when that file exists."""
    sums = folder / "SHA256SUMS"
    if not sums.exists():
        return
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        digest, fname = parts[0], parts[1].lstrip("*")
        if fname not in names:
            continue
        actual = sha256_file(folder / fname)
        if actual != digest:
            raise DataError(
                f"checksum mismatch for {folder / fname} (expected {digest[:12]}..., got {actual[:12]}...); "
                "the file is corrupt or from another release: download it again"
            )


class ReleaseConfig(DatasetConfig):
    """Options every dataset prepared from an official release has (defaults: the reference preparation)."""

    points: int = Field(1024, gt=0, description="points per cloud after preparation")
    subsample: Literal["fps", "first"] = Field(
        "fps", description="how larger clouds are reduced: farthest point sampling, or the first points"
    )
    normalize: bool = Field(True, description="centre and scale every cloud to the unit sphere")
    folder: str | None = Field(None, description="release folder under the data root (default: search)")
    verify_checksums: bool = Field(True, description="check SHA256SUMS (when present) before preparing")
    check_sizes: bool = Field(True, description="require the official split sizes")


class PreparedDataset(Dataset):
    """A dataset read from release files under the data root and prepared once into the cache.

    Subclasses set ``releases`` (kind -> folder names to look for, in order of preference), implement
    :meth:`source_files` (the files a split reads, for the cache fingerprint) and :meth:`prepare` (read and
    reduce a split; returns ``points``, ``labels`` and optionally ``point_labels`` and ``ids``).
    """

    #: release kind -> folder names under the data root
    releases: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: how to get the data, shown when it is missing
    how_to_get: ClassVar[str] = ""
    #: release kind -> what its folder holds (named in the missing-data error)
    release_contents: ClassVar[dict[str, str]] = {}

    @property
    def root(self) -> Path:
        return self.data_root if self.data_root is not None else resolve_data_root()

    def find_release(self) -> tuple[str, Path] | None:
        """(kind, folder) of the first release present (the configured ``source``/``folder`` if given)."""
        wanted = getattr(self.config, "source", "auto")
        kinds = list(self.releases) if wanted in (None, "auto") else [wanted]
        explicit = getattr(self.config, "folder", None)
        for kind in kinds:
            if explicit:
                path = Path(explicit) if Path(explicit).is_absolute() else self.root / explicit
                if path.is_dir() and self.looks_like(kind, path):
                    return kind, path
                continue
            for name in self.releases[kind]:
                if (self.root / name).is_dir() and self.looks_like(kind, self.root / name):
                    return kind, self.root / name
        return None

    def looks_like(self, kind: str, folder: Path) -> bool:
        """Whether ``folder`` holds a ``kind`` release (overridden where folder names are ambiguous)."""
        return True

    def availability(self) -> tuple[bool, str]:
        found = self.find_release()
        if found is None:
            wanted = getattr(self.config, "source", "auto")
            kinds = list(self.releases) if wanted in (None, "auto") else [wanted]
            looked = getattr(self.config, "folder", None) or " or ".join(
                f"{'/ or '.join(self.releases[k])}/" + (f" ({self.release_contents[k]})" if k in self.release_contents else "")
                for k in kinds)
            return False, (
                f"{self.display_name or self.name} not found under {self.root}: expected {looked}; pass "
                f"--data-root DIR or set DDBENCH_DATA=DIR, or run `ddbench data fetch {self.name}` / "
                f"`ddbench data import {self.name} PATH`. {self.how_to_get}".strip()
            )
        kind, folder = found
        problem = self.check_release(kind, folder)
        if problem:
            return False, problem
        return True, f"{folder} ({kind})"

    def check_release(self, kind: str, folder: Path) -> str:
        """An explanation when a found release folder lacks required files, else ''."""
        return ""

    def source_files(self, kind: str, folder: Path, split: str) -> list[Path]:
        raise NotImplementedError

    def prepare(self, kind: str, folder: Path, split: str) -> dict[str, Any]:
        raise NotImplementedError

    #: release kind -> how its clouds are sampled (recorded with every result)
    release_sampling: ClassVar[dict[str, str]] = {
        "hdf5": "as stored in the release's HDF5 files",
        "text": "the release's point files (e.g. the 10k-point normal-resampled release)",
        "off": "sampled from the release's meshes by ddbench",
    }

    def release_record(self) -> dict:
        """Which release was read, how its clouds were sampled, and the sha256 of its source files."""
        from ddbench.data.catalog import KNOWN_FILES

        found = self.find_release()
        if found is None:
            return {}
        kind, folder = found
        files = {str(f.relative_to(folder)): sha256_file(f) for split in ("train", "test")
                 for f in self.source_files(kind, folder, split) if f.is_file()}
        known = sorted({KNOWN_FILES[d] for d in files.values() if d in KNOWN_FILES})
        cfg = self.config
        sampling = self.release_sampling.get(kind, kind)
        reduced = f"{sampling}; reduced to {getattr(cfg, 'points', '?')} points by {getattr(cfg, 'subsample', '?')}"
        return {"release": kind, "folder": str(folder), "sampling": "; ".join(known) or reduced,
                "catalogued": bool(known), "files_sha256": files}

    def fingerprint(self) -> dict:
        found = self.find_release()
        if found is None:
            return {}
        kind, folder = found
        files = {}
        for split in ("train", "test"):
            for f in self.source_files(kind, folder, split):
                st = f.stat() if f.exists() else None
                files[str(f.relative_to(folder))] = [st.st_size, st.st_mtime_ns] if st else None
        return {"folder": str(folder), "release": kind, "files": files}

    def _load(self, split: str) -> PointCloudSet:
        kind, folder = self.find_release()
        files = self.source_files(kind, folder, split)
        key = {
            "dataset": self.name, "version": self.version, "split": split, "release": kind,
            "config": self.config.model_dump(mode="json", exclude=NON_CONTENT_FIELDS & set(type(self.config).model_fields)),
            "files": {str(f.relative_to(folder)): [f.stat().st_size, f.stat().st_mtime_ns] if f.exists() else None
                      for f in files},
        }
        data = self.cache.get_or_build(f"{self.name}-{split}", key, lambda: self._prepare_checked(kind, folder, split))
        return PointCloudSet(
            data["points"], data["labels"], self.class_names(), name=f"{self.name}/{split}",
            meta={"folder": str(folder), "release": kind}, ids=data.get("ids"),
            point_labels=data.get("point_labels"),
        )

    def _prepare_checked(self, kind: str, folder: Path, split: str) -> dict[str, Any]:
        if getattr(self.config, "verify_checksums", False):
            verify_sha256sums(folder, {f.name for f in self.source_files(kind, folder, split)})
        log.info("preparing %s %s from %s (%s release)", self.name, split, folder, kind)
        out = self.prepare(kind, folder, split)
        out["points"] = torch.from_numpy(np.ascontiguousarray(out["points"], dtype=np.float32))
        out["labels"] = torch.as_tensor(out["labels"], dtype=torch.int64)
        if out.get("point_labels") is not None:
            out["point_labels"] = torch.as_tensor(out["point_labels"], dtype=torch.int64)
        return out
