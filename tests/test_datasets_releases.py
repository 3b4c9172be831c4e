"""Every dataset read from miniature copies of its official release, plus `ddbench data` on them."""

from __future__ import annotations

import http.server
import json
import threading
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ddbench.data.catalog import Archive
from ddbench.data.fetch import download, extract, fetch, import_data, read_provenance, verify_archive
from ddbench.data.folder_clouds import MVPNet100, OmniObject3D
from ddbench.data.formats import read_off, read_ply_vertices, sample_mesh_surface
from ddbench.data.inspect import dataset_info, verify_dataset
from ddbench.data.modelnet import MODELNET10_CLASSES, ModelNet10
from ddbench.data.scanobjectnn import ScanObjectNN
from ddbench.data.shapenet import SHAPENET55_SYNSETS, ShapeNet55, ShapeNetPart
from ddbench.errors import DataError
from tests import mini_releases as mini

# -- OFF reading -----------------------------------------------------------------------------------------------


def test_off_header_variants_and_polygons(tmp_path):
    v, t = mini.box_mesh(1, 2, 3)
    for name, kw in [("normal", {}), ("malformed", {"malformed": True}), ("quads", {"quads": True})]:
        path = tmp_path / f"{name}.off"
        mini.write_off(path, v, t, **kw)
        verts, tris = read_off(path)
        assert verts.shape == (8, 3) and tris.shape == (12, 3), name
        area = 0.5 * np.linalg.norm(np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]]), axis=1).sum()
        assert area == pytest.approx(2 * (1 * 2 + 1 * 3 + 2 * 3)), name
    assert (tmp_path / "malformed.off").read_text().startswith("OFF8 12 0")


@pytest.mark.parametrize("text,needle", [
    ("PLY\n3 1 0\n", "no OFF header"),
    ("OFF\nx y z\n", "bad counts"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n", "declares 3 vertices and 1 faces"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "face indices out of range"),
])
def test_malformed_off_files_give_clear_errors(tmp_path, text, needle):
    path = tmp_path / "bad.off"
    path.write_text(text)
    with pytest.raises(DataError, match=needle) as info:
        read_off(path)
    assert str(path) in str(info.value)


def test_surface_sampling_is_area_weighted():
    v, t = mini.box_mesh(4.0, 1.0, 1.0)  # the four long faces hold 16 of the 18 area units
    pts = sample_mesh_surface(v, t, 20000, np.random.default_rng(0))
    on_end_caps = np.isclose(pts[:, 0], 0) | np.isclose(pts[:, 0], 4.0)
    assert abs(on_end_caps.mean() - 2 / 18) < 0.01
    with pytest.raises(DataError, match="no surface area"):
        sample_mesh_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]), 10, np.random.default_rng(0))


# -- ModelNet: the three official releases agree ------------------------------------------------------------------


def chamfer(a: torch.Tensor, b: torch.Tensor) -> float:
    d = torch.cdist(a, b) ** 2
    return float(d.min(1).values.mean() + d.min(0).values.mean())


@pytest.fixture(scope="module")
def three_releases(tmp_path_factory):
    root = tmp_path_factory.mktemp("modelnet_releases")
    mini.build_modelnet10_off(root)
    mini.build_modelnet10_text(root)
    mini.build_modelnet10_hdf5(root)
    return root


def load_release(root, source, split="train"):
    cfg = ModelNet10.make_config({"source": source, "points": 512, "check_sizes": False, "surface_points": 4000})
    return ModelNet10(cfg, root, root / f"cache-{source}").load(split)


