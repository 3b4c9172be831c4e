"""Data layer: the set type, the procedural dataset, the ModelNet HDF5 loader, errors and the cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ddbench.data.cloudset import PointCloudSet
from ddbench.data.modelnet import MODELNET10_CLASSES, ModelNet10, ModelNetConfig
from ddbench.data.shapes import SHAPE_CLASSES, Shapes, ShapesConfig
from ddbench.errors import DataError
from ddbench.pipeline import open_dataset

# -- PointCloudSet ----------------------------------------------------------------------------------------------


def test_cloudset_validates_shapes_labels_and_finiteness():
    with pytest.raises(DataError, match=r"shape \(M, N, 3\)"):
        PointCloudSet(torch.zeros(2, 5, 2), torch.zeros(2), ["a"])
    with pytest.raises(DataError, match="2 clouds but 3 labels"):
        PointCloudSet(torch.zeros(2, 5, 3), torch.zeros(3), ["a"])
    with pytest.raises(DataError, match=r"labels must lie in \[0, 1\]"):
        PointCloudSet(torch.zeros(2, 5, 3), torch.tensor([0, 2]), ["a", "b"])
    pts = torch.zeros(2, 5, 3)
    pts[1, 0, 0] = float("nan")
    with pytest.raises(DataError, match="1 clouds contain NaN"):
        PointCloudSet(pts, torch.zeros(2), ["a"])


def test_cloudset_subset_counts_and_class_batch(toy_set):
    assert toy_set.class_counts() == [5, 5, 5]
    sub = toy_set.subset([0, 5, 10])
    assert sub.labels.tolist() == [0, 1, 2] and sub.points.dtype == torch.float32
    batch = toy_set.class_batch(1, 3, torch.Generator().manual_seed(0))
    assert batch.shape == (3, 32, 3)
    assert torch.all(batch[..., 0].mean(1) > 0.5)  # class 1 clouds are shifted by +1 in x


# -- shapes --------------------------------------------------------------------------------------------------


def test_shapes_is_deterministic_balanced_and_normalised():
    cfg = ShapesConfig(points=128, train_per_class=3, test_per_class=2)
    a, b = Shapes(cfg).load("train"), Shapes(cfg).load("train")
    assert torch.equal(a.points, b.points)
    assert len(SHAPE_CLASSES) >= 10 and a.num_classes == len(SHAPE_CLASSES)
    assert a.class_counts() == [3] * a.num_classes
    assert torch.allclose(a.points.norm(dim=-1).amax(1), torch.ones(len(a)), atol=1e-5)
    assert torch.allclose(a.points.mean(1), torch.zeros(len(a), 3), atol=1e-5)
    test = Shapes(cfg).load("test")
    assert not torch.equal(test.points[:2], a.points[:2])  # train and test are different instances


def test_shapes_seed_changes_data_and_instances_vary_within_class():
    base = ShapesConfig(points=128, train_per_class=2, test_per_class=1)
    a = Shapes(base).load("train")
    other = Shapes(base.model_copy(update={"seed": 1})).load("train")
    assert not torch.equal(a.points, other.points)
    # two instances of the same class have different proportions: their extents differ
    ext = a.points.amax(1) - a.points.amin(1)
    assert (ext[0] - ext[1]).abs().max() > 0.02


def test_shapes_prefix_stability():
    """Instance i of class k does not depend on how many instances are generated."""
    small = Shapes(ShapesConfig(points=64, train_per_class=2)).load("train")
    big = Shapes(ShapesConfig(points=64, train_per_class=4)).load("train")
    assert torch.equal(small.points[:2], big.points[:2])


def test_shapes_classes_are_separable_but_not_trivial():
    """A nearest-centroid rule on simple shape statistics is far above chance but not perfect."""
    ds = Shapes(ShapesConfig(points=256, train_per_class=20, test_per_class=20))
    tr, te = ds.load("train"), ds.load("test")

    def stats(p):
        centred = p - p.mean(1, keepdim=True)
        ext = p.amax(1) - p.amin(1)
        r = centred.norm(dim=-1)
        return torch.cat([ext, r.mean(1, keepdim=True), r.std(1, keepdim=True)], 1)

    ftr, fte = stats(tr.points), stats(te.points)
    cents = torch.stack([ftr[tr.labels == k].mean(0) for k in range(tr.num_classes)])
    pred = torch.cdist(fte, cents).argmin(1)
    acc = float((pred == te.labels).float().mean())
    assert 0.3 < acc < 0.98, acc


def test_shapes_generation_is_fast():
    import time

    t = time.perf_counter()
    Shapes().load("train")
    assert time.perf_counter() - t < 20  # generous bound; the benchmark reports the real figure


# -- ModelNet HDF5 ---------------------------------------------------------------------------------------------


def write_modelnet(root: Path, folder: str, classes, per_class=(2, 1), points=16, files=1) -> Path:
    """A miniature release in PointNet's HDF5 layout."""
    d = root / folder
    d.mkdir(parents=True)
    (d / "shape_names.txt").write_text("\n".join(classes) + "\n")
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class):
        names = []
        labels = np.repeat(np.arange(len(classes)), n)
        chunks = np.array_split(np.arange(len(labels)), files)
        for i, idx in enumerate(chunks):
            fname = f"ply_data_{split}{i}.h5"
            with h5py.File(d / fname, "w") as h5:
                h5["data"] = rng.normal(size=(len(idx), points, 3)).astype(np.float32)
                h5["label"] = labels[idx].reshape(-1, 1).astype(np.uint8)
            names.append(f"data/{folder}/{fname}")
        (d / f"{split}_files.txt").write_text("\n".join(names) + "\n")
    return d


