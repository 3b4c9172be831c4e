"""Renders of synthetic sets (``ddbench render``): what the clouds look like, beside real clouds of their class.

Matplotlib 3D scatter on the Agg canvas, coloured by height (the ``up`` axis: z for ModelNet in ddbench's
layout), one fixed view for every panel, axes hidden, limits fixed to the unit sphere so that sizes compare.

- :func:`gallery_figure`: one row per class; the first columns are synthetic clouds of the class, the last
  ones real clouds of the class (the papers' qualitative figures);
- :func:`resolutions_figure`: a generator artifact (DD3D) materialised at several resolutions;
- :func:`anchors_morphs_figure`: a 3DDP-style artifact: each class's anchors and a few of its morphs, with the
  morph weights (softmax of the stored logits).

What an artifact is, is read from what it stores (``info["generator"]``; ``extras`` ``anchors`` and
``morph_logits``), not from the method's name.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from ddbench.reports.plots import new_figure

VIEW = {"elev": 20.0, "azim": -60.0}
AXES = {"x": 0, "y": 1, "z": 2}
CMAP = "viridis"


def _as_numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def oriented(points: np.ndarray, up: str = "z") -> np.ndarray:
    """(N, 3) points with the ``up`` axis last (the plot's vertical axis), keeping a right-handed frame."""
    i = AXES[up]
    return points[:, [(i + 1) % 3, (i + 2) % 3, i]]


def scatter_cloud(ax, points, up: str = "z", size: float | None = None, title: str = "") -> None:
    """One cloud on a 3D axes, coloured by height, fixed view and limits, axes hidden."""
    pts = oriented(_as_numpy(points).reshape(-1, 3), up)
    size = size if size is not None else max(0.5, 6.0 * math.sqrt(256 / max(len(pts), 1)))
    ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], c=pts[:, 2], cmap=CMAP, s=size, vmin=-1, vmax=1, linewidths=0,
               depthshade=False, rasterized=True)
    ax.view_init(**VIEW)
    for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
        setter(-1, 1)
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=7, pad=0)


def _class_rows(labels: np.ndarray, class_names: list[str], classes: list[str] | None, limit: int) -> list[int]:
    present = [int(k) for k in np.unique(labels)]
    if classes:
        unknown = [c for c in classes if c not in class_names]
        if unknown:
            from ddbench.errors import DDBenchError

            raise DDBenchError(f"unknown class {unknown[0]!r}; this set has {', '.join(class_names)}")
        present = [class_names.index(c) for c in classes if class_names.index(c) in present]
    return present[:limit]


def _grid_axes(fig: Figure, rows: int, cols: int) -> list[list]:
    return [[fig.add_subplot(rows, cols, r * cols + c + 1, projection="3d") for c in range(cols)]
            for r in range(rows)]


def _row_label(ax, text: str) -> None:
    ax.text2D(-0.08, 0.5, text, transform=ax.transAxes, rotation=90, ha="center", va="center", fontsize=8)


def gallery_figure(points, labels, class_names: list[str], real: tuple | None = None, classes=None,
                   per_class: int = 2, real_per_class: int = 2, max_classes: int = 10, up: str = "z",
                   title: str = "") -> Figure:
    """Rows = classes; ``per_class`` synthetic clouds of the class, then ``real_per_class`` real clouds of it
    (``real`` = (points, labels); left out when None). Empty panels where a class has fewer clouds."""
    points, labels = _as_numpy(points), _as_numpy(labels).reshape(-1)
    real_pts, real_lab = (_as_numpy(real[0]), _as_numpy(real[1]).reshape(-1)) if real is not None else (None, None)
    rows = _class_rows(labels, class_names, classes, max_classes)
    n_real = real_per_class if real is not None else 0
    cols = per_class + n_real
    fig = new_figure(1.7 * cols, 1.7 * max(1, len(rows)) + 0.4)
    grid = _grid_axes(fig, max(1, len(rows)), cols)
    for r, k in enumerate(rows):
        syn = np.flatnonzero(labels == k)[:per_class]
        ones = np.flatnonzero(real_lab == k)[:n_real] if real is not None else []
        for c, ax in enumerate(grid[r]):
            head = r == 0
            if c < per_class:
                if c < len(syn):
                    scatter_cloud(ax, points[syn[c]], up, title=f"synthetic {c + 1}" if head else "")
                else:
                    ax.set_axis_off()
            elif c - per_class < len(ones):
                scatter_cloud(ax, real_pts[ones[c - per_class]], up, title=f"real {c - per_class + 1}" if head else "")
            else:
                ax.set_axis_off()
        _row_label(grid[r][0], class_names[k])
    fig.suptitle(title or "Synthetic clouds (left) and real clouds of the class (right), coloured by height",
                 fontsize=9)
    return fig


