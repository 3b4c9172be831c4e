"""Datasets released as one point-cloud file per object in category folders: OmniObject3D and MVPNet100.

Neither release comes with a classification train/test split, and the distillation papers that mention these
datasets did not publish the split they used. ddbench therefore splits every category deterministically: an
object goes to the test split when ``crc32(f"{split_seed}:{relative path}") / 2**32 < test_fraction`` (20% by
default), which is stable when objects are added. ``split_file`` (lines ``<relative path> train|test``) replaces
it with any published or private split. Classes are the category folders, sorted.

- ``omniobject3d``: the point clouds of OmniObject3D (Wu et al., CVPR 2023), ``<root>/<resolution>/<category>/
  <object>/pcd_<resolution>.ply`` with resolution 1024, 4096 or 16384
  (https://opendatalab.com/OpenXD-OmniObject3D-New/download).
- ``mvpnet100``: point clouds of MVPNet (MVImgNet's dense reconstructions), as category folders of ``.ply``,
  ``.npy`` or ``.txt`` files, the 100-category subset; obtain it through the MVImgNet authors
  (https://github.com/GAP-LAB-CUHK-SZ/MVImgNet).
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from ddbench.data.catalog import CATALOG
from ddbench.data.formats import read_npy_cloud, read_ply_vertices, read_text_cloud
from ddbench.data.prepare import PreparedDataset, ReleaseConfig, normalize_np, reduce_clouds
from ddbench.errors import DataError

READERS = {".ply": read_ply_vertices, ".npy": read_npy_cloud, ".txt": lambda p: read_text_cloud(p, 3)[:, :3],
           ".xyz": lambda p: read_text_cloud(p, 3)[:, :3]}


class FolderCloudsConfig(ReleaseConfig):
    pad: bool = Field(False, description="repeat random points of objects with fewer points than requested")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of every category in the test split")
    split_seed: int = Field(0, ge=0, description="seed of the deterministic split")
    split_file: str | None = Field(None, description="lines '<relative path> train|test' replacing the split")


class _FolderClouds(PreparedDataset):
    Config = FolderCloudsConfig
    benchmark = True

    def cloud_root(self, folder: Path) -> Path:
        return folder

    def _categories(self, folder: Path) -> list[str]:
        root = self.cloud_root(folder)
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    def class_names(self) -> list[str]:
        found = self.find_release()
        names = self._categories(found[1]) if found else []
        if not names:
            raise DataError(f"{self.display_name}: no category folders found; {self.availability()[1]}")
        return names

    def looks_like(self, kind: str, folder: Path) -> bool:
        return bool(self._categories(folder))

    def _files(self, folder: Path) -> list[Path]:
        root = self.cloud_root(folder)
        return sorted(p for c in self._categories(folder) for p in (root / c).rglob("*") if p.suffix in READERS)

    def _split_of(self, rel: str, table: dict[str, str] | None) -> str:
        if table is not None:
            if rel not in table:
                raise DataError(f"{self.config.split_file} does not list {rel}; list every object or none")
            return table[rel]
        return "test" if zlib.crc32(f"{self.config.split_seed}:{rel}".encode()) / 2**32 < self.config.test_fraction else "train"

    def _split_table(self) -> dict[str, str] | None:
        if not self.config.split_file:
            return None
        path = Path(self.config.split_file)
        if not path.exists():
            raise DataError(f"split file {path} does not exist")
        table = {}
        for ln in path.read_text().splitlines():
            parts = ln.split()
            if len(parts) == 2 and parts[1] in ("train", "test"):
                table[parts[0]] = parts[1]
            elif ln.strip():
                raise DataError(f"{path}: cannot read line {ln!r}; write '<relative path> train|test'")
        return table

    def source_files(self, kind: str, folder: Path, split: str) -> list[Path]:
        root, table = self.cloud_root(folder), self._split_table()
        return [f for f in self._files(folder) if self._split_of(str(f.relative_to(root)), table) == split]

    def prepare(self, kind: str, folder: Path, split: str) -> dict[str, Any]:
        root, names = self.cloud_root(folder), self._categories(folder)
        clouds, labels, ids = [], [], []
        for f in self.source_files(kind, folder, split):
            rel = f.relative_to(root)
            clouds.append(READERS[f.suffix](f))
            labels.append(names.index(rel.parts[0]))
            ids.append(str(rel))
        if not clouds:
            raise DataError(f"{self.display_name}: the {split} split of {root} is empty")
        cfg = self.config
        points = reduce_clouds(clouds, cfg.points, cfg.subsample, pad=cfg.pad, what=f"{self.name} {split}")
        if cfg.normalize:
            points = normalize_np(points)
        return {"points": points, "labels": labels, "ids": ids}


class OmniObject3DConfig(FolderCloudsConfig):
    resolution: Literal[1024, 4096, 16384] = Field(1024, description="which released point-cloud resolution to read")


class OmniObject3D(_FolderClouds):
    """OmniObject3D point clouds (category folders of pcd_<n>.ply); seeded 80/20 split per category."""

    name = "omniobject3d"
    version = "1"
    display_name = "OmniObject3D"
    Config = OmniObject3DConfig
    archives = CATALOG["omniobject3d"]
    releases: ClassVar[dict[str, tuple[str, ...]]] = {
        "ply": ("OmniObject3D/point_clouds", "OmniObject3D", "omniobject3d")}
    release_contents = {"ply": "<1024|4096|16384>/<category>/<object>/pcd_<n>.ply"}
    how_to_get = "Sign up at https://opendatalab.com/OpenXD-OmniObject3D-New/download and import the point clouds."

    def cloud_root(self, folder: Path) -> Path:
        return folder / str(self.config.resolution)


class MVPNet100(_FolderClouds):
    """MVPNet100 point clouds (100 category folders); seeded 80/20 split per category."""

    name = "mvpnet100"
    version = "1"
    display_name = "MVPNet100"
    archives = CATALOG["mvpnet100"]
    releases: ClassVar[dict[str, tuple[str, ...]]] = {"files": ("MVPNet100", "MVPNet", "mvpnet")}
    release_contents = {"files": "<category>/**/*.ply|npy|txt"}
    how_to_get = "MVPNet is distributed by the MVImgNet authors: https://github.com/GAP-LAB-CUHK-SZ/MVImgNet"
