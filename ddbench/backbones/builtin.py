"""Built-in backbones, registered through the public hook."""

from ddbench.backbones.pointnet import PointNet, PointNetIN
from ddbench.hookspecs import hookimpl


@hookimpl
def register_backbones(register):
    register(PointNet)
    register(PointNetIN)