def test_three_modelnet_routes_give_the_same_classes_splits_and_shapes(three_releases):
    sets = {s: load_release(three_releases, s) for s in ("off", "normal_resampled", "hdf5")}
    for s, data in sets.items():
        assert data.class_names == MODELNET10_CLASSES, s
        assert len(data) == 20 and data.class_counts() == [2] * 10, s
        assert data.points.shape[1:] == (512, 3), s
        assert torch.allclose(data.points.norm(dim=-1).amax(1), torch.ones(20), atol=1e-5), s
    tests = {s: load_release(three_releases, s, "test") for s in ("off", "hdf5")}
    assert len(tests["off"]) == len(tests["hdf5"]) == 10
    # the same shape through each route: a small Chamfer distance, and it is the nearest shape of the other route
    by_id = {s: dict(zip(d.ids, d.points)) for s, d in sets.items()}
    same = []
    for other in ("normal_resampled", "hdf5"):
        for sid, cloud in by_id["off"].items():
            dists = {tid: chamfer(cloud, target) for tid, target in by_id[other].items()}
            same.append(dists[sid])
            assert min(dists, key=dists.get) == sid, (other, sid, sorted(dists.items(), key=lambda kv: kv[1])[:3])
    assert max(same) < 0.02, max(same)


def test_off_route_is_deterministic_and_prepared_once(three_releases):
    a, b = load_release(three_releases, "off"), load_release(three_releases, "off")
    assert torch.equal(a.points, b.points)
    assert len(list((three_releases / "cache-off" / "prepared").glob("modelnet10-train-*.pt"))) == 1
    # a preparation parameter changes the entry: re-prepared, never stale
    cfg = ModelNet10.make_config({"source": "off", "points": 512, "check_sizes": False, "surface_points": 3000})
    c = ModelNet10(cfg, three_releases, three_releases / "cache-off").load("train")
    assert not torch.equal(a.points, c.points)
    assert len(list((three_releases / "cache-off" / "prepared").glob("modelnet10-train-*.pt"))) == 2


def test_auto_source_prefers_hdf5_then_text_then_off(tmp_path):
    mini.build_modelnet10_off(tmp_path)
    ds = ModelNet10(ModelNet10.make_config({"check_sizes": False}), tmp_path, None)
    assert ds.find_release()[0] == "off"
    mini.build_modelnet10_text(tmp_path)
    assert ds.find_release()[0] == "normal_resampled"


def test_text_release_with_an_unknown_shape_is_reported(tmp_path):
    folder = mini.build_modelnet10_text(tmp_path, points=64)
    (folder / "modelnet10_train.txt").write_text("spaceship_0001\n")
    cfg = ModelNet10.make_config({"source": "normal_resampled", "points": 32, "check_sizes": False})
    with pytest.raises(DataError, match="spaceship"):
        ModelNet10(cfg, tmp_path, None).load("train")


# -- ScanObjectNN -------------------------------------------------------------------------------------------------


def test_scanobjectnn_variants_pick_their_files(tmp_path):
    mini.build_scanobjectnn(tmp_path)
    sizes = {}
    for variant in ("obj_only", "obj_bg", "pb_t50_rs"):
        cfg = ScanObjectNN.make_config({"variant": variant, "points": 32, "check_sizes": False})
        ds = ScanObjectNN(cfg, tmp_path, None)
        sizes[variant] = (len(ds.load("train")), len(ds.load("test")))
        assert ds.load("train").num_classes == 15 and ds.load("train").points.shape[1] == 32
    assert sizes == {"obj_only": (15, 15), "obj_bg": (30, 15), "pb_t50_rs": (45, 30)}
    with pytest.raises(DataError, match="expected 11416"):
        ScanObjectNN(ScanObjectNN.make_config({"points": 32}), tmp_path, None).load("train")


def test_scanobjectnn_truncated_h5_is_a_clear_error(tmp_path):
    folder = mini.build_scanobjectnn(tmp_path)
    f = folder / "main_split" / "training_objectdataset_augmentedrot_scale75.h5"
    f.write_bytes(f.read_bytes()[:500])
    ds = ScanObjectNN(ScanObjectNN.make_config({"points": 32, "check_sizes": False}), tmp_path, None)
    with pytest.raises(DataError, match="training_objectdataset_augmentedrot_scale75.h5.*truncated or corrupt"):
        ds.load("train")


