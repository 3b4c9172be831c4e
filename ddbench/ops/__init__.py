"""Point operations in pure torch on (B, N, 3) tensors."""

from ddbench.ops.rotation import euler_to_matrix, random_rotation_matrices, rotation_z
from ddbench.ops.sampling import farthest_point_sample, gather_points

__all__ = [
    "euler_to_matrix",
    "farthest_point_sample",
    "gather_points",
    "random_rotation_matrices",
    "rotation_z",
]
