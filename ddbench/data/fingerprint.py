"""What data a result was computed on: a content fingerprint of the prepared train and test sets, and a record of
the release and its sampling (docs/results.md#the-data-a-cell-was-computed-on).

The fingerprint hashes the tensors a method and an evaluation actually see (points, labels, per-point labels),
after every preparation step, so a cell computed on other clouds (another release, another sampling, a jittered
copy) is never taken for the same cell.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ddbench.data.cloudset import PointCloudSet


def _update(h, tensor) -> None:
    array = np.ascontiguousarray(tensor.detach().cpu().numpy())
    h.update(f"{array.dtype}{array.shape}".encode())
    h.update(array.tobytes())


def content_fingerprint(train: PointCloudSet, test: PointCloudSet) -> str:
    """sha256 (24 hex digits) over both splits' points, labels and per-point labels."""
    h = hashlib.sha256()
    for split in (train, test):
        _update(h, split.points)
        _update(h, split.labels)
        if split.point_labels is not None:
            _update(h, split.point_labels)
    return h.hexdigest()[:24]
