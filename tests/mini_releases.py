"""Miniature copies of the official dataset releases, built from generated meshes, for the loader tests.

Every builder writes the exact file layout and formats of the real release, with a handful of shapes.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import h5py
import numpy as np

from ddbench.data.formats import sample_mesh_surface
from ddbench.data.modelnet import MODELNET10_CLASSES


def box_mesh(w: float, d: float, h: float, offset=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """A closed box as 8 vertices and 12 triangles."""
    v = np.array([[x, y, z] for x in (0, w) for y in (0, d) for z in (0, h)], dtype=np.float64) + offset
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = [(a, b, c) for a, b, c, d_ in quads] + [(a, c, d_) for a, b, c, d_ in quads]
    return v, np.array(tris, dtype=np.int64)


def class_mesh(k: int, i: int) -> tuple[np.ndarray, np.ndarray]:
    """A distinct mesh per class (boxes of class-specific proportions, two for odd classes) and instance."""
    # aspect ratios (w : d : h) = (1 + 0.8 i : 1 : 1 + 0.6 k) are distinct for every (class, instance), and odd
    # classes carry a post, so that no two shapes coincide after normalisation
    w, d, h = 1.0 + 0.8 * i, 1.0, 1.0 + 0.6 * k
    v, t = box_mesh(w, d, h)
    if k % 2:
        v2, t2 = box_mesh(0.3, 0.3, 0.5 * h, offset=(w, 0, 0))
        v, t = np.concatenate([v, v2]), np.concatenate([t, t2 + len(v)])
    return v, t


def write_off(path: Path, verts: np.ndarray, tris: np.ndarray, malformed: bool = False, quads: bool = False) -> None:
    """OFF file; ``malformed`` puts the counts on the header line as some ModelNet files do (``OFF8 12 0``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    faces = [f"3 {a} {b} {c}" for a, b, c in tris]
    if quads:  # merge triangle pairs of the box back into quads: exercises fan triangulation
        faces = [f"4 {a} {b} {c} {tris[j + 6][2]}" for j, (a, b, c) in enumerate(tris[:6])] + faces[12:]
    head = f"OFF{len(verts)} {len(faces)} 0" if malformed else f"OFF\n# a comment line\n{len(verts)} {len(faces)} 0"
    body = "\n".join(" ".join(f"{x:.6f}" for x in row) for row in verts)
    path.write_text(f"{head}\n{body}\n" + "\n".join(faces) + "\n")


def modelnet10_shapes(per_class=(2, 1)):
    """(split, class index, instance, shape id) for a miniature ModelNet10."""
    out = []
    for k, cls in enumerate(MODELNET10_CLASSES):
        n_train, n_test = per_class
        for i in range(n_train + n_test):
            out.append(("train" if i < n_train else "test", k, i, f"{cls}_{i + 1:04d}"))
    return out


def build_modelnet10_off(root: Path, per_class=(2, 1)) -> Path:
    folder = root / "ModelNet10"
    for j, (split, k, i, sid) in enumerate(modelnet10_shapes(per_class)):
        v, t = class_mesh(k, i)
        write_off(folder / MODELNET10_CLASSES[k] / split / f"{sid}.off", v, t, malformed=(j % 5 == 0),
                  quads=(j % 7 == 3 and k % 2 == 0))
    return folder


def _face_normals(v, t):
    n = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def build_modelnet10_text(root: Path, per_class=(2, 1), points: int = 10000, seed: int = 1) -> Path:
    """``modelnet40_normal_resampled`` layout (comma-separated x,y,z,nx,ny,nz rows) for the ModelNet10 lists."""
    folder = root / "modelnet40_normal_resampled"
    rng = np.random.default_rng(seed)
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for split, k, i, sid in modelnet10_shapes(per_class):
        v, t = class_mesh(k, i)
        pts = sample_mesh_surface(v, t, points, rng)
        normals = np.repeat(_face_normals(v, t)[:1], points, 0)  # normals are not used by the loader
        rows = np.concatenate([pts, normals], axis=1)
        path = folder / MODELNET10_CLASSES[k] / f"{sid}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(",".join(f"{x:.6f}" for x in r) for r in rows) + "\n")
        lists[split].append(sid)
    for split, ids in lists.items():
        (folder / f"modelnet10_{split}.txt").write_text("\n".join(ids) + "\n")
    (folder / "modelnet10_shape_names.txt").write_text("\n".join(MODELNET10_CLASSES) + "\n")
    return folder


def build_modelnet10_hdf5(root: Path, per_class=(2, 1), points: int = 2048, seed: int = 2) -> Path:
    """PointNet's HDF5 layout (shuffled rows, id2file json), from the same meshes."""
    folder = root / "modelnet10_ply_hdf5_2048"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    (folder / "shape_names.txt").write_text("\n".join(MODELNET10_CLASSES) + "\n")
    for split in ("train", "test"):
        shapes = [s for s in modelnet10_shapes(per_class) if s[0] == split]
        order = rng.permutation(len(shapes))
        data = np.stack([sample_mesh_surface(*class_mesh(shapes[j][1], shapes[j][2]), points, rng) for j in order])
        with h5py.File(folder / f"ply_data_{split}0.h5", "w") as h5:
            h5["data"] = data.astype(np.float32)
            h5["label"] = np.array([shapes[j][1] for j in order], dtype=np.uint8).reshape(-1, 1)
        (folder / f"ply_data_{split}_0_id2file.json").write_text(
            json.dumps([f"{MODELNET10_CLASSES[shapes[j][1]]}/{shapes[j][3]}.off" for j in order]))
        (folder / f"{split}_files.txt").write_text(f"data/modelnet10_ply_hdf5_2048/ply_data_{split}0.h5\n")
    return folder


def build_scanobjectnn(root: Path, sizes=None, points: int = 64) -> Path:
    """``h5_files/main_split{,_nobg}/`` with the three variants; sizes maps variant -> (train, test)."""
    sizes = sizes or {"obj_only": (15, 15), "obj_bg": (30, 15), "pb_t50_rs": (45, 30)}
    files = {"obj_only": ("main_split_nobg", ""), "obj_bg": ("main_split", ""),
             "pb_t50_rs": ("main_split", "_augmentedrot_scale75")}
    rng = np.random.default_rng(3)
    folder = root / "h5_files"
    for variant, (sub, suffix) in files.items():
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for stem, n in zip(("training", "test"), sizes[variant]):
            with h5py.File(folder / sub / f"{stem}_objectdataset{suffix}.h5", "w") as h5:
                h5["data"] = rng.normal(size=(n, points, 3)).astype(np.float32)
                h5["label"] = (np.arange(n) % 15).astype(np.int64)
                h5["mask"] = np.zeros((n, points), dtype=np.int64)
    return folder


def build_shapenet55(root: Path, synsets=("02691156", "03001627", "04379243"), per_synset=(3, 1),
                     points: int = 256) -> Path:
    folder = root / "ShapeNet55-34"
    (folder / "shapenet_pc").mkdir(parents=True)
    (folder / "ShapeNet-55").mkdir()
    rng = np.random.default_rng(4)
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for s_i, syn in enumerate(synsets):
        for i in range(sum(per_synset)):
            name = f"{syn}-model{i:03d}.npy"
            np.save(folder / "shapenet_pc" / name, (rng.normal(size=(points, 3)) + s_i).astype(np.float32))
            lists["train" if i < per_synset[0] else "test"].append(name)
    for split, names in lists.items():
        (folder / "ShapeNet-55" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return folder


def build_shapenetpart(root: Path, points_per_shape=(40, 30, 12)) -> Path:
    """``shapenetcore_partanno_segmentation_benchmark_v0_normal`` with 2 categories and the official json split."""
    folder = root / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    cats = {"Airplane": "02691156", "Mug": "03797390"}
    parts = {"Airplane": [0, 1, 2, 3], "Mug": [36, 37]}
    (folder / "train_test_split").mkdir(parents=True)
    (folder / "synsetoffset2category.txt").write_text("".join(f"{c}\t{s}\n" for c, s in cats.items()))
    rng = np.random.default_rng(5)
    splits = {"train": [], "val": [], "test": []}
    for c, syn in cats.items():
        (folder / syn).mkdir()
        for i, split in enumerate(("train", "train", "val", "test")):
            n = points_per_shape[i % len(points_per_shape)]
            xyz = rng.normal(size=(n, 3))
            # the part label is a function of the position, so that alignment after FPS can be checked
            part = np.array(parts[c])[(xyz[:, 0] > 0).astype(int) % len(parts[c])]
            rows = np.concatenate([xyz, np.zeros((n, 3)), part[:, None]], axis=1)
            model = f"m{i:04d}"
            np.savetxt(folder / syn / f"{model}.txt", rows, fmt="%.6f")
            splits[split].append(f"shape_data/{syn}/{model}")
    for split, entries in splits.items():
        (folder / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(entries))
    return folder


def write_ply(path: Path, pts: np.ndarray, binary: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    head = ("ply\nformat {} 1.0\nelement vertex {}\nproperty float x\nproperty float y\nproperty float z\n"
            "property uchar red\nend_header\n").format("binary_little_endian" if binary else "ascii", len(pts))
    if binary:
        body = b"".join(struct.pack("<fffB", *p, 7) for p in pts)
        path.write_bytes(head.encode() + body)
    else:
        path.write_text(head + "\n".join(f"{x:.6f} {y:.6f} {z:.6f} 7" for x, y, z in pts) + "\n")


def build_omniobject3d(root: Path, categories=("apple", "chair", "toy_car"), per_category: int = 10,
                       resolution: int = 1024, points: int = 64) -> Path:
    folder = root / "OmniObject3D" / "point_clouds"
    rng = np.random.default_rng(6)
    for c_i, cat in enumerate(categories):
        for i in range(per_category):
            obj = f"{cat}_{i + 1:03d}"
            write_ply(folder / str(resolution) / cat / obj / f"pcd_{resolution}.ply",
                      (rng.normal(size=(points, 3)) + c_i).astype(np.float32), binary=bool(i % 2))
    return folder


def build_mvpnet(root: Path, categories=("cup", "shoe"), per_category: int = 10, points: int = 64) -> Path:
    folder = root / "MVPNet100"
    rng = np.random.default_rng(7)
    for c_i, cat in enumerate(categories):
        for i in range(per_category):
            pts = (rng.normal(size=(points, 3)) + c_i).astype(np.float32)
            target = folder / cat / f"obj{i:03d}"
            target.mkdir(parents=True)
            if i % 2:
                np.save(target / "points.npy", pts)
            else:
                write_ply(target / "points.ply", pts)
    return folder