def test_scanobjectnn_missing_variant_file(tmp_path):
    folder = mini.build_scanobjectnn(tmp_path)
    (folder / "main_split_nobg" / "test_objectdataset.h5").unlink()
    ds = ScanObjectNN(ScanObjectNN.make_config({"variant": "obj_only"}), tmp_path, None)
    ok, why = ds.availability()
    assert not ok and "main_split_nobg/test_objectdataset.h5" in why


# -- ShapeNet55 and ShapeNetPart --------------------------------------------------------------------------------


def test_shapenet55_labels_follow_sorted_synsets(tmp_path):
    mini.build_shapenet55(tmp_path)
    ds = ShapeNet55(ShapeNet55.make_config({"points": 128, "check_sizes": False}), tmp_path, None)
    train, test = ds.load("train"), ds.load("test")
    assert train.num_classes == 55 and len(train) == 9 and len(test) == 3
    names = ds.class_names()
    assert names[sorted(SHAPENET55_SYNSETS).index("03001627")] == "chair"
    assert {names[k] for k in train.labels.tolist()} == {"airplane", "chair", "table"}
    assert train.ids[0].startswith("02691156-")


def test_shapenetpart_keeps_part_labels_aligned_with_points(tmp_path):
    mini.build_shapenetpart(tmp_path)
    cfg = ShapeNetPart.make_config({"points": 16, "check_sizes": False, "normalize": False})
    ds = ShapeNetPart(cfg, tmp_path, None)
    train, test = ds.load("train"), ds.load("test")
    assert len(train) == 6 and len(test) == 2  # train + val, then test
    assert train.point_labels.shape == (6, 16) and train.num_classes == 16
    # the miniature's part label is a function of x: it must still match after FPS / padding
    for pts, parts, label in zip(train.points, train.point_labels, train.labels):
        allowed = {"Airplane": [0, 1, 2, 3], "Mug": [36, 37]}[train.class_names[label]]
        expected = torch.tensor(allowed)[(pts[:, 0] > 0).long() % len(allowed)]
        assert torch.equal(parts, expected)
    # shapes with fewer points than requested are padded by repetition (the 12-point shape)
    only_train = ShapeNetPart(ShapeNetPart.make_config({"points": 16, "check_sizes": False, "train_splits": ["train"]}),
                              tmp_path, None).load("train")
    assert len(only_train) == 4


def test_shapenetpart_without_padding_refuses_small_shapes(tmp_path):
    mini.build_shapenetpart(tmp_path)
    cfg = ShapeNetPart.make_config({"points": 16, "check_sizes": False, "pad": False})
    with pytest.raises(DataError, match="12 points, fewer than the 16 requested"):
        ShapeNetPart(cfg, tmp_path, None).load("train")


# -- OmniObject3D and MVPNet100 ----------------------------------------------------------------------------------


def test_ply_reader_ascii_and_binary(tmp_path):
    pts = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    for binary in (False, True):
        path = tmp_path / f"p{binary}.ply"
        mini.write_ply(path, pts, binary=binary)
        assert np.allclose(read_ply_vertices(path), pts, atol=1e-5)
    (tmp_path / "bad.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\n"
                                       b"property float y\nproperty float z\nend_header\n\x00\x01")
    with pytest.raises(DataError, match="truncated"):
        read_ply_vertices(tmp_path / "bad.ply")


def test_omniobject3d_split_is_deterministic_per_category_and_overridable(tmp_path):
    mini.build_omniobject3d(tmp_path)
    cfg = OmniObject3D.make_config({"points": 32})
    a = OmniObject3D(cfg, tmp_path, None)
    train, test = a.load("train"), a.load("test")
    assert a.class_names() == ["apple", "chair", "toy_car"]
    assert len(train) + len(test) == 30 and len(test) > 0
    assert not set(train.ids) & set(test.ids)
    again = OmniObject3D(cfg, tmp_path, None).load("test")
    assert again.ids == test.ids
    split_file = tmp_path / "split.txt"
    split_file.write_text("".join(f"{i} {'test' if i.startswith('apple') else 'train'}\n" for i in train.ids + test.ids))
    custom = OmniObject3D(OmniObject3D.make_config({"points": 32, "split_file": str(split_file)}), tmp_path, None)
    assert {custom.class_names()[k] for k in custom.load("test").labels.tolist()} == {"apple"}


