"""ddbench: a benchmark suite for dataset distillation of 3D point clouds."""

from ddbench.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
