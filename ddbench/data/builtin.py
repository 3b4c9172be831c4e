"""Built-in datasets and transforms, registered through the public hooks."""

from ddbench.data.modelnet import ModelNet10, ModelNet40
from ddbench.data.shapes import Shapes
from ddbench.data.transforms import BUILTIN_TRANSFORMS
from ddbench.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    register(Shapes)
    register(ModelNet10)
    register(ModelNet40)


@hookimpl
def register_transforms(register):
    for transform in BUILTIN_TRANSFORMS:
        register(transform)
