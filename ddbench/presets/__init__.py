"""Table presets: published tables as data (see :mod:`ddbench.presets.base`)."""

from ddbench.presets.base import Preset

__all__ = ["Preset"]
