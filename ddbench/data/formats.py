"""Readers for the file formats the datasets are distributed in, with one-line errors that name the file.

- PointNet's HDF5 (``data``/``label`` arrays, optionally ``pid`` per-point labels),
- Princeton OFF meshes (including ModelNet's known malformed header ``OFF490 518 0``), with area-weighted surface
  sampling,
- comma- or space-separated text clouds (``modelnet40_normal_resampled``, ShapeNetPart: ``x y z nx ny nz [part]``),
- numpy ``.npy`` clouds (ShapeNet55) and ASCII/binary PLY vertex lists (OmniObject3D, MVPNet).
"""

from __future__ import annotations

import struct
from pathlib import Path

import h5py
import numpy as np

from ddbench.errors import DataError


def _fail(path: Path, what: str) -> DataError:
    return DataError(f"{path}: {what}; the file is corrupt or not in the expected format: download it again")


# -- HDF5 -------------------------------------------------------------------------------------------------------


def read_h5(path: Path, data_key: str = "data", label_key: str = "label", extra: tuple[str, ...] = ()) -> dict:
    """Arrays of one HDF5 file: ``data`` (n, P, >=3) float32 (xyz kept), ``label`` (n,) int64, and ``extra`` keys."""
    if not path.exists():
        raise DataError(f"data file {path} is missing; re-download or re-extract the release")
    try:
        with h5py.File(path, "r") as h5:
            missing = [k for k in (data_key, label_key, *extra) if k not in h5]
            if missing:
                raise DataError(f"{path} has no {missing} datasets (found {sorted(h5)}); it is not the expected release")
            out = {"data": np.asarray(h5[data_key][...], dtype=np.float32),
                   "label": np.asarray(h5[label_key][...]).reshape(-1).astype(np.int64)}
            for k in extra:
                out[k] = np.asarray(h5[k][...])
    except DataError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        reason = " ".join(str(err).split())
        raise DataError(
            f"cannot read {path}: the file is truncated or corrupt ({reason}); delete it and download it again"
        ) from None
    if out["data"].ndim != 3 or out["data"].shape[-1] < 3:
        raise DataError(f"{path}: '{data_key}' must have shape (n, P, 3), got {out['data'].shape}")
    if out["label"].shape[0] != out["data"].shape[0]:
        raise DataError(f"{path}: {out['data'].shape[0]} clouds but {out['label'].shape[0]} labels")
    out["data"] = out["data"][..., :3]
    return out


# -- OFF meshes -------------------------------------------------------------------------------------------------


def read_off(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float64, triangles (F, 3) int64) of an OFF mesh; polygons are fan-triangulated.

    Tolerates ModelNet's malformed first line where the counts follow ``OFF`` without a line break
    (``OFF490 518 0``), comments and blank lines.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        raise DataError(f"cannot read {path} ({err}); check the file") from None
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines or not lines[0].upper().startswith("OFF"):
        raise _fail(path, "no OFF header")
    head = lines[0][3:].split()
    body = lines[1:]
    if not head:  # the usual layout: counts on their own line
        if not body:
            raise _fail(path, "no vertex/face counts")
        head, body = body[0].split(), body[1:]
    try:
        nv, nf = int(head[0]), int(head[1])
    except (ValueError, IndexError):
        raise _fail(path, f"bad counts line {' '.join(head)!r}") from None
    if len(body) < nv + nf:
        raise _fail(path, f"declares {nv} vertices and {nf} faces but has {len(body)} data lines")
    try:
        verts = np.array(" ".join(body[:nv]).split(), dtype=np.float64)
        verts = verts.reshape(nv, -1)[:, :3]
    except ValueError:
        raise _fail(path, "unreadable vertex lines") from None
    face_lines = body[nv : nv + nf]
    tokens = " ".join(face_lines).split()
    tris: np.ndarray
    if len(tokens) == 4 * nf and all(tok == "3" for tok in tokens[::4]):  # fast path: all triangles
        tris = np.array(tokens, dtype=np.int64).reshape(nf, 4)[:, 1:]
    else:
        out = []
        for ln in face_lines:
            parts = ln.split()
            try:
                n = int(parts[0])
                idx = [int(p) for p in parts[1 : 1 + n]]
            except (ValueError, IndexError):
                raise _fail(path, f"bad face line {ln!r}") from None
            if len(idx) != n or n < 3:
                raise _fail(path, f"bad face line {ln!r}")
            out += [(idx[0], idx[i], idx[i + 1]) for i in range(1, n - 1)]
        tris = np.array(out, dtype=np.int64).reshape(-1, 3)
    if tris.size and (tris.min() < 0 or tris.max() >= nv):
        raise _fail(path, "face indices out of range")
    return verts, tris


