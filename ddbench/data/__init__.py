"""Data layer: the point-cloud set type, transforms, datasets, data roots and the prepared cache.

Opening a registered dataset by name is the resolution layer's job: :func:`ddbench.pipeline.open_dataset`.
``PointCloudSet`` is imported on first use, so that light modules such as :mod:`ddbench.data.paths` load without
torch (docs/plugins.md#how-fast-a-listing-answers)."""

__all__ = ["PointCloudSet"]


def __getattr__(name: str):
    if name == "PointCloudSet":
        from ddbench.data.cloudset import PointCloudSet

        return PointCloudSet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
