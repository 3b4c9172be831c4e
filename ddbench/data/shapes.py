"""``shapes``: a built-in procedural dataset of parametric 3D shapes (no download).

Ten classes of objects built from primitives (ellipsoid, box, cylinder, cone, torus, pyramid, capsule, table,
chair, lamp). Every instance draws its own proportions from class-specific ranges, points are sampled on the
surface with probability proportional to area, then the shape is jittered, optionally rotated about the vertical
axis (``rotate_z``; off by default: shapes are aligned, like ModelNet) and normalised to the unit sphere.
Families overlap on purpose (cylinder/capsule/ellipsoid, cone/pyramid, table/chair) so that the task is
separable but not trivial. Generation is deterministic from ``seed``: instance
``i`` of class ``k`` in split ``s`` uses its own random stream, so changing the split sizes does not change the
clouds that remain.

Part segmentation: every point also carries the semantic part of its class it was sampled on
(``point_labels``), from a fixed vocabulary per class (:data:`SHAPE_PARTS`); global part ids run consecutively
over the classes in class order, as ShapeNetPart's do (ellipsoid 0-1, box 2-3, ..., lamp 19-21; 22 in all):

=========  =====================================================================================
class      parts (global ids)
=========  =====================================================================================
ellipsoid  upper (0): the half above the centre plane z = 0; lower (1)
box        sides (2): the four vertical faces; caps (3): the bottom and top faces
cylinder   body (4): the lateral surface; caps (5): the bottom and top discs
cone       body (6): the lateral surface; caps (7): the base disc and the truncation disc
torus      outer (8): farther from the axis than the tube's centre circle; inner (9)
pyramid    body (10): the four sloped faces; caps (11): the base square and the truncation square
capsule    body (12): the cylinder; caps (13): the two hemispheres
table      top (14): the board (six faces); legs (15): the four legs
chair      seat (16); back (17); legs (18)
lamp       base (19): the foot cylinder with its discs; stem (20); shade (21)
=========  =====================================================================================

The labels come from the same draws as the points (adding them changed no point).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import Field

from ddbench.data.base import Dataset, DatasetConfig
from ddbench.data.cloudset import PointCloudSet
from ddbench.data.transforms import normalize_unit_sphere

Sampler = Callable[[int, np.random.Generator], np.ndarray]


#: a function of a patch's points (as its sampler returns them) giving each point's part name
PartOf = Callable[[np.ndarray], np.ndarray]


@dataclass
class Part:
    """A surface patch: its area, a sampler of ``n`` uniform points on it, and the semantic part of its class
    it belongs to (a name of :data:`SHAPE_PARTS`, or a :data:`PartOf` where one patch spans two parts)."""

    area: float
    sample: Sampler
    part: str | PartOf = ""


def _offset(part: Part, centre) -> Part:
    c = np.asarray(centre, dtype=np.float64)
    of = part.part if isinstance(part.part, str) else (lambda pts, f=part.part: f(pts - c))
    return Part(part.area, lambda n, rng: part.sample(n, rng) + c, of)


def _tag(parts: list[Part], name: str) -> list[Part]:
    """The patches, all labelled as the semantic part ``name``."""
    return [Part(p.area, p.sample, name) for p in parts]


def _rect_xy(w: float, d: float, z: float = 0.0) -> Part:
    def sample(n, rng):
        return np.stack([(rng.random(n) - 0.5) * w, (rng.random(n) - 0.5) * d, np.full(n, z)], -1)

    return Part(w * d, sample)


def box(w: float, d: float, h: float) -> list[Part]:
    """Closed box centred at the origin (six rectangles)."""
    dims = np.array([w, d, h], dtype=np.float64)
    parts = []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        for sign in (-0.5, 0.5):

            def sample(n, rng, axis=axis, sign=sign):
                pts = (rng.random((n, 3)) - 0.5) * dims
                pts[:, axis] = sign * dims[axis]
                return pts

            parts.append(Part(float(dims[others[0]] * dims[others[1]]), sample))
    return parts


def disc(r: float, z: float = 0.0) -> Part:
    def sample(n, rng):
        rad, th = r * np.sqrt(rng.random(n)), rng.random(n) * 2 * np.pi
        return np.stack([rad * np.cos(th), rad * np.sin(th), np.full(n, z)], -1)

    return Part(math.pi * r * r, sample)


def frustum_side(r0: float, r1: float, h: float) -> Part:
    """Lateral surface of a cone frustum along z from z=0 (radius r0) to z=h (radius r1)."""
    slant = math.hypot(h, r0 - r1)

    def sample(n, rng):
        # the circumference grows linearly with height: invert the linear density by rejection
        t = np.empty(0)
        rmax = max(r0, r1)
        while t.size < n:
            cand = rng.random(2 * n + 8)
            keep = rng.random(cand.size) * rmax <= r0 + (r1 - r0) * cand
            t = np.concatenate([t, cand[keep]])
        t = t[:n]
        rad, th = r0 + (r1 - r0) * t, rng.random(n) * 2 * np.pi
        return np.stack([rad * np.cos(th), rad * np.sin(th), t * h], -1)

    return Part(math.pi * (r0 + r1) * slant, sample)


def cylinder(r: float, h: float, caps: bool = True) -> list[Part]:
    parts = [_offset(frustum_side(r, r, h), (0, 0, -h / 2))]
    if caps:
        parts += [disc(r, -h / 2), disc(r, h / 2)]
    return parts


def ellipsoid(a: float, b: float, c: float) -> Part:
    p = 1.6075  # Knud Thomsen's approximation of the surface area
    area = 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)

    def sample(n, rng):
        # rejection on the area element so that points are uniform on the surface, not on the parameter sphere
        out = np.empty((0, 3))
        while out.shape[0] < n:
            u = rng.normal(size=(2 * n + 8, 3))
            u /= np.linalg.norm(u, axis=1, keepdims=True)
            g = np.sqrt((b * c * u[:, 0]) ** 2 + (a * c * u[:, 1]) ** 2 + (a * b * u[:, 2]) ** 2)
            keep = rng.random(len(u)) * max(a * b, a * c, b * c) <= g
            out = np.concatenate([out, u[keep] * (a, b, c)])
        return out[:n]

    return Part(area, sample)


def hemisphere(r: float, up: bool) -> Part:
    def sample(n, rng):
        u = rng.normal(size=(n, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        u[:, 2] = np.abs(u[:, 2]) * (1 if up else -1)
        return u * r

    return Part(2 * math.pi * r * r, sample)


def torus(big_r: float, small_r: float) -> Part:
    def sample(n, rng):
        phi = np.empty(0)
        while phi.size < n:
            cand = rng.random(2 * n + 8) * 2 * np.pi
            keep = rng.random(cand.size) * (big_r + small_r) <= big_r + small_r * np.cos(cand)
            phi = np.concatenate([phi, cand[keep]])
        phi, th = phi[:n], rng.random(n) * 2 * np.pi
        ring = big_r + small_r * np.cos(phi)
        return np.stack([ring * np.cos(th), ring * np.sin(th), small_r * np.sin(phi)], -1)

    return Part(4 * math.pi**2 * big_r * small_r, sample)


def square_frustum(base: float, top: float, h: float) -> list[Part]:
    """Square pyramid frustum on z=0 .. z=h: base square, four trapezoids, top square when ``top > 0``."""
    slant = math.hypot(h, (base - top) / 2)
    side_area = (base + top) / 2 * slant

    def side(n, rng, quarter):
        t = np.empty(0)
        while t.size < n:
            cand = rng.random(2 * n + 8)
            keep = rng.random(cand.size) * base <= base + (top - base) * cand
            t = np.concatenate([t, cand[keep]])
        t = t[:n]
        w = base + (top - base) * t
        s = (rng.random(n) - 0.5) * w
        pts = np.stack([w / 2, s, t * h], -1)
        ang = quarter * np.pi / 2
        rot = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]])
        return pts @ rot.T

    parts = [_rect_xy(base, base, 0.0)]
    parts += [Part(side_area, lambda n, rng, q=q: side(n, rng, q)) for q in range(4)]
    if top > 0:
        parts.append(_rect_xy(top, top, h))
    return parts


def sample_parts(parts: list[Part], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points on the union of ``parts``, each part receiving points in proportion to its area."""
    return sample_parts_indexed(parts, n, rng)[0]


