"""Methods: the method interface, the coreset baselines and (later) the distillation methods."""

from ddbench.methods.base import DistillContext, Method

__all__ = ["DistillContext", "Method"]
