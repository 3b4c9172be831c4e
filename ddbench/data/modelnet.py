"""ModelNet10 / ModelNet40 in PointNet's HDF5 layout.

A release folder holds ``shape_names.txt`` (class names, one per line), ``train_files.txt`` and
``test_files.txt`` (the HDF5 files of each split, one per line, possibly with a directory prefix) and the
``ply_data_*.h5`` files they list, each with ``data`` (n, P, 3) float32 and ``label`` (n, 1) integers. An
optional ``SHA256SUMS`` file is verified when the data is first prepared.

ModelNet10's ten classes, with their official split, are also a subset of ModelNet40, so ModelNet10 can be
read from a ModelNet40 release when no ModelNet10 folder is present.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar, Literal

import h5py
import numpy as np
import torch
from pydantic import Field

from ddbench.config import ComponentConfig
from ddbench.data.base import Dataset
from ddbench.data.cloudset import PointCloudSet
from ddbench.data.paths import resolve_data_root
from ddbench.data.transforms import fps_subsample, normalize_unit_sphere
from ddbench.errors import DataError
from ddbench.io import sha256_file

log = logging.getLogger(__name__)

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


class ModelNetConfig(ComponentConfig):
    points: int = Field(1024, gt=0, description="points per cloud after preparation")
    subsample: Literal["fps", "first"] = Field(
        "fps", description="how clouds with more points are reduced: farthest point sampling or first points"
    )
    normalize: bool = Field(True, description="centre and scale every cloud to the unit sphere")
    folder: str | None = Field(None, description="release folder under the data root (default: search)")
    verify_checksums: bool = Field(True, description="check SHA256SUMS (when present) before preparing")
    check_sizes: bool = Field(True, description="require the official split sizes")


def read_h5_split(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``data`` and ``label`` of PointNet-layout HDF5 files, with one-line errors on bad files."""
    datas, labels = [], []
    for f in files:
        if not f.exists():
            raise DataError(f"data file {f} is missing; re-download or re-extract the release")
        try:
            with h5py.File(f, "r") as h5:
                if "data" not in h5 or "label" not in h5:
                    raise DataError(
                        f"{f} has no 'data'/'label' datasets (found {sorted(h5)}); it is not a PointNet HDF5 file"
                    )
                data = np.asarray(h5["data"][...], dtype=np.float32)
                label = np.asarray(h5["label"][...]).reshape(-1)
        except DataError:
            raise
        except (OSError, KeyError, ValueError, RuntimeError) as err:
            reason = " ".join(str(err).split())
            raise DataError(
                f"cannot read {f}: the file is truncated or corrupt ({reason}); delete it and download it again"
            ) from None
        if data.ndim != 3 or data.shape[-1] < 3:
            raise DataError(f"{f}: 'data' must have shape (n, P, 3), got {data.shape}")
        if label.shape[0] != data.shape[0]:
            raise DataError(f"{f}: {data.shape[0]} clouds but {label.shape[0]} labels")
        datas.append(data[..., :3])
        labels.append(label.astype(np.int64))
    if not datas:
        raise DataError("the split file lists no HDF5 files")
    return np.concatenate(datas), np.concatenate(labels)


def verify_sha256sums(folder: Path, names: set[str]) -> None:
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