def loose(**kw) -> ModelNetConfig:
    return ModelNetConfig(check_sizes=False, **kw)


def test_modelnet_hdf5_layout_reads_all_files_and_normalises(tmp_path):
    write_modelnet(tmp_path, "modelnet10_hdf5_1024", MODELNET10_CLASSES, per_class=(3, 1), files=2)
    ds = ModelNet10(loose(points=16), tmp_path, tmp_path / "cache")
    train = ds.load("train")
    assert len(train) == 30 and train.num_classes == 10 and train.class_counts() == [3] * 10
    assert torch.allclose(train.points.norm(dim=-1).amax(1), torch.ones(30), atol=1e-5)


def test_modelnet_fps_reduces_points(tmp_path):
    write_modelnet(tmp_path, "modelnet10_hdf5_1024", MODELNET10_CLASSES, points=32)
    train = ModelNet10(loose(points=8), tmp_path, None).load("train")
    assert train.points.shape[1:] == (8, 3)
    first = ModelNet10(loose(points=8, subsample="first"), tmp_path, None).load("train")
    assert not torch.equal(train.points, first.points)


def test_modelnet_too_few_points_is_clear(tmp_path):
    write_modelnet(tmp_path, "modelnet10_hdf5_1024", MODELNET10_CLASSES, points=8)
    with pytest.raises(DataError, match="fewer than the 1024 requested"):
        ModelNet10(loose(), tmp_path, None).load("train")


def test_modelnet10_from_a_modelnet40_release(tmp_path):
    from ddbench.data.modelnet import MODELNET40_CLASSES

    write_modelnet(tmp_path, "modelnet40_ply_hdf5_2048", MODELNET40_CLASSES, per_class=(1, 1))
    train = ModelNet10(loose(points=16), tmp_path, None).load("train")
    assert len(train) == 10 and train.class_names == MODELNET10_CLASSES
    assert train.meta["folder"].endswith("modelnet40_ply_hdf5_2048")


def test_missing_data_error_names_files_and_remedy(tmp_path):
    ds = ModelNet10(None, tmp_path, None)
    with pytest.raises(DataError) as info:
        ds.load("train")
    msg = str(info.value)
    for needle in ("modelnet10_hdf5_1024/", "train_files.txt", "--data-root", "DDBENCH_DATA", "http"):
        assert needle in msg
    assert "\n" not in msg


def test_truncated_hdf5_gives_clear_error(tmp_path):
    d = write_modelnet(tmp_path, "modelnet10_hdf5_1024", MODELNET10_CLASSES, points=64)
    f = d / "ply_data_train0.h5"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt.*download it again"):
        ModelNet10(loose(points=64), tmp_path, None).load("train")


def test_wrong_layout_is_reported(tmp_path):
    d = write_modelnet(tmp_path, "modelnet10_hdf5_1024", MODELNET10_CLASSES)
    with h5py.File(d / "ply_data_train0.h5", "w") as h5:
        h5["points"] = np.zeros((2, 16, 3), np.float32)
    with pytest.raises(DataError, match=r"has no \['data', 'label'\] datasets"):
        ModelNet10(loose(points=16), tmp_path, None).load("train")


