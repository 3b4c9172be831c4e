"""The dataset plugin interface."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import torch
from pydantic import Field

from ddbench.config import ComponentConfig
from ddbench.data.cache import PreparedCache
from ddbench.data.catalog import Archive
from ddbench.data.cloudset import PointCloudSet
from ddbench.errors import DataError
from ddbench.registry import Component

SPLITS = ("train", "test")


class DatasetConfig(ComponentConfig):
    """Options every dataset has: the setting it is served in (DD3D's aligned / rotated study)."""

    rotation: Literal["aligned", "rotated"] = Field(
        "aligned", description="rotated: every train and test cloud gets its own random rotation in SO(3)"
    )
    rotation_seed: int = Field(0, ge=0, description="seed of the rotations (per split)")
    canonical: Literal["none", "pca"] = Field(
        "none", description="pca: PCA-canonicalise every cloud (sign fix of DD3D's released code) after rotating"
    )


def setting_suffix(config) -> str:
    """'' for the aligned setting, '_rotated', '_pca' or '_rotated_pca' otherwise (used in result labels)."""
    out = "_rotated" if getattr(config, "rotation", "aligned") == "rotated" else ""
    return out + ("_pca" if getattr(config, "canonical", "none") == "pca" else "")


class Dataset(Component):
    """Base class of dataset plugins.

    Subclasses set ``name``, ``version``, ``Config``, ``display_name`` (and ``family`` where one applies) and
    implement :meth:`class_names`, :meth:`availability` and :meth:`_load`. ``benchmark = False`` keeps a dataset
    out of ``--datasets all``.
    """

    kind: ClassVar[str] = "dataset"
    display_name: ClassVar[str] = ""
    #: which published family of settings the dataset belongs to, e.g. ``modelnet10``; methods whose reference
    #: settings differ by family read it (through ``DistillContext.dataset_family``: DD3D's w0, 3DDP's preset),
    #: never the dataset's name, so that a renamed copy or a variant of a dataset declares the family it follows.
    #: "" (the default): no published family, the methods' defaults apply
    family: ClassVar[str] = ""
    benchmark: ClassVar[bool] = True
    #: accepted sizes per split (several where official releases differ); a mismatch is an error unless the
    #: config sets ``check_sizes=false``
    expected_sizes: ClassVar[dict[str, tuple[int, ...]] | None] = None
    #: the official archives (with published checksums where they exist), see ddbench/data/catalog.py
    archives: ClassVar[tuple[Archive, ...]] = ()

    def __init__(
        self,
        config: ComponentConfig | None = None,
        data_root: Path | None = None,
        cache_dir: Path | None = None,
    ):
        self.config = config if config is not None else self.Config()
        self.data_root = Path(data_root) if data_root is not None else None
        self.cache = PreparedCache(cache_dir)
        self._loaded: dict[str, PointCloudSet] = {}

    # -- to implement -------------------------------------------------------------------------------------
    def class_names(self) -> list[str]:
        raise NotImplementedError

    def availability(self) -> tuple[bool, str]:
        """(present, explanation). The explanation says where the data was looked for and how to get it."""
        return True, "built in"

    def _load(self, split: str) -> PointCloudSet:
        raise NotImplementedError

    def fingerprint(self) -> dict:
        """Identity of the source data (recorded with results)."""
        return {}

    # -- shared -------------------------------------------------------------------------------------------
    def load(self, split: str) -> PointCloudSet:
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        if split not in self._loaded:
            ok, why = self.availability()
            if not ok:
                raise DataError(why)
            data = self._load(split)
            self._check_size(split, data)
            self._loaded[split] = self._apply_setting(data, split)
        return self._loaded[split]

    def _apply_setting(self, data: PointCloudSet, split: str) -> PointCloudSet:
        """Rotate (seeded, one rotation per cloud) and/or canonicalise, after the prepared cache."""
        cfg = self.config
        rotated, canonical = getattr(cfg, "rotation", "aligned") == "rotated", getattr(cfg, "canonical", "none") == "pca"
        if not (rotated or canonical):
            return data
        from ddbench.ops.canonical import pca_canonicalise
        from ddbench.ops.rotation import apply_rotation, random_rotation_matrices

        points = data.points
        if rotated:
            gen = torch.Generator().manual_seed(cfg.rotation_seed * 2 + SPLITS.index(split))
            points = apply_rotation(points, random_rotation_matrices(len(points), gen))
        if canonical:
            points = pca_canonicalise(points, "sin")
        return PointCloudSet(points, data.labels, data.class_names, data.name, {**data.meta, "setting": setting_suffix(cfg)},
                             ids=data.ids, point_labels=data.point_labels)

    def _check_size(self, split: str, data: PointCloudSet) -> None:
        if self.expected_sizes is None or not getattr(self.config, "check_sizes", True):
            return
        expected = self.expected_sizes.get(split)
        if expected and len(data) not in expected:
            raise DataError(
                f"{self.name} {split} split has {len(data)} clouds, expected "
                f"{' or '.join(map(str, expected))}; the files are "
                f"incomplete or from another release (set {self.name}.check_sizes=false to accept them)"
            )

    def describe_data(self) -> dict:
        return {"name": self.name, "version": self.version, "config": self.config.model_dump(mode="json")}