class _ModelNetHDF5(Dataset):
    """Shared ModelNet HDF5 reader; subclasses set the classes and the folders to look in."""

    Config = ModelNetConfig
    classes: ClassVar[tuple[str, ...]] = ()
    folders: ClassVar[tuple[str, ...]] = ()
    #: folders holding a superset release (ModelNet40) from which these classes can be filtered
    superset_folders: ClassVar[tuple[str, ...]] = ()

    def class_names(self) -> list[str]:
        return list(self.classes)

    @property
    def root(self) -> Path:
        return self.data_root if self.data_root is not None else resolve_data_root()

    def _find_folder(self) -> tuple[Path | None, bool]:
        """(folder, is_superset)."""
        if self.config.folder:
            path = Path(self.config.folder)
            path = path if path.is_absolute() else self.root / path
            return (path if path.is_dir() else None), False
        for name in self.folders:
            if (self.root / name).is_dir():
                return self.root / name, False
        for name in self.superset_folders:
            if (self.root / name).is_dir():
                return self.root / name, True
        return None, False

    def availability(self) -> tuple[bool, str]:
        folder, _ = self._find_folder()
        looked = self.config.folder or " or ".join(f"{n}/" for n in self.folders + self.superset_folders)
        if folder is None:
            return False, (
                f"{self.display_name} not found under {self.root}: expected {looked} with shape_names.txt, "
                f"train_files.txt, test_files.txt and the ply_data_*.h5 files they list; pass --data-root DIR "
                f"or set DDBENCH_DATA=DIR (PointNet's HDF5 release: {MODELNET40_URL})"
            )
        missing = [f for f in ("shape_names.txt", "train_files.txt", "test_files.txt") if not (folder / f).exists()]
        if missing:
            return False, f"{folder} lacks {', '.join(missing)}; re-extract the {self.display_name} HDF5 release"
        return True, str(folder)

    def _split_files(self, folder: Path, split: str) -> list[Path]:
        lines = [ln.strip() for ln in (folder / f"{split}_files.txt").read_text().splitlines() if ln.strip()]
        return [folder / Path(ln).name for ln in lines]

    def fingerprint(self) -> dict:
        folder, superset = self._find_folder()
        if folder is None:
            return {}
        files = {}
        for split in ("train", "test"):
            for f in self._split_files(folder, split):
                st = f.stat() if f.exists() else None
                files[f.name] = [st.st_size, st.st_mtime_ns] if st else None
        return {"folder": str(folder), "from_superset": superset, "files": files}

    def _load(self, split: str) -> PointCloudSet:
        folder, superset = self._find_folder()
        assert folder is not None
        key = {
            "dataset": self.name,
            "version": self.version,
            "split": split,
            "config": self.config.model_dump(mode="json", exclude={"verify_checksums", "check_sizes"}),
            "source": self.fingerprint(),
        }
        tensors = self.cache.get_or_build(
            f"{self.name}-{split}", key, lambda: self._prepare(folder, split, superset)
        )
        return PointCloudSet(
            tensors["points"], tensors["labels"], self.class_names(), name=f"{self.name}/{split}",
            meta={"folder": str(folder), "from_superset": superset},
        )

    def _prepare(self, folder: Path, split: str, superset: bool) -> dict[str, torch.Tensor]:
        files = self._split_files(folder, split)
        if self.config.verify_checksums:
            verify_sha256sums(folder, {f.name for f in files})
        names = [ln.strip() for ln in (folder / "shape_names.txt").read_text().splitlines() if ln.strip()]
        data, labels = read_h5_split(files)
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise DataError(f"{folder}: labels out of range for the {len(names)} names in shape_names.txt")
        if superset:
            wanted = {n: i for i, n in enumerate(self.classes)}
            missing = [c for c in self.classes if c not in names]
            if missing:
                raise DataError(f"{folder}/shape_names.txt lacks the classes {missing}")
            file_names = np.array(names)[labels]
            keep = np.isin(file_names, list(wanted))
            data, labels = data[keep], np.array([wanted[n] for n in file_names[keep]], dtype=np.int64)
        elif names != list(self.classes):
            raise DataError(
                f"{folder}/shape_names.txt lists {len(names)} classes that are not {self.display_name}'s "
                f"{len(self.classes)} classes; point {self.name}.folder at the right release"
            )
        points = torch.from_numpy(data)
        if points.shape[1] < self.config.points:
            raise DataError(
                f"{folder}: clouds have {points.shape[1]} points, fewer than the {self.config.points} requested"
            )
        if points.shape[1] > self.config.points:
            if self.config.subsample == "fps":
                log.info("FPS %s %s: %d -> %d points", self.name, split, points.shape[1], self.config.points)
                points = fps_subsample(points, self.config.points)
            else:
                points = points[:, : self.config.points]
        if self.config.normalize:
            points = normalize_unit_sphere(points)
        return {"points": points.contiguous().float(), "labels": torch.from_numpy(labels)}


class ModelNet10(_ModelNetHDF5):
    """ModelNet10 (10 classes, 3991/908) from PointNet's HDF5 layout."""

    name = "modelnet10"
    version = "1"
    display_name = "ModelNet10"
    classes = MODELNET10_CLASSES
    folders = ("modelnet10_hdf5_1024", "modelnet10_ply_hdf5_2048", "modelnet10_hdf5_2048")
    superset_folders = ("modelnet40_ply_hdf5_2048", "modelnet40_hdf5_1024")
    expected_sizes = {"train": (3991,), "test": (908,)}


class ModelNet40(_ModelNetHDF5):
    """ModelNet40 (40 classes, 9843/2468) from PointNet's HDF5 layout."""

    name = "modelnet40"
    version = "1"
    display_name = "ModelNet40"
    classes = MODELNET40_CLASSES
    folders = ("modelnet40_ply_hdf5_2048", "modelnet40_hdf5_1024")
    # the official split is 9843/2468; PointNet's HDF5 release lacks 3 training shapes (9840)
    expected_sizes = {"train": (9843, 9840), "test": (2468,)}
