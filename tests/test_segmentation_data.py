"""The data side of part segmentation: per-point part labels of the built-in ``shapes`` and of ShapeNetPart (a
miniature of the official release built here), their fixed part vocabularies and the official split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ddbench.data.formats import read_text_cloud
from ddbench.data.modelnet import ModelNet10
from ddbench.data.shapenet import SHAPENETPART_PARTS, ShapeNetPart
from ddbench.data.shapes import (
    SHAPE_CLASSES,
    SHAPE_PARTS,
    Shapes,
    generate_labelled_cloud,
    sample_parts,
    sample_parts_indexed,
)
from ddbench.errors import DataError, IncompatibleError


def shapes(**values) -> Shapes:
    return Shapes(Shapes.make_config({"points": 64, "train_per_class": 2, "test_per_class": 1, **values}))


def assert_labels_within_category(data, category_parts) -> None:
    for label, parts in zip(data.labels.tolist(), data.point_labels):
        assert set(parts.tolist()) <= set(category_parts[label])


# -- shapes ------------------------------------------------------------------------------------------------------


def test_base_dataset_has_no_part_labels():
    ds = ModelNet10()
    assert ds.tasks == ("classification",)
    with pytest.raises(IncompatibleError, match="dataset modelnet10 has no part labels; segmentation needs"):
        ds.category_parts()
    with pytest.raises(IncompatibleError):
        ds.part_names()


def test_shapes_part_vocabulary_is_fixed_and_consecutive():
    ds = shapes()
    assert ds.tasks == ("classification", "segmentation")
    parts = ds.category_parts()
    assert list(SHAPE_PARTS) == ds.class_names() == list(SHAPE_CLASSES)
    assert len(parts) == 10 and all(len(p) >= 2 for p in parts)
    assert [i for p in parts for i in p] == list(range(22))  # consecutive over the classes, in class order
    names = ds.part_names()
    assert len(names) == 22 and names[parts[7][0]] == "table/top" and names[parts[9][2]] == "lamp/shade"


def test_shapes_point_labels_lie_in_their_category_and_every_part_is_used():
    ds = shapes(points=512, train_per_class=3)
    train, test = ds.load("train"), ds.load("test")
    for data in (train, test):
        assert data.point_labels.shape == (len(data), data.num_points) and data.point_labels.dtype == torch.int64
        assert_labels_within_category(data, ds.category_parts())
    for k, parts in enumerate(ds.category_parts()):
        used = set(train.point_labels[train.labels == k].flatten().tolist())
        assert used == set(parts), ds.class_names()[k]


def test_shapes_points_are_unchanged_by_the_part_labels():
    """Recorded before the part labels were added: the same seed still gives bit-identical points."""
    ds = shapes()
    train, test = ds.load("train"), ds.load("test")
    assert train.points.shape == (20, 64, 3) and test.points.shape == (10, 64, 3)
    assert train.points.double().abs().sum().item() == pytest.approx(1306.65551155321, rel=1e-9)
    assert test.points.double().abs().sum().item() == pytest.approx(641.4480419337342, rel=1e-9)
    expected = [
        (train, 0, [-0.047461651265621185, -0.41279199719429016, 0.3742942214012146]),
        (train, -1, [-0.024891508743166924, 0.5334407687187195, 0.7863905429840088]),
        (test, 0, [-0.2793844938278198, -0.7533480525016785, 0.28516650199890137]),
        (test, -1, [0.29167187213897705, 0.14606508612632751, -0.4834522008895874]),
    ]
    for data, m, value in expected:  # first point of the first cloud, last point of the last one
        assert data.points[m, m].tolist() == pytest.approx(value, abs=1e-7)
    # the unlabelled sampler is the labelled one's points, draw for draw
    parts = SHAPE_CLASSES["chair"](np.random.default_rng(3))
    pts, index = sample_parts_indexed(parts, 100, np.random.default_rng(4))
    assert np.array_equal(sample_parts(parts, 100, np.random.default_rng(4)), pts)
    assert index.shape == (100,) and 0 <= index.min() and index.max() < len(parts)


def test_shapes_part_labels_are_geometric():
    cfg = {"points": 1024, "train_per_class": 3, "noise": 0.0}
    ds = shapes(**cfg)
    data = ds.load("train")
    names = ds.class_names()

    def clouds(cls):
        for pts, parts in zip(data.points[data.labels == names.index(cls)],
                              data.point_labels[data.labels == names.index(cls)]):
            first = ds.category_parts()[names.index(cls)][0]
            yield pts, parts - first

    for pts, local in clouds("table"):  # the board lies above the legs
        top, legs = pts[local == SHAPE_PARTS["table"].index("top")], pts[local == SHAPE_PARTS["table"].index("legs")]
        assert top[:, 2].min() >= legs[:, 2].max() - 1e-5
    for pts, local in clouds("lamp"):  # shade above stem above base
        z = [pts[local == j, 2].mean() for j in range(3)]
        assert z[0] < z[1] < z[2]
    for pts, local in clouds("chair"):  # legs below the seat, the back above it
        z = {p: pts[local == j, 2].mean() for j, p in enumerate(SHAPE_PARTS["chair"])}
        assert z["legs"] < z["seat"] < z["back"]
    for pts, local in clouds("ellipsoid"):
        assert pts[local == 0, 2].min() >= pts[local == 1, 2].max() - 1e-5  # upper / lower half
    for pts, local in clouds("torus"):  # outer ring farther from the axis than the inner one
        radius = pts[:, :2].norm(dim=1)
        assert radius[local == 0].mean() > radius[local == 1].mean()
    for cls in ("box", "cylinder", "cone", "pyramid"):  # caps: the flat bottom and top; the rest between them
        for pts, local in clouds(cls):
            z = pts[:, 2]
            to_plane = torch.minimum(z - z.min(), z.max() - z)
            caps = local == SHAPE_PARTS[cls].index("caps")
            assert (to_plane[caps] < 1e-5).all() and (to_plane[~caps] > 1e-5).float().mean() > 0.95, cls
    for pts, local in clouds("capsule"):  # the hemispheres cap the cylinder's two ends
        z, body = pts[:, 2], local == SHAPE_PARTS["capsule"].index("body")
        assert ((z[~body] >= z[body].max() - 1e-5) | (z[~body] <= z[body].min() + 1e-5)).all()
    # the labels follow the points through the rotation of the rotated setting and about z
    rotated = shapes(**cfg, rotation="rotated").load("train")
    assert torch.equal(rotated.point_labels, data.point_labels)
    spun = shapes(**cfg, rotate_z=True).load("train")
    k = names.index("table")
    first_table = int(torch.nonzero(spun.labels == k)[0])
    assert torch.equal(spun.point_labels[first_table], data.point_labels[first_table])
    _, local = generate_labelled_cloud(k, 0, 0, Shapes.make_config(cfg))
    assert torch.equal(torch.from_numpy(local) + ds.category_parts()[k][0], data.point_labels[first_table])


# -- ShapeNetPart ---------------------------------------------------------------------------------------------------

CATEGORIES = {"Airplane": "02691156", "Mug": "03797390", "Table": "04379243"}
#: (model, split, points in the file): sizes above, at and below 2048, several distinct ones below
MODELS = [("a0", "train", 3000), ("a1", "train", 700), ("a2", "val", 2048), ("a3", "test", 1500),
          ("m0", "train", 2500), ("m1", "val", 300), ("m2", "test", 2049),
          ("t0", "train", 100), ("t1", "val", 2600), ("t2", "test", 900)]


def build_mini_shapenetpart(root: Path) -> dict[str, list[str]]:
    """The official layout with 3 categories; every global part p has its own x range [2p, 2p + 1], so a
    point's part can be read from its position (before normalisation: p = floor(x / 2))."""
    folder = root / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    (folder / "train_test_split").mkdir(parents=True)
    (folder / "synsetoffset2category.txt").write_text("".join(f"{c}\t{s}\n" for c, s in CATEGORIES.items()))
    rng = np.random.default_rng(7)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for model, split, n in MODELS:
        cat = {"a": "Airplane", "m": "Mug", "t": "Table"}[model[0]]
        syn = CATEGORIES[cat]
        (folder / syn).mkdir(exist_ok=True)
        part = rng.choice(SHAPENETPART_PARTS[cat], size=n)
        xyz = np.stack([2 * part + rng.random(n), rng.normal(size=n), rng.normal(size=n)], axis=1)
        rows = np.concatenate([xyz, rng.normal(size=(n, 3)), part[:, None]], axis=1)
        np.savetxt(folder / syn / f"{model}.txt", rows, fmt="%.6f")
        splits[split].append(f"shape_data/{syn}/{model}")
    for split, entries in splits.items():
        (folder / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(entries))
    return {s: [e.split("/", 1)[1] for e in entries] for s, entries in splits.items()}


