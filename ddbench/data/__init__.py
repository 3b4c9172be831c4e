"""Data layer: the point-cloud set type, transforms, datasets, data roots and the prepared cache."""

from ddbench.data.cloudset import PointCloudSet

__all__ = ["PointCloudSet", "open_dataset"]


def open_dataset(name: str, config: dict | None = None, data_root=None, cache_dir=None):
    """Instantiate the registered dataset ``name`` with ``config`` overrides."""
    from ddbench.data.paths import resolve_cache_dir, resolve_data_root
    from ddbench.plugins import get_component

    info = get_component("dataset", name)
    return info.cls(
        info.make_config(config), resolve_data_root(data_root), resolve_cache_dir(cache_dir)
    )
