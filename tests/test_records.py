"""The typed cell record: written by the cell, read by tables and status, first-schema files migrated; deviations as
structured fields; method roles instead of names."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from ddbench import hookimpl, plugins
from ddbench.cells.deviations import Deviation, parse_legacy
from ddbench.cells.record import SCHEMA_VERSION, load_record
from ddbench.cells.spec import CellSpec
from ddbench.methods.coreset import WholeMethod
from ddbench.pipeline import build_experiment, make_tables, plan_grid, run_grid
from tests.conftest import TINY_SHAPES

REPO = Path(__file__).resolve().parents[1]
V1_CELL = next((REPO / "results" / "modelnet10_sadm_param" / "cells").glob("modelnet10__3ddp__*.json"))


def experiment(tmp_path, **kw):
    values = {"datasets": ["shapes"], "ppc": [1], "eval_nets": 1, "epochs": 2, "results": str(tmp_path / "runs"),
              "dataset_config": {"shapes": TINY_SHAPES}, "device": "cpu", **kw}
    return build_experiment(values, {})


@pytest.mark.parametrize("legacy,expected", [
    ({"what": "eval_nets", "reference": 10, "used": 5, "kind": "budget"},
     {"setting": "eval_nets", "label": "eval_nets"}),
    ({"what": "iterations (iterations)", "reference": 400, "used": 20, "kind": "budget"},
     {"setting": "iterations", "field": "iterations", "label": "iterations"}),
    ({"what": "iterations (outer_loop)", "reference": 5, "used": 2, "kind": "budget"},
     {"setting": "iterations", "field": "outer_loop", "label": "iterations (outer_loop)"}),
    ({"what": "method herding: embedding", "reference": "trained", "used": "random", "kind": "config"},
     {"component_kind": "method", "component": "herding", "field": "embedding", "label": "method herding: embedding"}),
    ({"what": "selection", "reference": "final", "used": "best_test", "kind": "test-selection"},
     {"setting": "selection", "label": "selection"}),
])
def test_first_schema_deviations_parse_into_fields_and_back(legacy, expected):
    dev = parse_legacy(legacy)
    label = expected.pop("label")
    assert {k: getattr(dev, k) for k in expected} == expected
    assert dev.label() == label
    assert dev.legacy() == legacy  # the layout that cell ids hash


def test_a_first_schema_file_loads_as_the_current_record():
    raw = json.loads(V1_CELL.read_text())
    assert raw["schema_version"] == 1
    record = load_record(V1_CELL)
    assert record.schema_version == SCHEMA_VERSION and record.method_role == "distilled"
    assert {d.setting for d in record.deviations} == {"eval_nets", "iterations"}
    assert record.results.num_nets == len(record.results.nets) == 5
    assert CellSpec.model_validate(record.spec).cell_id == record.cell_id


def test_a_damaged_record_is_named_with_its_reason(tmp_path):
    path = tmp_path / "cells" / "x.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"schema": "ddbench-cell", "schema_version": 1, "status": "ok"}))
    with pytest.raises(ValueError, match="x.json.*cell_id"):
        load_record(path)
    path.write_text(json.dumps({**json.loads(V1_CELL.read_text()), "schema_version": 99}))
    with pytest.raises(ValueError, match="newer than this ddbench reads"):
        load_record(path)


def test_a_new_cell_writes_the_typed_record(tmp_path):
    exp = experiment(tmp_path, methods=["random", "whole"], method_config={"whole": {"max_per_class": 2}})
    assert run_grid(exp).ok == 2
    records = {r.method: r for r in map(load_record, (tmp_path / "runs" / "cells").glob("*.json"))}
    assert records["random"].method_role == "coreset" and records["whole"].method_role == "full_data"
    raw = json.loads(Path(records["random"].path).read_text())
    assert raw["schema"] == "ddbench-cell" and raw["schema_version"] == SCHEMA_VERSION
    devs = [Deviation.model_validate(d) for d in raw["deviations"]]
    assert {(d.kind, d.setting) for d in devs} >= {("budget", "eval_nets"), ("budget", "epochs")}
    assert "path" not in raw


class Everything(WholeMethod):
    """A third-party full-data method under another name."""

    name = "all_clouds"


def test_roles_not_names_decide_the_reference_row_and_all(tmp_path, monkeypatch):
    reg = plugins.load_registries(extra_plugins=[
        ("ev", types.SimpleNamespace(register_methods=hookimpl(lambda register: register(Everything))))],
        entry_points=False)
    monkeypatch.setattr(plugins, "_CACHE", reg)
    assert "all_clouds" not in {c.spec.method for c in plan_grid(experiment(tmp_path, methods=["all"]))}
    exp = experiment(tmp_path, methods=["random", "all_clouds"], method_config={"all_clouds": {"max_per_class": 2}})
    assert run_grid(exp).ok == 2
    csv = make_tables(str(tmp_path / "runs"), "csv")
    kinds = {line.split(",")[0]: line.split(",")[2] for line in csv.splitlines()[1:]}
    assert kinds == {"random": "method", "all_clouds": "whole"}  # the full-data reference row, never ranked