def shapenetpart(root: Path, cache: Path | None = None, **values) -> ShapeNetPart:
    return ShapeNetPart(ShapeNetPart.make_config({"check_sizes": False, **values}), root, cache)


def file_rows(root: Path, entry: str) -> dict[tuple[float, float, float], int]:
    rows = read_text_cloud(root / "shapenetcore_partanno_segmentation_benchmark_v0_normal" / f"{entry}.txt")
    return {tuple(r[:3].tolist()): int(r[6]) for r in rows}


def test_shapenetpart_parts_and_tasks():
    ds = ShapeNetPart()
    assert ds.tasks == ("classification", "segmentation")
    parts = ds.category_parts()
    assert len(parts) == 16 and [i for p in parts for i in p] == list(range(50))
    assert parts[ds.class_names().index("Mug")] == [36, 37]
    names = ds.part_names()
    assert len(names) == 50 and names[0] == "Airplane/part0" and names[37] == "Mug/part1"


def test_shapenetpart_official_split_train_is_train_plus_val(tmp_path):
    split = build_mini_shapenetpart(tmp_path)
    ds = shapenetpart(tmp_path, points=16)
    train, test = ds.load("train"), ds.load("test")
    assert list(train.ids) == split["train"] + split["val"] and list(test.ids) == split["test"]
    for data in (train, test):
        cats = [ds.class_names()[k] for k in data.labels.tolist()]
        assert cats == [next(c for c, s in CATEGORIES.items() if s == i.split("/")[0]) for i in data.ids]
    only_train = shapenetpart(tmp_path, points=16, train_splits=["train"]).load("train")
    assert list(only_train.ids) == split["train"]
    # the real sizes are still required unless check_sizes=false: DD3D's 14,007 = 12,137 train + 1,870 val
    with pytest.raises(DataError, match="train split has 7 clouds, expected 14007"):
        ShapeNetPart(ShapeNetPart.make_config({"points": 16}), tmp_path, None).load("train")


