"""The cache of ``ddbench list``: reused only while nothing it was built from has changed."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

from ddbench.pipeline.listing_cache import cached_rows

REPO = Path(__file__).resolve().parents[1]


class Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return [{"name": "x", "calls": self.calls}]


def test_second_listing_is_served_from_the_cache(tmp_path):
    compute = Counter()
    first = cached_rows("method", tmp_path, compute)
    second = cached_rows("method", tmp_path, compute)
    assert compute.calls == 1 and first == second == [{"name": "x", "calls": 1}]
    assert cached_rows("backbone", tmp_path, compute)[0]["calls"] == 2  # another kind, another entry
    assert cached_rows("method", tmp_path, compute, refresh=True)[0]["calls"] == 3


def test_a_changed_imported_file_rebuilds_the_listing(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    module = tmp_path / "pkg" / "fake_plugin_for_listing.py"
    module.write_text("NAME = 'a'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    importlib.import_module("fake_plugin_for_listing")
    try:
        compute = Counter()
        cached_rows("method", tmp_path / "cache", compute)
        module.write_text("NAME = 'bb'\n")  # a plugin's source changes (size and mtime)
        assert cached_rows("method", tmp_path / "cache", compute)[0]["calls"] == 2
        assert cached_rows("method", tmp_path / "cache", compute)[0]["calls"] == 2
    finally:
        sys.modules.pop("fake_plugin_for_listing", None)


def test_plugin_environment_variables_rebuild_the_listing(tmp_path, monkeypatch):
    compute = Counter()
    cached_rows("method", tmp_path, compute)
    monkeypatch.setenv("DDBENCH_DISABLE_PLUGINS", "example")
    assert cached_rows("method", tmp_path, compute)[0]["calls"] == 2


def test_new_data_under_the_data_root_rebuilds_the_dataset_listing(tmp_path):
    root = tmp_path / "data"
    (root / "modelnet10_hdf5_1024").mkdir(parents=True)
    compute = Counter()
    cached_rows("dataset", tmp_path / "cache", compute, data_root=root)
    assert cached_rows("dataset", tmp_path / "cache", compute, data_root=root)[0]["calls"] == 1
    (root / "modelnet10_hdf5_1024" / "train_files.txt").write_text("x\n")  # a release arrives
    assert cached_rows("dataset", tmp_path / "cache", compute, data_root=root)[0]["calls"] == 2
    assert cached_rows("dataset", tmp_path / "cache", compute, data_root=tmp_path)[0]["calls"] == 3


def test_a_cached_listing_answers_without_importing_torch(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "DDBENCH_CACHE": str(tmp_path), "COLUMNS": "200"}
    probe = ("import sys; sys.argv = ['ddbench', 'list', 'methods', '--json']\n"
             "from ddbench.cli.app import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)")
    runs = [subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
            for _ in range(2)]
    assert [r.stderr.strip().splitlines()[-1] for r in runs] == ["TORCH", "NO-TORCH"], runs[1].stderr
    assert json.loads(runs[0].stdout) == json.loads(runs[1].stdout)
    assert {r["name"] for r in json.loads(runs[1].stdout)} >= {"sadm", "dm", "dd3d", "random"}