def test_mvpnet_reads_mixed_files(tmp_path):
    mini.build_mvpnet(tmp_path)
    ds = MVPNet100(MVPNet100.make_config({"points": 32}), tmp_path, None)
    assert ds.class_names() == ["cup", "shoe"]
    assert len(ds.load("train")) + len(ds.load("test")) == 20


# -- fetch / import / verify / info -------------------------------------------------------------------------------


def zip_folder(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(folder.parent))
    return dest


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A test server that honours 'Range: bytes=N-' like the dataset hosts do."""

    requests_seen: list = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802
        path = Path(self.translate_path(self.path))
        if not path.exists():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        type(self).requests_seen.append(rng)
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def http_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = lambda *a, **kw: RangeHandler(*a, directory=str(served), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    RangeHandler.requests_seen = []
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_resumes_a_partial_file(http_server, tmp_path):
    served, base = http_server
    payload = np.random.default_rng(0).bytes(300_000)
    (served / "archive.bin").write_bytes(payload)
    dest = tmp_path / "dl" / "archive.bin"
    dest.parent.mkdir()
    dest.with_name("archive.bin.part").write_bytes(payload[:100_000])
    seen = []
    download(f"{base}/archive.bin", dest, lambda done, total, desc: seen.append((done, total)))
    assert dest.read_bytes() == payload
    assert RangeHandler.requests_seen == ["bytes=100000-"]
    assert seen[-1] == (300_000, 300_000)


def test_fetch_over_http_verifies_extracts_and_records(http_server, tmp_path):
    served, base = http_server
    src = tmp_path / "src"
    mini.build_modelnet10_off(src)
    zip_folder(src / "ModelNet10", served / "ModelNet10.zip")
    root = tmp_path / "data"
    entry = fetch("modelnet10", root, url=f"{base}/ModelNet10.zip")
    assert entry["created"] == ["ModelNet10"] and len(entry["sha256"]) == 64
    ds = ModelNet10(ModelNet10.make_config({"check_sizes": False, "points": 256, "surface_points": 1000}), root, None)
    assert ds.availability()[0] and len(ds.load("train")) == 20
    assert read_provenance(root, "modelnet10")["archives"][0]["url"].endswith("ModelNet10.zip")
    assert not (root / ".downloads" / "ModelNet10.zip").exists()


def test_fetch_accepts_a_local_file_url(tmp_path):
    src = tmp_path / "src"
    mini.build_scanobjectnn(src)
    archive = zip_folder(src / "h5_files", tmp_path / "h5_files.zip")
    entry = fetch("scanobjectnn", tmp_path / "data", url=archive.as_uri())
    assert entry["created"] == ["h5_files"]


def test_wrong_checksum_is_refused_and_the_file_deleted(tmp_path):
    path = tmp_path / "modelnet40_ply_hdf5_2048.zip"
    path.write_bytes(b"not the real archive")
    published = Archive(path.name, None, "x", sha256="0" * 64, checksum_source="test")
    with pytest.raises(DataError, match="checksum mismatch.*published"):
        verify_archive(path, published)
    assert not path.exists()


def test_import_checks_the_published_checksum_of_a_known_archive(tmp_path):
    fake = tmp_path / "modelnet40_ply_hdf5_2048.zip"  # the official name, wrong content
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("modelnet40_ply_hdf5_2048/shape_names.txt", "airplane\n")
    with pytest.raises(DataError, match="checksum mismatch for modelnet40_ply_hdf5_2048.zip"):
        import_data("modelnet40", fake, tmp_path / "data")


def test_import_folder_by_copy_or_link_and_archives(tmp_path):
    src = tmp_path / "src"
    folder = mini.build_shapenetpart(src)
    root = tmp_path / "data"
    entry = import_data("shapenetpart", folder, root, link=True)
    assert (root / folder.name).is_symlink() and entry["mode"] == "link"
    root2 = tmp_path / "data2"
    import_data("shapenetpart", folder, root2)
    assert (root2 / folder.name).is_dir() and not (root2 / folder.name).is_symlink()
    archive = zip_folder(folder, tmp_path / "part.zip")
    root3 = tmp_path / "data3"
    assert import_data("shapenetpart", archive, root3)["created"] == [folder.name]
    with pytest.raises(DataError, match="neither a zip nor a tar"):
        import_data("shapenetpart", src / folder.name / "synsetoffset2category.txt", tmp_path / "data4")


def test_extract_refuses_path_traversal_and_truncated_archives(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(DataError, match="outside"):
        extract(evil, tmp_path / "target")
    good = zip_folder(mini.build_mvpnet(tmp_path / "m"), tmp_path / "good.zip")
    (tmp_path / "trunc.zip").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt|neither a zip"):
        extract(tmp_path / "trunc.zip", tmp_path / "target2")


def test_verify_and_info_on_a_miniature(tmp_path):
    mini.build_scanobjectnn(tmp_path)
    ds = ScanObjectNN(ScanObjectNN.make_config({"variant": "obj_bg", "points": 32, "check_sizes": False}), tmp_path, None)
    checks = verify_dataset(ds, tmp_path)
    assert all(c.ok for c in checks), [(c.name, c.detail) for c in checks if not c.ok]
    info = dataset_info(ds)
    assert info["splits"]["train"]["clouds"] == 30 and sum(info["splits"]["train"]["per_class"]) == 30
    strict = ScanObjectNN(ScanObjectNN.make_config({"variant": "obj_bg", "points": 32}), tmp_path, None)
    failed = [c for c in verify_dataset(strict, tmp_path) if not c.ok]
    assert failed and "expected 2309" in failed[0].detail


def test_verify_reports_nan_in_a_release(tmp_path):
    folder = mini.build_scanobjectnn(tmp_path)
    with h5py.File(folder / "main_split" / "training_objectdataset.h5", "r+") as h5:
        h5["data"][0, 0, 0] = np.nan
    ds = ScanObjectNN(ScanObjectNN.make_config({"variant": "obj_bg", "points": 32, "check_sizes": False}), tmp_path, None)
    failed = [c for c in verify_dataset(ds, tmp_path) if not c.ok]
    assert any("NaN" in c.detail for c in failed)


@pytest.mark.real_data
def test_cli_data_verify_passes_on_the_shared_modelnet10(modelnet10_root):
    from tests.test_cli import ddbench

    proc = ddbench("data", "verify", "modelnet10", "--data-root", str(modelnet10_root), "--json")
    checks = json.loads(proc.stdout)
    assert all(c["ok"] for c in checks) and any(c["name"] == "release checksums" for c in checks)


def test_cli_data_commands_on_a_miniature(tmp_path):
    from tests.test_cli import ddbench

    src = tmp_path / "src"
    mini.build_scanobjectnn(src)
    archive = zip_folder(src / "h5_files", tmp_path / "h5_files.zip")
    root = str(tmp_path / "data")
    ddbench("data", "import", "scanobjectnn", str(archive), "--data-root", root)
    rows = json.loads(ddbench("data", "list", "--json", "--data-root", root).stdout)
    assert next(r for r in rows if r["name"] == "scanobjectnn")["present"]
    info = json.loads(ddbench("data", "info", "scanobjectnn", "--data-root", root, "--set", "points=32",
                              "--set", "variant=obj_only", "--set", "check_sizes=false", "--json").stdout)
    assert info["splits"]["test"]["clouds"] == 15
    failing = ddbench("data", "verify", "scanobjectnn", "--data-root", root, "--set", "points=32", check=False)
    assert failing.returncode == 1 and "FAIL" in failing.stdout  # the miniature has not the official sizes