@pytest.mark.parametrize("points", [2048, 16])
def test_shapenetpart_part_labels_stay_with_their_points(tmp_path, points):
    split = build_mini_shapenetpart(tmp_path)
    raw = shapenetpart(tmp_path, normalize=False, points=points)
    normalised = shapenetpart(tmp_path, points=points)
    for name in ("train", "test"):
        data, norm = raw.load(name), normalised.load(name)
        assert data.points.shape == (len(split[name] if name == "test" else split["train"] + split["val"]), points, 3)
        assert data.point_labels.shape == (len(data), points)
        assert torch.equal(norm.point_labels, data.point_labels)
        assert_labels_within_category(data, raw.category_parts())
        for entry, pts, parts, npts in zip(data.ids, data.points, data.point_labels, norm.points):
            # every prepared point (padded ones included) is a row of its file, with that row's part label
            rows = file_rows(tmp_path, entry)
            assert [rows[tuple(p)] for p in pts.tolist()] == parts.tolist()
            assert torch.equal(parts, torch.floor(pts[:, 0] / 2).long())
            # normalisation moves and scales the points but keeps each part in its own x range, in order
            order = torch.argsort(npts[:, 0])
            assert torch.all(parts[order][1:] >= parts[order][:-1])
            small = len(rows) < points
            assert len({tuple(p) for p in pts.tolist()}) == (len(rows) if small else points)


def test_shapenetpart_cache_key_holds_the_points(tmp_path):
    build_mini_shapenetpart(tmp_path)
    cache = tmp_path / "cache"
    first = shapenetpart(tmp_path, cache, points=2048).load("test")
    assert shapenetpart(tmp_path, cache, points=16).load("test").points.shape[1] == 16
    again = shapenetpart(tmp_path, cache, points=2048).load("test")
    assert len(list((cache / "prepared").glob("shapenetpart-test-*.pt"))) == 2
    assert torch.equal(again.points, first.points) and torch.equal(again.point_labels, first.point_labels)