def resolutions_figure(synth, resolutions=(256, 1024, 4096), classes=None, max_classes: int = 10,
                       up: str = "z", seed: int | None = None) -> Figure:
    """A generator-backed set materialised at each of ``resolutions`` points (the first cloud of each class);
    ``seed``: the noise seed (default: the stored one)."""
    from ddbench.synthetic.generators import materialise

    labels = _as_numpy(synth.labels).reshape(-1)
    rows = _class_rows(labels, synth.class_names, classes, max_classes)
    sets = {n: _as_numpy(materialise(synth, n, seed).points) for n in resolutions}
    fig = new_figure(1.7 * len(resolutions), 1.7 * max(1, len(rows)) + 0.4)
    grid = _grid_axes(fig, max(1, len(rows)), len(resolutions))
    for r, k in enumerate(rows):
        first = int(np.flatnonzero(labels == k)[0])
        for c, n in enumerate(resolutions):
            scatter_cloud(grid[r][c], sets[n][first], up, title=f"{n} points" if r == 0 else "")
        _row_label(grid[r][0], synth.class_names[k])
    fig.suptitle("One generator, sampled at several resolutions (stored noise seed)", fontsize=9)
    return fig


def is_generator(synth) -> bool:
    return bool(synth.info.get("generator"))


def has_anchors(synth) -> bool:
    return {"anchors", "morph_logits"} <= set(synth.extras)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def anchors_morphs_figure(synth, morphs: int = 3, classes=None, max_classes: int = 10, up: str = "z") -> Figure:
    """Per class (its first slot): the M anchors, then ``morphs`` of its L morphs (point-wise convex combinations
    of the anchors) titled with their weights."""
    anchors = _as_numpy(synth.extras["anchors"])  # (S, M, N2, 3)
    weights = _softmax(_as_numpy(synth.extras["morph_logits"]).astype(np.float64))  # (S, L, M)
    slots, m = anchors.shape[:2]
    per_slot = m + weights.shape[1]
    slot_labels = _as_numpy(synth.labels).reshape(-1)[::per_slot][:slots]
    rows = _class_rows(slot_labels, synth.class_names, classes, max_classes)
    shown = min(morphs, weights.shape[1])
    fig = new_figure(1.7 * (m + shown), 1.7 * max(1, len(rows)) + 0.5)
    grid = _grid_axes(fig, max(1, len(rows)), m + shown)
    for r, k in enumerate(rows):
        s = int(np.flatnonzero(slot_labels == k)[0])
        for j in range(m):
            scatter_cloud(grid[r][j], anchors[s, j], up, title=f"anchor {j + 1}" if r == 0 else "")
        for j in range(shown):
            w = weights[s, j]
            morph = np.einsum("m,mnc->nc", w, anchors[s])
            scatter_cloud(grid[r][m + j], morph, up,
                          title=f"morph {j + 1}\nw=({', '.join(f'{x:.2f}' for x in w)})")
        _row_label(grid[r][0], synth.class_names[k])
    fig.suptitle(f"Anchors ({m} per slot) and morphs (their convex combinations) of the first slot of each class",
                 fontsize=9)
    return fig


def artifact_figures(synth, manifest: dict, real: tuple | None = None, up: str = "z", per_class: int = 2,
                     real_per_class: int = 2, classes=None, max_classes: int = 10,
                     resolutions=(256, 1024, 4096)) -> dict[str, Figure]:
    """Every render of one artifact: ``gallery``, and ``resolutions`` (generators) or ``anchors`` (anchor and
    morph sets) where the artifact stores them."""
    title = (f"{manifest.get('method', '?')} on {manifest.get('dataset', '?')}, PPC {manifest.get('ppc', '?')}, "
             f"seed {manifest.get('seed', '?')}: synthetic clouds"
             + (" (left) and real clouds of the class (right)" if real is not None else "") + ", coloured by height")
    figs = {"gallery": gallery_figure(synth.points, synth.labels, synth.class_names, real, classes, per_class,
                                      real_per_class, max_classes, up, title)}
    if is_generator(synth):
        figs["resolutions"] = resolutions_figure(synth, resolutions, classes, max_classes, up)
    if has_anchors(synth):
        figs["anchors"] = anchors_morphs_figure(synth, classes=classes, max_classes=max_classes, up=up)
    return figs
