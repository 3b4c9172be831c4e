"""The synthetic set and its HDF5 + manifest artifact."""

from ddbench.synthetic.artifact import SyntheticSet, load_artifact, save_artifact

__all__ = ["SyntheticSet", "load_artifact", "save_artifact"]
