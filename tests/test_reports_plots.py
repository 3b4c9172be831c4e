"""Every plot of ``ddbench plot``, built from a hand-made results directory: the figure objects have the expected
axes, series, labels, legend entries and error bars (not only a file on disk)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from ddbench.reports import plots
from ddbench.reports.frames import final_tidy
from ddbench.tables import aggregate, read_cells
from ddbench.tables.layouts import Labels, load_published
from tests.test_reports_fixtures import build_results

LABELS = Labels({"method": {"random": "Random", "herding": "Herding", "sadm": "SADM", "dd3d": "DD3D",
                            "3ddp": "3DDP", "whole": "Whole dataset"},
                 "dataset": {"modelnet10": "ModelNet10", "modelnet40": "ModelNet40"}},
                frozenset({"whole"}))


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    cells, _ = read_cells(build_results(tmp_path_factory.mktemp("runs")))
    tidy = final_tidy(cells, final=False)
    return tidy, aggregate(tidy[tidy["final"]])


def _bars(ax) -> dict[str, ErrorbarContainer]:
    return {c.get_label(): c for c in ax.containers if isinstance(c, ErrorbarContainer)}


def _half_lengths(container) -> np.ndarray:
    if not container.lines[2]:
        return np.array([])
    segments = container.lines[2][0].get_segments()
    return np.array([abs(s[1][1] - s[0][1]) / 2 for s in segments if len(s) == 2])


def test_accuracy_vs_ppc(frames):
    _, agg = frames
    fig = plots.accuracy_vs_ppc_figure(agg, "nets", "oa", load_published("sadm2025"), LABELS)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["ModelNet10", "ModelNet40"]
    ax = axes[0]
    assert ax.get_xlabel() == "Clouds per class (PPC)" and ax.get_ylabel() == "Overall accuracy (%)"
    bars = _bars(ax)
    measured = [k for k in bars if "published" not in k]
    assert sorted(measured) == sorted(["Random†", "Herding†", "SADM† (→ pointnet)", "SADM† (→ dgcnn)", "DD3D†",
                                       "3DDP†"])
    random = next(v for k, v in bars.items() if k.startswith("Random") and "published" not in k)
    assert list(random.lines[0].get_ydata()) == pytest.approx([np.mean([32, 36, 35]), np.mean([70, 71, 72.5])])
    assert _half_lengths(random) == pytest.approx([np.sqrt(2), np.sqrt(2)])  # std over nets, RMS over draws
    published = [k for k in bars if k.endswith("[sadm2025, published]")]
    assert {"Random [sadm2025, published]", "Herding [sadm2025, published]", "SADM [sadm2025, published]"} <= set(published)
    assert all(bars[k].lines[0].get_linestyle() == "--" for k in published)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Whole dataset" in legend and set(bars) <= set(legend)
    assert ax.get_xscale() == "log" and {1.0, 3.0, 10.0} <= set(ax.get_xticks())
    assert any("published numbers" in t.get_text() for t in fig.texts)


def test_accuracy_vs_ppc_over_draws(frames):
    _, agg = frames
    fig = plots.accuracy_vs_ppc_figure(agg, "draws", "oa", None, LABELS)
    random = next(v for k, v in _bars(fig.get_axes()[0]).items() if k.startswith("Random"))
    assert _half_lengths(random) == pytest.approx([np.std([32, 36, 35]), np.std([70, 71, 72.5])])
    assert "std over draw seeds" in fig.get_suptitle()
    herding = next(v for k, v in _bars(fig.get_axes()[0]).items() if k.startswith("Herding"))
    assert len(_half_lengths(herding)) == 0 or np.isnan(_half_lengths(herding)).all()  # one draw: no bar


def test_accuracy_vs_storage(frames):
    _, agg = frames
    fig = plots.accuracy_vs_storage_figure(agg, labels=LABELS)
    ax = fig.get_axes()[0]
    assert ax.get_xlabel() == "Stored KiB per class (log scale)" and ax.get_xscale() == "log"
    random = next(v for k, v in _bars(ax).items() if k.startswith("Random"))
    assert list(random.lines[0].get_xdata()) == pytest.approx([12.0, 36.0])  # 4 x 3072 x PPC bytes
    assert [t.get_text() for t in ax.texts if t.get_text().startswith("PPC")].count("PPC 3") >= 2


def test_accuracy_vs_iteration(frames):
    tidy, _ = frames
    fig = plots.accuracy_vs_iteration_figure(aggregate(tidy), labels=LABELS)
    ax = fig.get_axes()[0]
    assert ax.get_xlabel() == "Distillation iteration"
    bars = _bars(ax)
    sadm1 = next(v for k, v in bars.items() if k.startswith("SADM") and "PPC 1" in k and "dgcnn" not in k)
    assert list(sadm1.lines[0].get_xdata()) == [0, 50, 100]
    assert list(sadm1.lines[0].get_ydata()) == pytest.approx(np.array([47 - 10, 47 - 4, 47]))
    assert any(k.startswith("DD3D") for k in bars)  # final evaluations of every iterative method
    assert not any("random" in k.lower() for k in bars)  # not iterative: no iteration recorded
    assert not any("only final evaluations" in t.get_text() for t in fig.texts)


def test_heatmap(frames):
    _, agg = frames
    fig = plots.heatmap_figure(agg, labels=LABELS)
    axes = [ax for ax in fig.get_axes() if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["ModelNet10, PPC 1", "ModelNet10, PPC 3", "ModelNet40, PPC 1"]
    ax = axes[0]
    grid = ax.get_images()[0].get_array()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["pointnet", "dgcnn"]
    methods = [t.get_text() for t in ax.get_yticklabels()]
    assert methods == ["Random", "Herding", "SADM", "DD3D", "3DDP"]
    assert grid.shape == (5, 2)
    assert grid[methods.index("SADM"), 1] == pytest.approx(40) and grid.mask[methods.index("Random"), 1]
    assert ax.get_xlabel() == "Evaluation network" and ax.get_ylabel() == "Method"


def test_cost_panel(frames):
    tidy, _ = frames
    fig = plots.cost_figure(tidy, LABELS)
    axes = fig.get_axes()
    assert [ax.get_xlabel() for ax in axes] == ["Distillation time (s)", "Evaluation time (s)",
                                               "Peak resident memory (GiB)"]
    entries = [t.get_text() for t in axes[0].get_yticklabels()]
    assert len(axes[0].patches) == len(entries) == 11  # one bar per aggregated number of finished cells
    eval_bar = dict(zip(entries, [p.get_width() for p in axes[1].patches]))
    random1 = next(v for k, v in eval_bar.items() if k.startswith("Random") and "PPC 1 " in k + " "
                   and "ModelNet10" in k)
    assert random1 == pytest.approx(np.mean([20, 21, 22]))  # mean over the three draws
    assert max(p.get_width() for p in axes[2].patches) == pytest.approx((2**30 + 2) / 2**30)


@pytest.mark.parametrize("suffix,magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_save_figure_formats(frames, tmp_path, suffix, magic):
    _, agg = frames
    path = plots.save_figure(plots.accuracy_vs_ppc_figure(agg, labels=LABELS), tmp_path / f"ppc.{suffix}")
    assert path.read_bytes().startswith(magic)


def test_all_figures_rejects_an_unknown_kind(frames):
    from ddbench.errors import DDBenchError

    with pytest.raises(DDBenchError, match="unknown plot 'pie'"):
        plots.all_figures(frames[0], kinds=("pie",))
