"""Data layer: the point-cloud set type, transforms, datasets, data roots and the prepared cache.

Opening a registered dataset by name is the resolution layer's job: :func:`ddbench.pipeline.open_dataset`."""

from ddbench.data.cloudset import PointCloudSet

__all__ = ["PointCloudSet"]