def sample_mesh_surface(verts: np.ndarray, tris: np.ndarray, n: int, rng: np.random.Generator,
                        path: Path | None = None) -> np.ndarray:
    """``n`` points uniformly on the mesh surface: faces drawn with probability proportional to their area,
    then a uniform point in the face (barycentric square-root trick)."""
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    areas = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    total = areas.sum()
    if not np.isfinite(total) or total <= 0:
        raise DataError(f"{path or 'mesh'}: the mesh has no surface area to sample from")
    face = rng.choice(len(tris), size=n, p=areas / total)
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    pts = (1 - r1)[:, None] * a[face] + (r1 * (1 - r2))[:, None] * b[face] + (r1 * r2)[:, None] * c[face]
    return pts.astype(np.float32)


# -- text, npy and ply clouds -----------------------------------------------------------------------------------


def read_text_cloud(path: Path, columns: int | None = None) -> np.ndarray:
    """(P, C) float32 from a text file of comma- or space-separated rows (``columns`` checks C)."""
    try:
        text = path.read_text()
    except OSError as err:
        raise DataError(f"cannot read {path} ({err}); check the file") from None
    rows = [ln for ln in text.replace(",", " ").splitlines() if ln.strip()]
    if not rows:
        raise _fail(path, "empty point file")
    width = len(rows[0].split())
    try:
        arr = np.array(" ".join(rows).split(), dtype=np.float32).reshape(len(rows), width)
    except ValueError:
        raise _fail(path, "rows of different lengths or non-numeric values") from None
    if columns is not None and width < columns:
        raise _fail(path, f"{width} columns per row, expected at least {columns}")
    return arr


def read_npy_cloud(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path} ({' '.join(str(err).split())}); download it again") from None
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise _fail(path, f"expected an (N, 3) array, got {arr.shape}")
    return np.asarray(arr[:, :3], dtype=np.float32)


_PLY_TYPES = {"char": "b", "uchar": "B", "short": "h", "ushort": "H", "int": "i", "uint": "I", "float": "f",
              "double": "d", "int8": "b", "uint8": "B", "int16": "h", "uint16": "H", "int32": "i",
              "uint32": "I", "float32": "f", "float64": "d"}


def read_ply_vertices(path: Path) -> np.ndarray:
    """(V, 3) float32 vertex positions of an ASCII or binary little/big-endian PLY file."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path} ({err}); check the file") from None
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise _fail(path, "no PLY header")
    header = raw[:end].decode("ascii", errors="replace").splitlines()
    body = raw[raw.index(b"\n", end) + 1 :]
    fmt = next((ln.split()[1] for ln in header if ln.startswith("format")), "ascii")
    count, props, in_vertex = 0, [], False
    for ln in header:
        parts = ln.split()
        if parts[:2] == ["element", "vertex"]:
            count, in_vertex = int(parts[2]), True
        elif parts and parts[0] == "element":
            if in_vertex:
                break
        elif in_vertex and parts[:1] == ["property"] and parts[1] != "list":
            props.append((parts[2], _PLY_TYPES.get(parts[1])))
    names = [p[0] for p in props]
    if not {"x", "y", "z"} <= set(names) or any(t is None for _, t in props):
        raise _fail(path, "vertex element without x, y, z of a known type")
    cols = [names.index(c) for c in ("x", "y", "z")]
    if fmt == "ascii":
        rows = body.decode("ascii", errors="replace").split("\n")[:count]
        try:
            arr = np.array([r.split()[: len(props)] for r in rows], dtype=np.float64)
        except ValueError:
            raise _fail(path, "unreadable vertex rows") from None
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        rec = order + "".join(t for _, t in props)
        size = struct.calcsize(rec)
        if len(body) < size * count:
            raise _fail(path, f"truncated: {count} vertices declared")
        dtype = np.dtype([(n, order + t) for n, t in props])
        arr = np.frombuffer(body[: size * count], dtype=dtype)
        arr = np.stack([arr[n].astype(np.float64) for n in names], axis=1)
    if arr.shape[0] != count:
        raise _fail(path, f"{arr.shape[0]} vertices read, {count} declared")
    return arr[:, cols].astype(np.float32)
