"""The point-cloud set type used at every interface: (M, N, 3) float32 clouds, int64 labels, class names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ddbench.errors import DataError


@dataclass
class PointCloudSet:
    """A labelled set of point clouds.

    ``points`` is (M, N, 3) float32, ``labels`` is (M,) int64 with values in ``range(len(class_names))``.
    Optional: ``ids`` names every cloud's source shape (e.g. ``chair_0001``), ``point_labels`` (M, N) int64 holds
    per-point part labels (segmentation datasets). Construction validates shapes, dtypes, label range and
    finiteness, so that a bad file is reported where it is read rather than deep inside training.
    """

    points: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    name: str = ""
    meta: dict = field(default_factory=dict)
    ids: tuple[str, ...] | None = None
    point_labels: torch.Tensor | None = None

    def __post_init__(self) -> None:
        what = self.name or "point-cloud set"
        if isinstance(self.points, np.ndarray):
            self.points = torch.from_numpy(np.ascontiguousarray(self.points))
        if isinstance(self.labels, np.ndarray):
            self.labels = torch.from_numpy(np.ascontiguousarray(self.labels))
        if self.points.dim() != 3 or self.points.shape[-1] != 3:
            raise DataError(f"{what}: points must have shape (M, N, 3), got {tuple(self.points.shape)}")
        if not self.points.is_floating_point():
            raise DataError(f"{what}: points must be floating point, got {self.points.dtype}")
        self.points = self.points.to(torch.float32)
        self.labels = self.labels.reshape(-1).to(torch.int64)
        if self.labels.shape[0] != self.points.shape[0]:
            raise DataError(
                f"{what}: {self.points.shape[0]} clouds but {self.labels.shape[0]} labels; they must match"
            )
        self.class_names = tuple(self.class_names)
        k = len(self.class_names)
        if k == 0:
            raise DataError(f"{what}: no class names given")
        if self.labels.numel() and (int(self.labels.min()) < 0 or int(self.labels.max()) >= k):
            raise DataError(
                f"{what}: labels must lie in [0, {k - 1}] for {k} classes, found "
                f"[{int(self.labels.min())}, {int(self.labels.max())}]"
            )
        if self.ids is not None:
            self.ids = tuple(self.ids)
            if len(self.ids) != len(self.labels):
                raise DataError(f"{what}: {len(self.ids)} ids for {len(self.labels)} clouds")
        if self.point_labels is not None:
            if isinstance(self.point_labels, np.ndarray):
                self.point_labels = torch.from_numpy(np.ascontiguousarray(self.point_labels))
            self.point_labels = self.point_labels.to(torch.int64)
            if tuple(self.point_labels.shape) != tuple(self.points.shape[:2]):
                raise DataError(
                    f"{what}: point labels {tuple(self.point_labels.shape)} do not match points {tuple(self.points.shape[:2])}"
                )
        if not torch.isfinite(self.points).all():
            bad = int((~torch.isfinite(self.points)).any(-1).any(-1).sum())
            raise DataError(f"{what}: {bad} clouds contain NaN or infinite coordinates; fix or drop them")

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_points(self) -> int:
        return int(self.points.shape[1])

    def indices_of_class(self, k: int) -> torch.Tensor:
        return torch.nonzero(self.labels == k, as_tuple=False).reshape(-1)

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, indices: Sequence[int] | torch.Tensor, name: str | None = None) -> "PointCloudSet":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return PointCloudSet(
            self.points[idx], self.labels[idx], self.class_names, name or self.name, dict(self.meta),
            ids=tuple(self.ids[i] for i in idx.tolist()) if self.ids is not None else None,
            point_labels=self.point_labels[idx] if self.point_labels is not None else None,
        )

    def to(self, device: torch.device | str) -> "PointCloudSet":
        return PointCloudSet(
            self.points.to(device), self.labels.to(device), self.class_names, self.name, dict(self.meta),
            ids=self.ids, point_labels=self.point_labels.to(device) if self.point_labels is not None else None,
        )

    def class_batch_indices(self, k: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """Indices of ``n`` clouds of class ``k`` drawn without replacement (with replacement when the class is
        smaller)."""
        idx = self.indices_of_class(k)
        if len(idx) == 0:
            raise DataError(f"{self.name}: class {self.class_names[k]!r} has no clouds")
        if len(idx) >= n:
            return idx[torch.randperm(len(idx), generator=generator)[:n]]
        return idx[torch.randint(len(idx), (n,), generator=generator)]

    def class_batch(self, k: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """The clouds of :meth:`class_batch_indices` (same draw for the same generator state)."""
        return self.points[self.class_batch_indices(k, n, generator).to(self.points.device)]


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled mini-batch indices. A final batch of one cloud is merged into the previous batch, because
    BatchNorm cannot normalise a single sample in train mode."""
    perm = torch.randperm(n, generator=generator)
    batches = list(perm.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        last = batches.pop()
        batches[-1] = torch.cat([batches[-1], last])
    return batches
