"""ModelNet10 / ModelNet40 from their three official releases.

- ``hdf5``: PointNet's HDF5 layout (``modelnet40_ply_hdf5_2048/``; the shared ``modelnet10_hdf5_1024/`` uses the
  same schema): ``shape_names.txt``, ``{train,test}_files.txt`` listing ``ply_data_*.h5`` files with ``data``
  (n, P, 3) and ``label`` (n, 1); ``ply_data_*_id2file.json`` name each row's source shape. ModelNet10's classes,
  with their official split, are filtered out of a ModelNet40 release when no ModelNet10 folder is there.
- ``normal_resampled``: ``modelnet40_normal_resampled/`` (10,000 points with normals per shape, text):
  ``modelnet{10,40}_shape_names.txt``, ``modelnet{10,40}_{train,test}.txt`` (shape ids) and
  ``<class>/<shape id>.txt`` rows ``x,y,z,nx,ny,nz``. Reduced to 1024 points by FPS (the field's convention).
- ``off``: the Princeton meshes ``ModelNet10/<class>/{train,test}/<class>_NNNN.off``; points are sampled on the
  surface with probability proportional to face area (``surface_points`` per shape, seeded per shape), then
  reduced by FPS. ModelNet's known malformed headers (``OFF490 518 0``) are read.

All three give the same classes in the same (official, alphabetical) order and the same split sizes.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ddbench.data.catalog import CATALOG
from ddbench.data.formats import read_h5, read_off, read_text_cloud, sample_mesh_surface
from ddbench.data.prepare import PreparedDataset, ReleaseConfig, normalize_np, reduce_clouds
from ddbench.errors import DataError

MODELNET40_URL = "https://shapenet.cs.stanford.edu/media/modelnet40_ply_hdf5_2048.zip"

MODELNET10_CLASSES = (
    "bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa", "table", "toilet",
)
MODELNET40_CLASSES = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone", "cup",
    "curtain", "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard", "lamp", "laptop",
    "mantel", "monitor", "night_stand", "person", "piano", "plant", "radio", "range_hood", "sink", "sofa",
    "stairs", "stool", "table", "tent", "toilet", "tv_stand", "vase", "wardrobe", "xbox",
)


class ModelNetConfig(ReleaseConfig):
    source: Literal["auto", "hdf5", "normal_resampled", "off"] = Field(
        "auto", description="which release to read (auto: the first present, in this order)"
    )
    surface_points: int = Field(10000, gt=0, description="points sampled on each OFF mesh before FPS")
    sampling_seed: int = Field(0, ge=0, description="seed of the OFF surface sampling (per shape: seed + shape id)")


def shape_class(shape_id: str) -> str:
    """``night_stand_0012`` -> ``night_stand``."""
    return shape_id.rsplit("_", 1)[0]


class _ModelNet(PreparedDataset):
    """Shared ModelNet reader; subclasses set the classes, the folders and the split-file prefix."""

    Config = ModelNetConfig
    classes: ClassVar[tuple[str, ...]] = ()
    prefix: ClassVar[str] = ""  # modelnet10 / modelnet40: names the split files of the text release
    how_to_get = f"PointNet's HDF5 release: {MODELNET40_URL}"
    release_contents = {
        "hdf5": "shape_names.txt, train_files.txt, test_files.txt and the ply_data_*.h5 files they list",
        "normal_resampled": "modelnet*_{train,test}.txt and <class>/<shape id>.txt",
        "off": "<class>/{train,test}/<shape id>.off",
    }

    def class_names(self) -> list[str]:
        return list(self.classes)

    def looks_like(self, kind: str, folder: Path) -> bool:
        if kind == "hdf5":
            return (folder / "train_files.txt").exists() or (folder / "shape_names.txt").exists()
        if kind == "normal_resampled":
            return (folder / f"{self.prefix}_train.txt").exists()
        return any((folder / c / "train").is_dir() for c in self.classes)

    def check_release(self, kind: str, folder: Path) -> str:
        need = {"hdf5": ["shape_names.txt", "train_files.txt", "test_files.txt"],
                "normal_resampled": [f"{self.prefix}_train.txt", f"{self.prefix}_test.txt"],
                "off": []}[kind]
        missing = [f for f in need if not (folder / f).exists()]
        if missing:
            return f"{folder} lacks {', '.join(missing)}; re-extract the {self.display_name} {kind} release"
        return ""

    # -- which files a split reads ------------------------------------------------------------------------------
    def _h5_files(self, folder: Path, split: str) -> list[Path]:
        lines = [ln.strip() for ln in (folder / f"{split}_files.txt").read_text().splitlines() if ln.strip()]
        return [folder / Path(ln).name for ln in lines]

    def _text_ids(self, folder: Path, split: str) -> list[str]:
        return [ln.strip() for ln in (folder / f"{self.prefix}_{split}.txt").read_text().splitlines() if ln.strip()]

    def _off_files(self, folder: Path, split: str) -> list[Path]:
        return sorted(f for c in self.classes for f in (folder / c / split).glob("*.off"))

    def source_files(self, kind: str, folder: Path, split: str) -> list[Path]:
        if kind == "hdf5":
            return self._h5_files(folder, split)
        if kind == "normal_resampled":
            return [folder / shape_class(i) / f"{i}.txt" for i in self._text_ids(folder, split)]
        return self._off_files(folder, split)

    # -- preparation -------------------------------------------------------------------------------------------
    def prepare(self, kind: str, folder: Path, split: str) -> dict[str, Any]:
        reader = {"hdf5": self._prepare_h5, "normal_resampled": self._prepare_text, "off": self._prepare_off}[kind]
        clouds, labels, ids = reader(folder, split)
        cfg = self.config
        points = reduce_clouds(clouds, cfg.points, cfg.subsample, what=f"{self.name} {split} ({folder})")
        if cfg.normalize:
            points = normalize_np(points)
        return {"points": points, "labels": np.asarray(labels, dtype=np.int64), "ids": ids}

    def _label_of(self, name: str, where: Path) -> int | None:
        """Index of class ``name`` in this dataset; None for a superset class this dataset does not have."""
        if name in self.classes:
            return self.classes.index(name)
        if self.prefix == "modelnet10" and name in MODELNET40_CLASSES:
            return None
        raise DataError(f"{where}: unknown class {name!r} for {self.display_name}; point {self.name}.folder at the right release")

    def _prepare_h5(self, folder: Path, split: str):
        names = [ln.strip() for ln in (folder / "shape_names.txt").read_text().splitlines() if ln.strip()]
        if len(names) < len(self.classes) or not set(self.classes) <= set(names):
            raise DataError(
                f"{folder}/shape_names.txt lists {len(names)} classes that do not include {self.display_name}'s "
                f"{len(self.classes)} classes; point {self.name}.folder at the right release"
            )
        clouds, labels, ids = [], [], []
        for i, f in enumerate(self._h5_files(folder, split)):
            arrays = read_h5(f)
            if arrays["label"].size and (arrays["label"].min() < 0 or arrays["label"].max() >= len(names)):
                raise DataError(f"{f}: labels out of range for the {len(names)} names in shape_names.txt")
            id_file = folder / f"ply_data_{split}_{i}_id2file.json"
            file_ids = ([Path(p).stem for p in json.loads(id_file.read_text())] if id_file.exists()
                        else [f"{f.stem}:{j}" for j in range(len(arrays["label"]))])
            for cloud, lab, sid in zip(arrays["data"], arrays["label"], file_ids):
                k = self._label_of(names[lab], f)
                if k is not None:
                    clouds.append(cloud)
                    labels.append(k)
                    ids.append(sid)
        return clouds, labels, ids

    def _prepare_text(self, folder: Path, split: str):
        clouds, labels, ids = [], [], []
        for sid in self._text_ids(folder, split):
            cls = shape_class(sid)
            if cls not in self.classes:
                raise DataError(f"{folder}/{self.prefix}_{split}.txt lists {sid!r}, whose class {cls!r} is unknown")
            clouds.append(read_text_cloud(folder / cls / f"{sid}.txt", columns=3)[:, :3])
            labels.append(self.classes.index(cls))
            ids.append(sid)
        return clouds, labels, ids

    def _prepare_off(self, folder: Path, split: str):
        clouds, labels, ids = [], [], []
        for f in self._off_files(folder, split):
            verts, tris = read_off(f)
            rng = np.random.default_rng([self.config.sampling_seed, zlib.crc32(f.stem.encode())])
            clouds.append(sample_mesh_surface(verts, tris, self.config.surface_points, rng, f))
            labels.append(self.classes.index(f.parent.parent.name))
            ids.append(f.stem)
        return clouds, labels, ids


class ModelNet10(_ModelNet):
    """ModelNet10 (10 classes, 3991/908) from the HDF5, normal-resampled text or Princeton OFF release."""

    name = "modelnet10"
    family = "modelnet10"
    version = "1"
    display_name = "ModelNet10"
    classes = MODELNET10_CLASSES
    prefix = "modelnet10"
    archives = CATALOG["modelnet10"]
    releases = {
        "hdf5": ("modelnet10_hdf5_1024", "modelnet10_ply_hdf5_2048", "modelnet10_hdf5_2048",
                 "modelnet40_ply_hdf5_2048", "modelnet40_hdf5_1024"),
        "normal_resampled": ("modelnet40_normal_resampled",),
        "off": ("ModelNet10",),
    }
    expected_sizes = {"train": (3991,), "test": (908,)}


class ModelNet40(_ModelNet):
    """ModelNet40 (40 classes, 9843/2468) from the HDF5, normal-resampled text or Princeton OFF release."""

    name = "modelnet40"
    family = "modelnet40"
    version = "1"
    display_name = "ModelNet40"
    classes = MODELNET40_CLASSES
    prefix = "modelnet40"
    archives = CATALOG["modelnet40"]
    releases = {
        "hdf5": ("modelnet40_ply_hdf5_2048", "modelnet40_hdf5_1024"),
        "normal_resampled": ("modelnet40_normal_resampled",),
        "off": ("ModelNet40",),
    }
    # the official split is 9843/2468; PointNet's HDF5 release lacks 3 training shapes (9840)
    expected_sizes = {"train": (9843, 9840), "test": (2468,)}