def test_checksum_mismatch_is_reported(tmp_path):
    d = write_modelnet(tmp_path, "modelnet10_hdf5_1024", MODELNET10_CLASSES)
    (d / "SHA256SUMS").write_text("0" * 64 + "  ply_data_train0.h5\n")
    with pytest.raises(DataError, match="checksum mismatch"):
        ModelNet10(loose(points=16), tmp_path, None).load("train")
    # the check can be switched off
    ModelNet10(loose(points=16, verify_checksums=False), tmp_path, None).load("train")


def test_split_size_check(tmp_path):
    write_modelnet(tmp_path, "modelnet10_hdf5_1024", MODELNET10_CLASSES)
    with pytest.raises(DataError, match="expected 3991"):
        ModelNet10(ModelNetConfig(points=16), tmp_path, None).load("train")


def test_prepared_cache_is_reused_and_invalidated(tmp_path):
    d = write_modelnet(tmp_path, "modelnet10_hdf5_1024", MODELNET10_CLASSES, points=32)
    cache = tmp_path / "cache"
    first = ModelNet10(loose(points=16), tmp_path, cache).load("train")
    entries = list((cache / "prepared").glob("*.pt"))
    assert len(entries) == 1
    # same parameters and source: served from the same entry
    again = ModelNet10(loose(points=16), tmp_path, cache).load("train")
    assert torch.equal(first.points, again.points) and len(list((cache / "prepared").glob("*.pt"))) == 1
    # different preparation parameter: a new entry, never the stale one
    other = ModelNet10(loose(points=8), tmp_path, cache).load("train")
    assert other.points.shape[1] == 8 and len(list((cache / "prepared").glob("*.pt"))) == 2
    # a changed source file changes the fingerprint and is re-prepared
    with h5py.File(d / "ply_data_train0.h5", "r+") as h5:
        h5["data"][0] = h5["data"][0] * 0 + 5.0
    changed = ModelNet10(loose(points=16), tmp_path, cache).load("train")
    assert not torch.equal(changed.points[0], first.points[0])


def test_corrupt_cache_entry_is_rebuilt(tmp_path):
    write_modelnet(tmp_path, "modelnet10_hdf5_1024", MODELNET10_CLASSES)
    cache = tmp_path / "cache"
    a = ModelNet10(loose(points=16), tmp_path, cache).load("train")
    entry = next((cache / "prepared").glob("*.pt"))
    entry.write_bytes(b"garbage")
    b = ModelNet10(loose(points=16), tmp_path, cache).load("train")
    assert torch.equal(a.points, b.points)


def test_data_root_from_environment(tmp_path, monkeypatch):
    write_modelnet(tmp_path, "modelnet10_hdf5_1024", MODELNET10_CLASSES)
    monkeypatch.setenv("DDBENCH_DATA", str(tmp_path))
    ds = open_dataset("modelnet10", {"points": 16, "check_sizes": False})
    assert len(ds.load("test")) == 10


# -- the real ModelNet10 -----------------------------------------------------------------------------------------


@pytest.mark.real_data
def test_real_modelnet10_counts(modelnet10_root):
    ds = open_dataset("modelnet10", data_root=modelnet10_root)
    train, test = ds.load("train"), ds.load("test")
    assert (len(train), len(test)) == (3991, 908)
    assert train.num_classes == 10 and list(train.class_names) == list(MODELNET10_CLASSES)
    assert train.points.shape[1:] == (1024, 3)
    assert train.class_counts() == [106, 515, 889, 200, 200, 465, 200, 680, 392, 344]
    assert test.class_counts() == [50, 100, 100, 86, 86, 100, 86, 100, 100, 100]


@pytest.mark.real_data
def test_real_modelnet10_truncated_copy_fails_clearly(modelnet10_root, tmp_path):
    src = modelnet10_root / "modelnet10_hdf5_1024"
    dst = tmp_path / "modelnet10_hdf5_1024"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("ply_data_train0.h5", "SHA256SUMS"))
    data = (src / "ply_data_train0.h5").read_bytes()
    (dst / "ply_data_train0.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match="ply_data_train0.h5.*truncated or corrupt"):
        ModelNet10(None, tmp_path, None).load("train")
