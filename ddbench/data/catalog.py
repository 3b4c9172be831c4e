"""The official archives of each dataset: where they come from, what they contain, and their checksums.

A checksum is given only where it is published (the source is named); elsewhere ``sha256`` is None, and
``ddbench data fetch`` / ``import`` record the checksum they compute in ``<data root>/.ddbench/<dataset>.json`` so
that ``ddbench data verify`` can detect a later change.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Archive:
    filename: str
    url: str | None  # None: not downloadable (distributed on request / behind a sign-up)
    extracts_to: str  # the folder it creates under the data root
    sha256: str | None = None
    size: int | None = None
    checksum_source: str = ""
    note: str = ""


TFG = "tensorflow/graphics, tensorflow_graphics/datasets/modelnet40/checksums/model_net40.txt"

MODELNET40_HDF5 = Archive(
    "modelnet40_ply_hdf5_2048.zip", "https://shapenet.cs.stanford.edu/media/modelnet40_ply_hdf5_2048.zip",
    "modelnet40_ply_hdf5_2048",
    sha256="07670e237db72ece0f723b9abb571534c9ad655a6456b389646587dc72bb8bae", size=435212151, checksum_source=TFG,
    note="PointNet's HDF5 release, 2048 points (also gives ModelNet10 by filtering its classes)",
)
MODELNET40_TEXT = Archive(
    "modelnet40_normal_resampled.zip", "https://shapenet.cs.stanford.edu/media/modelnet40_normal_resampled.zip",
    "modelnet40_normal_resampled", note="10,000 points with normals per shape; split lists for ModelNet10 and 40",
)
MODELNET40_OFF = Archive(
    "ModelNet40.zip", "http://modelnet.cs.princeton.edu/ModelNet40.zip", "ModelNet40",
    sha256="42dc3e656932e387f554e25a4eb2cc0e1a1bd3ab54606e2a9eae444c60e536ac", size=2039180837,
    checksum_source=TFG, note="Princeton OFF meshes",
)
MODELNET10_OFF = Archive(
    "ModelNet10.zip", "http://3dvision.princeton.edu/projects/2014/3DShapeNets/ModelNet10.zip", "ModelNet10",
    note="Princeton OFF meshes (aligned)",
)

CATALOG: dict[str, tuple[Archive, ...]] = {
    "modelnet10": (MODELNET40_HDF5, MODELNET40_TEXT, MODELNET10_OFF),
    "modelnet40": (MODELNET40_HDF5, MODELNET40_TEXT, MODELNET40_OFF),
    "scanobjectnn": (Archive("h5_files.zip", None, "h5_files",
                             note="distributed on request by the authors: https://hkust-vgd.github.io/scanobjectnn/"),),
    "shapenet55": (Archive("ShapeNet55-34.zip", None, "ShapeNet55-34",
                           note="distributed by the Point-BERT authors (Google Drive / BaiduYun links in their DATASET.md)"),),
    "shapenetpart": (Archive(
        "shapenetcore_partanno_segmentation_benchmark_v0_normal.zip",
        "https://shapenet.cs.stanford.edu/media/shapenetcore_partanno_segmentation_benchmark_v0_normal.zip",
        "shapenetcore_partanno_segmentation_benchmark_v0_normal"),),
    "omniobject3d": (Archive("OmniObject3D point clouds", None, "OmniObject3D",
                             note="sign-up download: https://opendatalab.com/OpenXD-OmniObject3D-New/download"),),
    "mvpnet100": (Archive("MVPNet", None, "MVPNet100",
                          note="from the MVImgNet authors: https://github.com/GAP-LAB-CUHK-SZ/MVImgNet"),),
}


def archives_for(dataset: str) -> tuple[Archive, ...]:
    return CATALOG.get(dataset, ())


#: release files ddbench recognises by content (sha256), with how their clouds were sampled; a release whose
#: files are not listed here is recorded as "not in ddbench's catalogue" with its checksums
KNOWN_FILES: dict[str, str] = {
    # the 1024-point ModelNet10 copy the project develops and tests on (its README and SHA256SUMS)
    "48da73b209421c87e9d4fb04ac9f1fb9d37718457f3e0cbe8d49804494dc06b6":
        "ModelNet10 at 1024 points in PointNet's HDF5 layout, an independent surface sampling of the official "
        "meshes (ddbench's development copy), not the FPS reduction of the 10k-point normal-resampled release "
        "the papers use",
    "a648e4540243eb55804006ce18cffe1b1ada59d092c3efd3434ede2c83147f7b":
        "ModelNet10 at 1024 points in PointNet's HDF5 layout, an independent surface sampling of the official "
        "meshes (ddbench's development copy), not the FPS reduction of the 10k-point normal-resampled release "
        "the papers use",
}
