"""The report commands end to end (in-process, typer's runner): ``ddbench plot``, ``render``, ``report``,
``compare`` and ``table --significant`` on a hand-made results directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ddbench.cli.app import app
from ddbench.errors import DDBenchError
from tests.test_reports_fixtures import build_results

runner = CliRunner()


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return build_results(tmp_path_factory.mktemp("runs"))


def invoke(*args: str):
    res = runner.invoke(app, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    assert res.exit_code == 0, res.output
    return res


def test_plot_one_kind_into_a_file_and_all_into_a_directory(results, tmp_path):
    invoke("plot", "ppc", "--results", results, "--out", tmp_path / "ppc.svg", "--published", "sadm2025")
    svg = (tmp_path / "ppc.svg").read_text()
    assert svg.startswith("<?xml") and "Clouds per class (PPC)" in svg and "published" in svg
    invoke("plot", "all", "--results", results, "--out", tmp_path / "all", "--format", "pdf", "--std", "draws")
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [f"{k}.pdf" for k in
                                                                   sorted(("ppc", "storage", "iteration", "heatmap",
                                                                           "cost"))]


def test_plot_rejects_an_unknown_kind(results, tmp_path):
    with pytest.raises(DDBenchError, match="unknown plot"):
        invoke("plot", "pie", "--results", results, "--out", tmp_path)


def test_render_writes_the_gallery_and_the_generator_resolutions(results, tmp_path):
    invoke("render", results / "artifacts" / "dd3d.h5", "--no-real", "--out", tmp_path / "dd3d.png",
           "--resolutions", "32,64")
    assert (tmp_path / "dd3d.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "dd3d_resolutions.png").exists() and not (tmp_path / "dd3d_anchors.png").exists()
    invoke("render", results / "artifacts" / "3ddp.manifest.json", "--no-real", "--out", tmp_path / "a.svg")
    assert (tmp_path / "a.svg").exists() and (tmp_path / "a_anchors.svg").exists()


def test_report_command(results, tmp_path):
    res = invoke("report", "--results", results, "--out", tmp_path / "site", "--no-galleries", "--title", "Fixture")
    html = (tmp_path / "site" / "report.html").read_text()
    assert "<title>Fixture</title>" in html and "report.html" in res.output


def test_compare_two_methods(results):
    text = invoke("compare", "sadm", "random", "--results", results).output
    assert "| SADM | Random | draws |" in text and "SADM better" in text
    rows = json.loads(invoke("compare", "herding", "random", "--results", results, "--format", "json").output)
    mn40 = next(r for r in rows if r["dataset"] == "ModelNet40")
    assert mn40["verdict"].startswith("no significant difference") and mn40["unit"] == "nets"


def test_compare_two_directories(results, tmp_path):
    import shutil

    other = Path(shutil.copytree(results, tmp_path / "other"))
    rows = json.loads(invoke("compare", results, other, "--method", "sadm", "--format", "json").output)
    assert rows and all(r["diff"] == 0 and r["verdict"].startswith("no significant difference") for r in rows)
    with pytest.raises(DDBenchError, match="not in both"):
        invoke("compare", results, other, "--method", "dm")


def test_compare_names_what_it_cannot_find(results):
    with pytest.raises(DDBenchError, match="neither a directory nor a method"):
        invoke("compare", "sadm", "nosuch", "--results", results)


def test_table_significant_flag(results):
    plain = invoke("table", "--results", results, "--datasets", "modelnet10").output
    marked = invoke("table", "--results", results, "--datasets", "modelnet10", "--significant").output
    assert "significantly better" in marked and "significantly better" not in plain
    assert marked.count("**") < plain.count("**")
