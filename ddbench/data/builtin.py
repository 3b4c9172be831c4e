"""Built-in datasets and transforms, registered through the public hooks."""

from ddbench.data.folder_clouds import MVPNet100, OmniObject3D
from ddbench.data.modelnet import ModelNet10, ModelNet40
from ddbench.data.scanobjectnn import ScanObjectNN
from ddbench.data.shapenet import ShapeNet55, ShapeNetPart
from ddbench.data.shapes import Shapes
from ddbench.data.transforms import BUILTIN_TRANSFORMS
from ddbench.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    for dataset in (Shapes, ModelNet10, ModelNet40, ScanObjectNN, ShapeNet55, ShapeNetPart, OmniObject3D, MVPNet100):
        register(dataset)


@hookimpl
def register_transforms(register):
    for transform in BUILTIN_TRANSFORMS:
        register(transform)
