"""Built-in backbones, registered through the public hook."""

from ddbench.backbones.dgcnn import DGCNN
from ddbench.backbones.pct import PCT
from ddbench.backbones.point_transformer import PointTransformer
from ddbench.backbones.pointconv import PointConv
from ddbench.backbones.pointmlp import PointMLP
from ddbench.backbones.pointnet import PointNet, PointNetIN
from ddbench.backbones.pointnet2 import PointNet2MSG, PointNet2SSG
from ddbench.backbones.pointnet_seg import PointNetSeg
from ddbench.hookspecs import hookimpl

BUILTIN_BACKBONES = (PointNet, PointNetIN, PointNet2SSG, PointNet2MSG, DGCNN, PointConv, PointTransformer, PCT,
                     PointMLP, PointNetSeg)


@hookimpl
def register_backbones(register):
    for backbone in BUILTIN_BACKBONES:
        register(backbone)
