"""The synthetic-set artifact: round trip, integrity checks, storage accounting."""

from __future__ import annotations

import json

import h5py
import pytest
import torch

from ddbench.errors import ArtifactError
from ddbench.synthetic.artifact import SyntheticSet, load_artifact, manifest_path, save_artifact


def make_set() -> SyntheticSet:
    g = torch.Generator().manual_seed(0)
    return SyntheticSet(
        torch.randn(6, 16, 3, generator=g), torch.tensor([0, 0, 1, 1, 2, 2]), ["a", "b", "c"],
        extras={"angles": torch.zeros(6, 3)}, stored=["points", "angles"], info={"note": "x"},
    )


def test_round_trip_keeps_everything(tmp_path):
    s = make_set()
    path = tmp_path / "set.h5"
    manifest = save_artifact(path, s, {"method": "m", "method_version": "1", "ppc": 2, "seed": 5})
    assert manifest_path(path).exists() and manifest["storage"]["clouds"] == len(s.labels)
    loaded, m2 = load_artifact(path)
    assert torch.equal(loaded.points, s.points) and torch.equal(loaded.labels, s.labels)
    assert torch.equal(loaded.extras["angles"], s.extras["angles"])
    assert loaded.class_names == ["a", "b", "c"] and loaded.info == {"note": "x"}
    assert m2["method"] == "m" and m2["ppc"] == 2 and m2["seed"] == 5
    assert m2["shapes"]["points"] == [6, 16, 3] and m2["shapes"]["extras/angles"] == [6, 3]
    assert set(m2["versions"]) >= {"torch", "python"}
    # loading through the manifest path works too
    again, _ = load_artifact(manifest_path(path))
    assert torch.equal(again.points, s.points)


def test_storage_counts_are_exact(tmp_path):
    st = make_set().storage()
    assert st["floats"] == 6 * 16 * 3 + 6 * 3
    assert st["bytes"] == st["floats"] * 4
    assert st["floats_by_array"] == {"points": 288, "angles": 18}
    assert st["floats_per_class"] == pytest.approx(306 / 3)
    assert st["clouds_per_class"] == [2, 2, 2] and st["effective_clouds_per_class"] == 2.0
    points_only = SyntheticSet(torch.zeros(4, 10, 3), torch.tensor([0, 0, 1, 1]), ["a", "b"]).storage()
    assert points_only["floats"] == 120 and points_only["bytes"] == 480


def test_tampered_file_is_detected(tmp_path):
    path = tmp_path / "set.h5"
    save_artifact(path, make_set(), {"method": "m"})
    with h5py.File(path, "r+") as h5:
        h5["points"][0, 0, 0] = 123.0
    with pytest.raises(ArtifactError, match="does not match the sha256"):
        load_artifact(path)


def test_truncated_artifact_is_a_clear_error(tmp_path):
    path = tmp_path / "set.h5"
    save_artifact(path, make_set(), {"method": "m"})
    manifest_path(path).unlink()  # no manifest: the h5 is read directly
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ArtifactError, match="truncated or not an artifact"):
        load_artifact(path)


def test_missing_artifact_and_bad_manifest(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nope.h5")
    path = tmp_path / "set.h5"
    save_artifact(path, make_set(), {"method": "m"})
    manifest_path(path).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(path)


def test_nan_sets_are_refused(tmp_path):
    s = make_set()
    s.points[0, 0, 0] = float("nan")
    with pytest.raises(ArtifactError, match="NaN"):
        save_artifact(tmp_path / "x.h5", s, {})


def test_shape_errors():
    with pytest.raises(ArtifactError, match=r"\(M, N, 3\)"):
        SyntheticSet(torch.zeros(2, 3), torch.zeros(2), ["a"])
    with pytest.raises(ArtifactError, match="neither 'points' nor extras"):
        SyntheticSet(torch.zeros(2, 4, 3), torch.zeros(2), ["a"], stored=["points", "angles"])


def test_manifest_is_plain_json_with_hashes(tmp_path):
    path = tmp_path / "set.h5"
    save_artifact(path, make_set(), {"method": "m"})
    m = json.loads(manifest_path(path).read_text())
    assert len(m["sha256"]["file"]) == 64 and len(m["sha256"]["points"]) == 64
    assert m["format"] == "ddbench-synthetic-set" and m["format_version"] == 1


def test_synthetic_set_owns_its_data():
    live = torch.zeros(2, 4, 3)
    s = SyntheticSet(live, torch.tensor([0, 1]), ["a", "b"], extras={"angles": torch.zeros(2, 3)})
    live += 1.0
    assert s.points.abs().sum() == 0
