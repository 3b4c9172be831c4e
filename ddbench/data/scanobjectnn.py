"""ScanObjectNN (Uy et al., ICCV 2019) from its official ``h5_files`` release.

Variants (``variant`` option), all 15 classes, 2048 points per object reduced to 1024:

| variant | files | train / test |
| --- | --- | --- |
| ``obj_only`` (OBJ_ONLY) | ``main_split_nobg/{training,test}_objectdataset.h5`` | 2309 / 581 |
| ``obj_bg`` (OBJ_BG) | ``main_split/{training,test}_objectdataset.h5`` | 2309 / 581 |
| ``pb_t50_rs`` (PB_T50_RS, the hardest) | ``main_split/{training,test}_objectdataset_augmentedrot_scale75.h5`` | 11416 / 2882 |

The default is ``pb_t50_rs``, the variant most recent papers report as "ScanObjectNN"; SADM's Table 1 does not
name its variant, so check your comparison. The release is distributed on request by its authors
(https://hkust-vgd.github.io/scanobjectnn/): import it with ``ddbench data import scanobjectnn PATH``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from ddbench.data.catalog import CATALOG
from ddbench.data.formats import read_h5
from ddbench.data.prepare import PreparedDataset, ReleaseConfig, normalize_np, reduce_clouds
from ddbench.errors import DataError

SCANOBJECTNN_CLASSES = (
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table", "bed", "pillow",
    "sink", "sofa", "toilet",
)

VARIANTS = {
    "obj_only": ("main_split_nobg", ""),
    "obj_bg": ("main_split", ""),
    "pb_t50_rs": ("main_split", "_augmentedrot_scale75"),
}
VARIANT_SIZES = {"obj_only": (2309, 581), "obj_bg": (2309, 581), "pb_t50_rs": (11416, 2882)}


class ScanObjectNNConfig(ReleaseConfig):
    variant: Literal["obj_only", "obj_bg", "pb_t50_rs"] = Field("pb_t50_rs", description="which release variant")


class ScanObjectNN(PreparedDataset):
    """ScanObjectNN (15 classes; OBJ_ONLY, OBJ_BG or PB_T50_RS) from the official h5 files."""

    name = "scanobjectnn"
    family = "scanobjectnn"
    version = "1"
    display_name = "ScanObjectNN"
    Config = ScanObjectNNConfig
    archives = CATALOG["scanobjectnn"]
    releases: ClassVar[dict[str, tuple[str, ...]]] = {"h5": ("h5_files", "ScanObjectNN/h5_files", "ScanObjectNN")}
    release_contents = {"h5": "main_split/ and main_split_nobg/ with training_/test_objectdataset*.h5"}
    how_to_get = "The h5 files are distributed on request by the authors: https://hkust-vgd.github.io/scanobjectnn/"

    @property
    def expected_sizes(self) -> dict[str, tuple[int, ...]]:  # type: ignore[override]
        train, test = VARIANT_SIZES[self.config.variant]
        return {"train": (train,), "test": (test,)}

    def class_names(self) -> list[str]:
        return list(SCANOBJECTNN_CLASSES)

    def looks_like(self, kind: str, folder: Path) -> bool:
        return (folder / "main_split").is_dir() or (folder / "main_split_nobg").is_dir()

    def _file(self, folder: Path, split: str) -> Path:
        sub, suffix = VARIANTS[self.config.variant]
        stem = "training" if split == "train" else "test"
        return folder / sub / f"{stem}_objectdataset{suffix}.h5"

    def check_release(self, kind: str, folder: Path) -> str:
        missing = [str(self._file(folder, s).relative_to(folder)) for s in ("train", "test")
                   if not self._file(folder, s).exists()]
        if missing:
            return f"{folder} lacks {', '.join(missing)} (variant {self.config.variant}); import the full h5_files release"
        return ""

    def source_files(self, kind: str, folder: Path, split: str) -> list[Path]:
        return [self._file(folder, split)]

    def prepare(self, kind: str, folder: Path, split: str) -> dict[str, Any]:
        path = self._file(folder, split)
        arrays = read_h5(path)
        labels = arrays["label"]
        if labels.size and (labels.min() < 0 or labels.max() >= len(SCANOBJECTNN_CLASSES)):
            raise DataError(f"{path}: labels outside 0..14; this is not a ScanObjectNN file")
        cfg = self.config
        points = reduce_clouds(list(arrays["data"]), cfg.points, cfg.subsample, what=str(path))
        if cfg.normalize:
            points = normalize_np(points)
        return {"points": points, "labels": labels, "ids": [f"{path.stem}:{i}" for i in range(len(labels))]}
