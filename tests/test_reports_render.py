"""``ddbench render``: the gallery beside real clouds, generator resolutions, anchors and morphs; inspected as
figure objects (panels, titles, the plotted points and their colours)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddbench.reports import gallery
from tests.test_reports_fixtures import CLASSES, anchors_set, generator_set, real_clouds


def _offsets(ax) -> np.ndarray:
    xs, ys, zs = ax.collections[0]._offsets3d
    return np.stack([np.asarray(xs), np.asarray(ys), np.asarray(zs)], axis=1)


def test_gallery_rows_are_classes_synthetic_then_real():
    synth = anchors_set()
    real = real_clouds()
    fig = gallery.gallery_figure(synth.points, synth.labels, synth.class_names, real, per_class=2, real_per_class=2)
    axes = fig.get_axes()
    assert len(axes) == len(CLASSES) * 4 and all(ax.name == "3d" for ax in axes)
    assert [ax.get_title() for ax in axes[:4]] == ["synthetic 1", "synthetic 2", "real 1", "real 2"]
    row_labels = [t.get_text() for ax in axes[::4] for t in ax.texts]
    assert row_labels == CLASSES
    # row 2 (sofa): its first synthetic cloud is the first cloud labelled 2, its first real one the first real sofa
    first_sofa = int(np.flatnonzero(synth.labels.numpy() == 2)[0])
    assert _offsets(axes[8]) == pytest.approx(gallery.oriented(synth.points[first_sofa].numpy(), "z"))
    first_real = int(np.flatnonzero(real[1].numpy() == 2)[0])
    assert _offsets(axes[10]) == pytest.approx(gallery.oriented(real[0][first_real].numpy(), "z"))


def test_points_are_coloured_by_height_with_a_fixed_view():
    synth = anchors_set()
    for up in ("z", "y"):
        fig = gallery.gallery_figure(synth.points, synth.labels, synth.class_names, None, per_class=1, up=up)
        ax = fig.get_axes()[0]
        height = synth.points[0].numpy()[:, gallery.AXES[up]]
        assert np.asarray(ax.collections[0].get_array()) == pytest.approx(height)
        assert (ax.elev, ax.azim) == (gallery.VIEW["elev"], gallery.VIEW["azim"])
        assert tuple(ax.get_zlim()) == pytest.approx((-1, 1))


def test_gallery_without_real_clouds_and_with_chosen_classes():
    synth = anchors_set()
    fig = gallery.gallery_figure(synth.points, synth.labels, synth.class_names, None, classes=["sofa"], per_class=3)
    assert len(fig.get_axes()) == 3 and [t.get_text() for t in fig.get_axes()[0].texts] == ["sofa"]
    from ddbench.errors import DDBenchError

    with pytest.raises(DDBenchError, match="unknown class 'lamp'"):
        gallery.gallery_figure(synth.points, synth.labels, synth.class_names, None, classes=["lamp"])


def test_generator_rendered_at_several_resolutions():
    synth = generator_set()
    fig = gallery.resolutions_figure(synth, (32, 128, 512))
    axes = fig.get_axes()
    assert len(axes) == len(CLASSES) * 3
    assert [ax.get_title() for ax in axes[:3]] == ["32 points", "128 points", "512 points"]
    assert [len(_offsets(ax)) for ax in axes[:3]] == [32, 128, 512]
    from ddbench.synthetic.generators import materialise

    expected = materialise(synth, 128).points[0].numpy()
    assert _offsets(axes[1]) == pytest.approx(gallery.oriented(expected, "z"), abs=1e-6)


def test_anchors_and_morphs_with_their_weights():
    synth = anchors_set(m=2, morphs=3)
    fig = gallery.anchors_morphs_figure(synth, morphs=2)
    axes = fig.get_axes()
    assert len(axes) == len(CLASSES) * (2 + 2)
    assert [ax.get_title().split("\n")[0] for ax in axes[:4]] == ["anchor 1", "anchor 2", "morph 1", "morph 2"]
    weights = torch.softmax(synth.extras["morph_logits"][1, 0], -1).numpy()
    morph_title = axes[4 + 2].get_title()  # class 1, morph 1
    assert f"w=({weights[0]:.2f}, {weights[1]:.2f})" in morph_title
    stored = synth.points[1 * 5 + 2].numpy()  # class 1's first morph, as stored in the set
    assert _offsets(axes[4 + 2]) == pytest.approx(gallery.oriented(stored, "z"), abs=1e-5)


def test_artifact_figures_follow_what_the_artifact_stores():
    assert set(gallery.artifact_figures(generator_set(), {"method": "x"}, None)) == {"gallery", "resolutions"}
    assert set(gallery.artifact_figures(anchors_set(), {"method": "x"}, None)) == {"gallery", "anchors"}
    plain = anchors_set()
    plain.extras = {}
    assert set(gallery.artifact_figures(plain, {}, real_clouds())) == {"gallery"}
