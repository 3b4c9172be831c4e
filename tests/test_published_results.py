"""The published results under results/ survive code changes: the tables they render are byte-identical to the
golden files (made with the code that produced them), every cell's id is still the one its spec hashes to, and
the experiment files still plan the published cells, so that they resume instead of running again.

To regenerate the golden files after an intended change of the tables: ``DDBENCH_UPDATE_GOLDEN=1 pytest
tests/test_published_results.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ddbench.cells.record import load_record
from ddbench.cells.spec import CellSpec
from ddbench.pipeline import build_experiment, load_experiment_file, make_tables, plan_grid

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "published"
FOLDERS = {"coresets": "modelnet10_sadm_coresets", "matching": "modelnet10_sadm_matching",
           "param": "modelnet10_sadm_param"}
FORMATS = ["markdown", "latex", "csv", "tidy", "long"]
CELL_FILES = sorted((REPO / "results").glob("modelnet10_*/cells/*.json"))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DDBENCH_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.read_text() == text, f"{name} differs from the golden rendering of the published cells"


@pytest.mark.parametrize("short", sorted(FOLDERS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_published_tables_are_unchanged(short, fmt):
    text = make_tables(str(REPO / "results" / FOLDERS[short]), fmt, published="sadm2025")
    check_golden(f"{short}_{fmt}.txt", text)


@pytest.mark.parametrize("short", sorted(FOLDERS))
def test_published_draw_tables_are_unchanged(short):
    check_golden(f"{short}_draws.txt", make_tables(str(REPO / "results" / FOLDERS[short]), "markdown", std="draws"))


def test_published_side_by_side_table_is_unchanged():
    dirs = [str(REPO / "results" / f) for f in sorted(FOLDERS.values())]
    check_golden("all_markdown.txt", make_tables(dirs, "markdown", published="all", datasets=["modelnet10"]))


def test_there_are_published_cells():
    assert len(CELL_FILES) >= 9


@pytest.mark.parametrize("path", CELL_FILES, ids=[p.stem[:40] for p in CELL_FILES])
def test_published_cell_ids_are_what_their_specs_hash_to(path):
    record = load_record(path)
    spec = CellSpec.model_validate(record.spec)
    assert spec.cell_id == record.cell_id == path.stem
    manifest = Path(str(REPO / "results" / path.parts[-3] / record.artifact["path"]).replace(".h5", ".manifest.json"))
    assert json.loads(manifest.read_text())["distill_key"] == spec.distill_key


@pytest.mark.real_data
def test_experiment_files_still_plan_the_published_cells(modelnet10_root):
    """The coreset experiment file, run as its header says, plans the ids of its published cells, except where a
    component's version has been bumped since (a changed default makes a new cell on purpose): with the versions
    of today, each published spec hashes to a planned id."""
    folder = REPO / "results" / "modelnet10_sadm_coresets"
    values = load_experiment_file(folder / "experiment.toml")
    planned = {c.cell_id: c.spec for c in plan_grid(build_experiment(values, {"data_root": str(modelnet10_root)}))}
    today = next(iter(planned.values()))
    # results/run_pending.sh runs the same file again at the reference 10 nets (queue item 2)
    planned |= {c.cell_id: c.spec for c in plan_grid(build_experiment(values, {"data_root": str(modelnet10_root),
                                                                                 "eval_nets": 10}))}
    for path in (folder / "cells").glob("*.json"):
        spec = CellSpec.model_validate(load_record(path).spec)
        if spec.cell_id in planned:
            continue
        bumped = {k: getattr(today, k) for k in ("protocol_version", "dataset_version")
                  if getattr(spec, k) != getattr(today, k)}
        assert bumped, f"{path.name} is no longer planned and no version changed"
        moved = spec.model_copy(update=bumped)
        same = [s for s in planned.values() if s.method == spec.method and s.ppc == spec.ppc and s.seed == spec.seed]
        assert same and moved.identity() == {**same[0].identity(), "protocol_config": moved.identity()["protocol_config"]}
