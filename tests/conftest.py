"""Shared fixtures: isolated cache/data env, tiny datasets, the real ModelNet10 (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ddbench.data.cloudset import PointCloudSet
from ddbench.plugins import reset_registries

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DDBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
MODELNET10_DIR = SHARED_DATA / "modelnet10_hdf5_1024"

#: a tiny, fast version of the built-in dataset for end-to-end tests
TINY_SHAPES = {"points": 64, "train_per_class": 4, "test_per_class": 2}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """Every test gets its own cache and no third-party plugin filters from the caller's environment."""
    monkeypatch.setenv("DDBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("DDBENCH_PLUGINS", raising=False)
    monkeypatch.delenv("DDBENCH_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("DDBENCH_DATA", raising=False)
    reset_registries()
    torch.manual_seed(0)
    yield
    reset_registries()


@pytest.fixture
def modelnet10_root() -> Path:
    if not MODELNET10_DIR.exists():
        pytest.skip(f"real ModelNet10 not found at {MODELNET10_DIR}")
    return SHARED_DATA


def make_cloudset(num_classes: int = 3, per_class: int = 5, points: int = 32, seed: int = 0) -> PointCloudSet:
    """Clouds whose classes differ by a shift, so that every class is well separated."""
    gen = torch.Generator().manual_seed(seed)
    clouds, labels = [], []
    for k in range(num_classes):
        base = torch.randn(per_class, points, 3, generator=gen) * 0.1
        base[..., 0] += k
        clouds.append(base)
        labels += [k] * per_class
    return PointCloudSet(torch.cat(clouds), torch.tensor(labels), [f"c{k}" for k in range(num_classes)], "toy")


@pytest.fixture
def toy_set() -> PointCloudSet:
    return make_cloudset()
