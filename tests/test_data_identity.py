"""A cell is done only for the data it was computed on: the content fingerprint of the prepared train and test
sets is checked before a finished cell is skipped, before an artifact or checkpoint is reused, and the release
and sampling are recorded in every cell."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddbench.data.cloudset import PointCloudSet
from ddbench.data.fingerprint import content_fingerprint
from ddbench.errors import DataError
from ddbench.pipeline import build_experiment, plan_grid, run_grid
from tests import mini_releases as mini

REPO = Path(__file__).resolve().parents[1]


def two_releases(tmp_path) -> tuple[Path, Path]:
    """Two data roots holding the same ModelNet10 layout with different clouds (other sampling seeds)."""
    a, b = tmp_path / "data_a", tmp_path / "data_b"
    mini.build_modelnet10_hdf5(a, seed=2)
    mini.build_modelnet10_hdf5(b, seed=3)
    return a, b


def experiment(tmp_path, data_root: Path, **kw):
    return build_experiment({
        "datasets": ["modelnet10"], "methods": ["random"], "ppc": [1], "eval_nets": 1, "epochs": 1,
        "results": str(tmp_path / "runs"), "device": "cpu", "data_root": str(data_root),
        "dataset_config": {"modelnet10": {"points": 64, "check_sizes": False}}, **kw}, {})


def test_the_fingerprint_sees_every_tensor():
    points, labels = torch.rand(4, 8, 3), torch.tensor([0, 0, 1, 1])
    base = PointCloudSet(points, labels, ["a", "b"])
    ref = content_fingerprint(base, base)
    assert content_fingerprint(PointCloudSet(points.clone(), labels.clone(), ["a", "b"]), base) == ref
    jittered = PointCloudSet(points + 1e-6, labels, ["a", "b"])
    relabelled = PointCloudSet(points, torch.tensor([0, 1, 0, 1]), ["a", "b"])
    assert len({ref, content_fingerprint(jittered, base), content_fingerprint(base, relabelled)}) == 3


def test_a_cell_computed_on_other_data_runs_again_and_the_old_record_is_kept(tmp_path):
    a, b = two_releases(tmp_path)
    assert run_grid(experiment(tmp_path, a)).ok == 1
    first = plan_grid(experiment(tmp_path, a))[0]
    assert run_grid(experiment(tmp_path, a)).skipped == 1  # same data: done
    second = run_grid(experiment(tmp_path, b))
    assert (second.skipped, second.ok) == (0, 1)  # other data: computed again, not taken from the first run
    record = json.loads((tmp_path / "runs" / "cells" / f"{first.cell_id}.json").read_text())
    cell_b = plan_grid(experiment(tmp_path, b))[0]
    assert cell_b.cell_id == first.cell_id and record["data"]["content_fingerprint"] == cell_b.data.content
    assert record["data"]["release"]["release"] == "hdf5"
    kept = list((tmp_path / "runs" / "cells" / "superseded").glob("*.json"))
    assert len(kept) == 1 and first.data.content in kept[0].name
    manifest = next((tmp_path / "runs" / "artifacts").glob("*.manifest.json"))
    assert json.loads(manifest.read_text())["data_fingerprint"] == cell_b.data.content  # not reused from a


def test_no_recompute_refuses_naming_both_fingerprints(tmp_path):
    a, b = two_releases(tmp_path)
    run_grid(experiment(tmp_path, a))
    fa, fb = (plan_grid(experiment(tmp_path, root))[0].data.content for root in (a, b))
    with pytest.raises(DataError, match=f"{fa}.*{fb}.*--no-recompute"):
        run_grid(experiment(tmp_path, b, no_recompute=True))


def test_the_cli_refuses_in_one_line(tmp_path):
    a, b = two_releases(tmp_path)
    args = [sys.executable, "-m", "ddbench", "run", "--datasets", "modelnet10", "--methods", "random", "--ppc", "1",
            "--eval-nets", "1", "--epochs", "1", "--results", str(tmp_path / "runs"), "--device", "cpu",
            "--set", "modelnet10.points=64", "--set", "modelnet10.check_sizes=false"]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "DDBENCH_CACHE": str(tmp_path / "cache")}
    subprocess.run([*args, "--data-root", str(a)], check=True, capture_output=True, env=env)
    proc = subprocess.run([*args, "--data-root", str(b), "--no-recompute"], capture_output=True, text=True, env=env)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "--no-recompute" in lines[0], proc.stderr


@pytest.mark.real_data
def test_published_cells_carry_the_fingerprint_of_the_shared_data(modelnet10_root):
    """The published cells' records carry the fingerprint of the data they were computed on (backfilled by
    results/backfill_data_fingerprints.py for those written before records had it), and it is today's, so they are
    done for this data (a cell's state compares exactly these two)."""
    from ddbench.cells.record import load_record
    from ddbench.pipeline import open_dataset

    paths = sorted((REPO / "results").glob("modelnet10_sadm_*/cells/*.json"))
    assert paths
    today = {}
    for path in paths:
        record = load_record(path)
        key = str(record.spec.get("dataset_config"))
        if key not in today:
            ds = open_dataset(record.dataset, record.spec.get("dataset_config"), modelnet10_root)
            today[key] = content_fingerprint(ds.load("train"), ds.load("test"))
        assert record.data["content_fingerprint"] == today[key], path.name


@pytest.mark.real_data
def test_the_backfill_writes_the_fingerprint_and_refuses_other_data(modelnet10_root, tmp_path):
    import shutil

    sys.path.insert(0, str(REPO / "results"))
    from backfill_data_fingerprints import backfill_folder

    folder = tmp_path / "param"
    shutil.copytree(REPO / "results" / "modelnet10_sadm_param", folder)
    for path in (folder / "cells").glob("*.json"):  # as written before records carried the data
        raw = json.loads(path.read_text())
        expected = raw["data"].pop("content_fingerprint")
        raw["data"].pop("release")
        path.write_text(json.dumps(raw))
    for path in (folder / "artifacts").glob("*.manifest.json"):
        raw = json.loads(path.read_text())
        raw.pop("data_fingerprint"), raw.pop("data_release")
        path.write_text(json.dumps(raw))
    changed = backfill_folder(folder, str(modelnet10_root))
    assert len(changed) == 2 * len(list((folder / "cells").glob("*.json")))
    for path in (folder / "cells").glob("*.json"):
        assert json.loads(path.read_text())["data"]["content_fingerprint"] == expected
    assert backfill_folder(folder, str(modelnet10_root)) == []  # idempotent
    path = next((folder / "cells").glob("*.json"))
    raw = json.loads(path.read_text())
    raw["data"].pop("content_fingerprint")
    raw["data"]["fingerprint"]["files"]["ply_data_train0.h5"][0] += 1  # recorded on files of another size
    path.write_text(json.dumps(raw))
    with pytest.raises(Exception, match="differ"):
        backfill_folder(folder, str(modelnet10_root))