def sample_parts_indexed(parts: list[Part], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sample_parts` (the same draws, the same points) and, for every point, the index in ``parts`` of
    the patch it lies on ((n,) int64)."""
    areas = np.array([p.area for p in parts], dtype=np.float64)
    counts = rng.multinomial(n, areas / areas.sum())
    pts = np.concatenate([p.sample(int(c), rng) for p, c in zip(parts, counts) if c > 0])
    index = np.repeat(np.arange(len(parts), dtype=np.int64), counts)
    perm = rng.permutation(n)
    return pts[perm], index[perm]


def part_labels(parts: list[Part], pts: np.ndarray, index: np.ndarray, vocabulary: tuple[str, ...]) -> np.ndarray:
    """(n,) int64 position in ``vocabulary`` of every point's semantic part, from the patch it lies on
    (``index``, from :func:`sample_parts_indexed`) and, for patches spanning two parts, its position."""
    out = np.full(len(index), -1, dtype=np.int64)
    lookup = {name: i for i, name in enumerate(vocabulary)}
    for i, part in enumerate(parts):
        sel = index == i
        if not sel.any():
            continue
        names = [part.part] if isinstance(part.part, str) else list(part.part(pts[sel]))
        unknown = sorted(set(names) - set(lookup))
        if unknown:
            raise ValueError(f"patch {i} is labelled {unknown}, not parts of {vocabulary}")
        out[sel] = lookup[names[0]] if isinstance(part.part, str) else [lookup[nm] for nm in names]
    return out


# -- the classes ---------------------------------------------------------------------------------------------


def _ellipsoid(rng):
    shell = ellipsoid(rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0), rng.uniform(0.4, 1.0))
    return [Part(shell.area, shell.sample, lambda pts: np.where(pts[:, 2] >= 0, "upper", "lower"))]


def _box(rng):
    faces = box(rng.uniform(0.4, 1.0), rng.uniform(0.4, 1.0), rng.uniform(0.4, 1.0))
    return _tag(faces[:4], "sides") + _tag(faces[4:], "caps")  # box(): x faces, y faces, then z faces


def _cylinder(rng):
    side, *caps = cylinder(rng.uniform(0.25, 0.6), rng.uniform(0.6, 1.8))
    return _tag([side], "body") + _tag(caps, "caps")


def _cone(rng):
    r0, h = rng.uniform(0.4, 0.8), rng.uniform(0.7, 1.6)
    r1 = r0 * rng.uniform(0.0, 0.45)
    parts = _tag([frustum_side(r0, r1, h)], "body") + _tag([disc(r0, 0.0)], "caps")
    if r1 > 0:
        parts += _tag([disc(r1, h)], "caps")
    return parts


def _torus(rng):
    big_r = rng.uniform(0.55, 0.9)
    ring = torus(big_r, rng.uniform(0.12, 0.35))
    return [Part(ring.area, ring.sample, lambda pts: np.where(np.hypot(pts[:, 0], pts[:, 1]) >= big_r, "outer", "inner"))]


def _pyramid(rng):
    base = rng.uniform(0.8, 1.4)
    bottom, *sides_and_top = square_frustum(base, base * rng.uniform(0.0, 0.45), rng.uniform(0.5, 1.3))
    return _tag([bottom], "caps") + _tag(sides_and_top[:4], "body") + _tag(sides_and_top[4:], "caps")


def _capsule(rng):
    r, h = rng.uniform(0.2, 0.45), rng.uniform(0.4, 1.4)
    return _tag(cylinder(r, h, caps=False), "body") + _tag([
        _offset(hemisphere(r, True), (0, 0, h / 2)),
        _offset(hemisphere(r, False), (0, 0, -h / 2)),
    ], "caps")


def _legs(rng, w, d, height, inset, r):
    legs = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            centre = (sx * (w / 2 - inset), sy * (d / 2 - inset), height / 2)
            legs += [_offset(p, centre) for p in cylinder(r, height, caps=False)]
    return legs


def _table(rng):
    w, d = rng.uniform(0.9, 1.5), rng.uniform(0.6, 1.2)
    thick, height = rng.uniform(0.03, 0.08), rng.uniform(0.5, 1.0)
    top = [_offset(p, (0, 0, height + thick / 2)) for p in box(w, d, thick)]
    return _tag(top, "top") + _tag(_legs(rng, w, d, height, rng.uniform(0.04, 0.15), rng.uniform(0.03, 0.07)), "legs")


def _chair(rng):
    w, d = rng.uniform(0.5, 0.8), rng.uniform(0.5, 0.8)
    thick, seat_h, back_h = rng.uniform(0.04, 0.08), rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.9)
    seat = [_offset(p, (0, 0, seat_h + thick / 2)) for p in box(w, d, thick)]
    back = [_offset(p, (0, -d / 2 + thick / 2, seat_h + thick + back_h / 2)) for p in box(w, thick, back_h)]
    legs = _legs(rng, w, d, seat_h, rng.uniform(0.03, 0.08), rng.uniform(0.02, 0.05))
    return _tag(seat, "seat") + _tag(back, "back") + _tag(legs, "legs")


def _lamp(rng):
    base_r, base_h = rng.uniform(0.2, 0.4), rng.uniform(0.03, 0.08)
    stem_r, stem_h = rng.uniform(0.02, 0.04), rng.uniform(0.6, 1.2)
    shade_r0, shade_h = rng.uniform(0.25, 0.5), rng.uniform(0.2, 0.45)
    base = [_offset(p, (0, 0, base_h / 2)) for p in cylinder(base_r, base_h)]
    stem = [_offset(p, (0, 0, base_h + stem_h / 2)) for p in cylinder(stem_r, stem_h, caps=False)]
    shade_z = base_h + stem_h - shade_h / 2
    shade = [_offset(frustum_side(shade_r0, shade_r0 * rng.uniform(0.3, 0.8), shade_h), (0, 0, shade_z))]
    return _tag(base, "base") + _tag(stem, "stem") + _tag(shade, "shade")


SHAPE_CLASSES: dict[str, Callable[[np.random.Generator], list[Part]]] = {
    "ellipsoid": _ellipsoid,
    "box": _box,
    "cylinder": _cylinder,
    "cone": _cone,
    "torus": _torus,
    "pyramid": _pyramid,
    "capsule": _capsule,
    "table": _table,
    "chair": _chair,
    "lamp": _lamp,
}

#: the fixed part vocabulary of every class (class order; global part ids run consecutively over it)
SHAPE_PARTS: dict[str, tuple[str, ...]] = {
    "ellipsoid": ("upper", "lower"),
    "box": ("sides", "caps"),
    "cylinder": ("body", "caps"),
    "cone": ("body", "caps"),
    "torus": ("outer", "inner"),
    "pyramid": ("body", "caps"),
    "capsule": ("body", "caps"),
    "table": ("top", "legs"),
    "chair": ("seat", "back", "legs"),
    "lamp": ("base", "stem", "shade"),
}


def shape_category_parts() -> list[list[int]]:
    """For each class (class order) its global part ids: consecutive over the classes."""
    out, start = [], 0
    for name in SHAPE_CLASSES:
        out.append(list(range(start, start + len(SHAPE_PARTS[name]))))
        start += len(SHAPE_PARTS[name])
    return out


class ShapesConfig(DatasetConfig):
    points: int = Field(1024, gt=0, description="points per cloud")
    train_per_class: int = Field(40, gt=0)
    test_per_class: int = Field(20, gt=0)
    seed: int = Field(0, ge=0, description="generation seed (the whole dataset is a function of it)")
    noise: float = Field(0.01, ge=0, description="std of the Gaussian jitter added to every coordinate")
    rotate_z: bool = Field(
        False, description="random rotation of every instance about the vertical axis (off: aligned, like ModelNet)"
    )


def generate_cloud(cls_index: int, split_id: int, index: int, config: ShapesConfig) -> np.ndarray:
    return generate_labelled_cloud(cls_index, split_id, index, config)[0]


def generate_labelled_cloud(cls_index: int, split_id: int, index: int,
                            config: ShapesConfig) -> tuple[np.ndarray, np.ndarray]:
    """(points (n, 3) float32, the part of its class every point lies on (n,) int64, a position in
    ``SHAPE_PARTS[class]``). Centring, rotation and jitter keep the order of the points."""
    rng = np.random.default_rng([config.seed, split_id, cls_index, index])
    name, make = list(SHAPE_CLASSES.items())[cls_index]
    parts = make(rng)
    pts, patch = sample_parts_indexed(parts, config.points, rng)
    labels = part_labels(parts, pts, patch, SHAPE_PARTS[name])
    pts = pts - pts.mean(0)
    if config.rotate_z:
        th = rng.uniform(0, 2 * np.pi)
        rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
        pts = pts @ rot.T
    if config.noise:
        pts = pts + rng.normal(scale=config.noise, size=pts.shape)
    return pts.astype(np.float32), labels


class Shapes(Dataset):
    """Built-in procedural dataset: 10 classes of parametric shapes, generated from a seed in seconds."""

    name = "shapes"
    version = "1"
    display_name = "Shapes"
    benchmark = False
    Config = ShapesConfig
    tasks = ("classification", "segmentation")

    def class_names(self) -> list[str]:
        return list(SHAPE_CLASSES)

    def category_parts(self) -> list[list[int]]:
        return shape_category_parts()

    def part_names(self) -> list[str]:
        """``<class>/<part>``, e.g. ``table/legs``, in global part id order."""
        return [f"{name}/{part}" for name in SHAPE_CLASSES for part in SHAPE_PARTS[name]]

    def fingerprint(self) -> dict:
        return {"generator": "ddbench.data.shapes", "version": self.version}

    def _load(self, split: str) -> PointCloudSet:
        cfg = self.config
        per_class = cfg.train_per_class if split == "train" else cfg.test_per_class
        split_id = 0 if split == "train" else 1
        first = [parts[0] for parts in shape_category_parts()]
        clouds, labels, point_labels = [], [], []
        for k in range(len(SHAPE_CLASSES)):
            for i in range(per_class):
                pts, local = generate_labelled_cloud(k, split_id, i, cfg)
                clouds.append(pts)
                point_labels.append(first[k] + local)
                labels.append(k)
        points = normalize_unit_sphere(torch.from_numpy(np.stack(clouds)))
        return PointCloudSet(points, torch.tensor(labels), self.class_names(), name=f"shapes/{split}",
                             point_labels=torch.from_numpy(np.stack(point_labels)))
