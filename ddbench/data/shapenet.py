"""ShapeNet55 (the Point-BERT release of ShapeNetCore v2 point clouds) and ShapeNetPart (part segmentation).

ShapeNet55: ``ShapeNet55-34/shapenet_pc/<synset>-<model>.npy`` (8192 points each) with the split lists
``ShapeNet55-34/ShapeNet-55/{train,test}.txt``; 55 classes (sorted synset ids), 41952 / 10518 clouds. The
release is distributed by the Point-BERT authors (https://github.com/lulutang0608/Point-BERT, DATASET.md).

ShapeNetPart: ``shapenetcore_partanno_segmentation_benchmark_v0_normal/`` with ``synsetoffset2category.txt``,
``<synset>/<model>.txt`` rows ``x y z nx ny nz part`` and the official split
``train_test_split/shuffled_{train,val,test}_file_list.json``: 16 categories, 50 parts, 12137 / 1870 / 2874
shapes. ddbench trains on ``train + val`` (``train_splits``: 14007 shapes) and tests on ``test``; the per-point
part labels (global part ids 0..49, consecutive over the categories in :data:`SHAPENETPART_PARTS` order) are kept
as ``point_labels`` for the segmentation task and follow their points through padding, FPS and normalisation
(DD3D's Table 2 uses 2,048 points: ``points=2048``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ddbench.data.catalog import CATALOG
from ddbench.data.formats import read_npy_cloud, read_text_cloud
from ddbench.data.prepare import PreparedDataset, ReleaseConfig, normalize_np, reduce_clouds
from ddbench.errors import DataError

#: ShapeNetCore v2 synset ids of the 55 categories, with their usual names (display only)
SHAPENET55_SYNSETS = {
    "02691156": "airplane", "02747177": "trash_bin", "02773838": "bag", "02801938": "basket",
    "02808440": "bathtub", "02818832": "bed", "02828884": "bench", "02843684": "birdhouse",
    "02871439": "bookshelf", "02876657": "bottle", "02880940": "bowl", "02924116": "bus", "02933112": "cabinet",
    "02942699": "camera", "02946921": "can", "02954340": "cap", "02958343": "car", "02992529": "cellphone",
    "03001627": "chair", "03046257": "clock", "03085013": "keyboard", "03207941": "dishwasher",
    "03211117": "display", "03261776": "earphone", "03325088": "faucet", "03337140": "file_cabinet",
    "03467517": "guitar", "03513137": "helmet", "03593526": "jar", "03624134": "knife", "03636649": "lamp",
    "03642806": "laptop", "03691459": "loudspeaker", "03710193": "mailbox", "03759954": "microphone",
    "03761084": "microwave", "03790512": "motorbike", "03797390": "mug", "03928116": "piano",
    "03938244": "pillow", "03948459": "pistol", "03991062": "flowerpot", "04004475": "printer",
    "04074963": "remote", "04090263": "rifle", "04099429": "rocket", "04225987": "skateboard",
    "04256520": "sofa", "04330267": "stove", "04379243": "table", "04401088": "telephone", "04460130": "tower",
    "04468005": "train", "04530566": "watercraft", "04554684": "washer",
}

#: ShapeNetPart: category -> its global part ids
SHAPENETPART_PARTS = {
    "Airplane": [0, 1, 2, 3], "Bag": [4, 5], "Cap": [6, 7], "Car": [8, 9, 10, 11], "Chair": [12, 13, 14, 15],
    "Earphone": [16, 17, 18], "Guitar": [19, 20, 21], "Knife": [22, 23], "Lamp": [24, 25, 26, 27],
    "Laptop": [28, 29], "Motorbike": [30, 31, 32, 33, 34, 35], "Mug": [36, 37], "Pistol": [38, 39, 40],
    "Rocket": [41, 42, 43], "Skateboard": [44, 45, 46], "Table": [47, 48, 49],
}


class ShapeNet55Config(ReleaseConfig):
    """The release options only (points, subsample, normalize, folder, checksums, sizes)."""


class ShapeNet55(PreparedDataset):
    """ShapeNet55 (55 ShapeNetCore v2 categories, 41952/10518) from the Point-BERT ShapeNet55-34 release."""

    name = "shapenet55"
    family = "shapenet55"
    version = "1"
    display_name = "ShapeNet55"
    Config = ShapeNet55Config
    archives = CATALOG["shapenet55"]
    releases: ClassVar[dict[str, tuple[str, ...]]] = {"npy": ("ShapeNet55-34", "ShapeNet55")}
    release_contents = {"npy": "shapenet_pc/*.npy and ShapeNet-55/{train,test}.txt"}
    how_to_get = "Distributed by the Point-BERT authors: https://github.com/lulutang0608/Point-BERT (DATASET.md)."
    expected_sizes = {"train": (41952,), "test": (10518,)}

    def class_names(self) -> list[str]:
        return [SHAPENET55_SYNSETS[s] for s in sorted(SHAPENET55_SYNSETS)]

    def looks_like(self, kind: str, folder: Path) -> bool:
        return (folder / "ShapeNet-55").is_dir()

    def check_release(self, kind: str, folder: Path) -> str:
        missing = [p for p in ("ShapeNet-55/train.txt", "ShapeNet-55/test.txt", "shapenet_pc") if not (folder / p).exists()]
        return f"{folder} lacks {', '.join(missing)}; re-extract ShapeNet55-34" if missing else ""

    def _entries(self, folder: Path, split: str) -> list[str]:
        return [ln.strip() for ln in (folder / "ShapeNet-55" / f"{split}.txt").read_text().splitlines() if ln.strip()]

    def source_files(self, kind: str, folder: Path, split: str) -> list[Path]:
        return [folder / "shapenet_pc" / e for e in self._entries(folder, split)]

    def prepare(self, kind: str, folder: Path, split: str) -> dict[str, Any]:
        synsets = sorted(SHAPENET55_SYNSETS)
        clouds, labels, ids = [], [], []
        for entry in self._entries(folder, split):
            synset = entry.split("-", 1)[0]
            if synset not in SHAPENET55_SYNSETS:
                raise DataError(f"{folder}/ShapeNet-55/{split}.txt lists {entry!r}: {synset} is not a ShapeNet55 synset")
            clouds.append(read_npy_cloud(folder / "shapenet_pc" / entry))
            labels.append(synsets.index(synset))
            ids.append(Path(entry).stem)
        cfg = self.config
        points = reduce_clouds(clouds, cfg.points, cfg.subsample, what=f"{self.name} {split}")
        if cfg.normalize:
            points = normalize_np(points)
        return {"points": points, "labels": labels, "ids": ids}


class ShapeNetPartConfig(ReleaseConfig):
    points: int = Field(1024, gt=0, description="points per shape (2048 is the segmentation convention)")
    pad: bool = Field(True, description="repeat random points of shapes with fewer points than requested")
    train_splits: list[Literal["train", "val"]] = Field(default_factory=lambda: ["train", "val"])


class ShapeNetPart(PreparedDataset):
    """ShapeNetPart (16 categories, 50 parts) with per-point part labels, official train/val/test split."""

    name = "shapenetpart"
    family = "shapenetpart"
    version = "1"
    display_name = "ShapeNetPart"
    Config = ShapeNetPartConfig
    tasks = ("classification", "segmentation")
    archives = CATALOG["shapenetpart"]
    releases: ClassVar[dict[str, tuple[str, ...]]] = {
        "text": ("shapenetcore_partanno_segmentation_benchmark_v0_normal",)}
    release_contents = {"text": "synsetoffset2category.txt, <synset>/<model>.txt and train_test_split/*.json"}
    how_to_get = ("Official archive: https://shapenet.cs.stanford.edu/media/"
                  "shapenetcore_partanno_segmentation_benchmark_v0_normal.zip")
    SPLIT_SIZES: ClassVar[dict[str, int]] = {"train": 12137, "val": 1870, "test": 2874}

    @property
    def expected_sizes(self) -> dict[str, tuple[int, ...]]:  # type: ignore[override]
        return {"train": (sum(self.SPLIT_SIZES[s] for s in self.config.train_splits),),
                "test": (self.SPLIT_SIZES["test"],)}

    def class_names(self) -> list[str]:
        return list(SHAPENETPART_PARTS)

    def category_parts(self) -> list[list[int]]:
        return [list(SHAPENETPART_PARTS[c]) for c in self.class_names()]

    def part_names(self) -> list[str]:
        """``<Category>/part<j>`` (j: the part's position within its category), in global part id order."""
        return [f"{c}/part{j}" for c in self.class_names() for j in range(len(SHAPENETPART_PARTS[c]))]

    def check_release(self, kind: str, folder: Path) -> str:
        need = ["synsetoffset2category.txt"] + [f"train_test_split/shuffled_{s}_file_list.json"
                                                for s in ("train", "val", "test")]
        missing = [p for p in need if not (folder / p).exists()]
        return f"{folder} lacks {', '.join(missing)}; re-extract the ShapeNetPart archive" if missing else ""

    def _synsets(self, folder: Path) -> dict[str, str]:
        """synset -> category, from synsetoffset2category.txt."""
        out = {}
        for ln in (folder / "synsetoffset2category.txt").read_text().splitlines():
            parts = ln.split()
            if len(parts) == 2:
                out[parts[1]] = parts[0]
        return out

    def _entries(self, folder: Path, split: str) -> list[tuple[str, str]]:
        splits = self.config.train_splits if split == "train" else ["test"]
        entries = []
        for s in splits:
            path = folder / "train_test_split" / f"shuffled_{s}_file_list.json"
            try:
                listed = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise DataError(f"{path} is not valid JSON ({err}); re-extract the archive") from None
            entries += [tuple(e.split("/")[-2:]) for e in listed]
        return entries

    def source_files(self, kind: str, folder: Path, split: str) -> list[Path]:
        return [folder / syn / f"{model}.txt" for syn, model in self._entries(folder, split)]

    def prepare(self, kind: str, folder: Path, split: str) -> dict[str, Any]:
        synsets, names = self._synsets(folder), self.class_names()
        clouds, labels, ids = [], [], []
        for syn, model in self._entries(folder, split):
            if syn not in synsets or synsets[syn] not in names:
                raise DataError(f"{folder}: split lists synset {syn} that synsetoffset2category.txt does not map")
            rows = read_text_cloud(folder / syn / f"{model}.txt", columns=7)
            parts = rows[:, 6].astype(np.int64)
            allowed = SHAPENETPART_PARTS[synsets[syn]]
            if parts.size and (parts.min() < allowed[0] or parts.max() > allowed[-1]):
                raise DataError(f"{folder / syn / model}.txt: part labels outside {allowed} for {synsets[syn]}")
            clouds.append(np.concatenate([rows[:, :3], parts[:, None].astype(np.float32)], axis=1))
            labels.append(names.index(synsets[syn]))
            ids.append(f"{syn}/{model}")
        cfg = self.config
        reduced = reduce_clouds(clouds, cfg.points, cfg.subsample, pad=cfg.pad, what=f"{self.name} {split}")
        points = reduced[..., :3]
        if cfg.normalize:
            points = normalize_np(np.ascontiguousarray(points))
        return {"points": points, "labels": labels, "ids": ids, "point_labels": reduced[..., 3].astype(np.int64)}
