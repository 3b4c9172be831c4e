"""Hand-made results directories for the report tests (tests/test_reports*.py), and checks that they are what
the tests assume: typed records that ``load_record`` reads, with known per-draw means.

The directory ``build_results(root)`` holds, under protocol sadm v1 (5 nets per draw; net accuracies are the
draw's mean + (-2, -1, 0, 1, 2), so the std over nets with ddof 0 is sqrt(2)):

| dataset    | method  | PPC | eval net | draws: means                  | notes                               |
| modelnet10 | random  | 1   | pointnet | s0 32, s1 36, s2 35           |                                     |
| modelnet10 | random  | 3   | pointnet | s0 70, s1 71, s2 72.5         |                                     |
| modelnet10 | herding | 1   | pointnet | s0 46                         | artifact: a points set              |
| modelnet10 | sadm    | 1   | pointnet | s0 44, s1 50, s2 47           | intermediate evaluations 0 and 50   |
| modelnet10 | sadm    | 3   | pointnet | s0 80, s1 81.5, s2 82         |                                     |
| modelnet10 | sadm    | 1   | dgcnn    | s0 40                         | heat map                            |
| modelnet10 | dd3d    | 1   | pointnet | s0 38                         | artifact: a generator               |
| modelnet10 | 3ddp    | 1   | pointnet | s0 30                         | artifact: anchors and morphs        |
| modelnet10 | whole   | -   | pointnet | s0 90                         | full data                           |
| modelnet40 | random  | 1   | pointnet | s0 35 (nets 35 34 36 33 37)   |                                     |
| modelnet40 | herding | 1   | pointnet | s0 35 (nets 34 36 35 33 37)   | not significantly better than random |
| modelnet10 | random  | 10  | pointnet | failed                        |                                     |
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ddbench.io import write_json_atomic

SPREAD = (-2.0, -1.0, 0.0, 1.0, 2.0)
CLASSES = ["chair", "table", "sofa"]
REFERENCE_URL = "https://github.com/example/sadm"


def nets_for(mean: float) -> list[float]:
    return [mean + d for d in SPREAD]


def record(dataset: str, method: str, ppc, seed: int, accs: list[float] | None, eval_backbone: str = "pointnet",
           status: str = "ok", role: str | None = None, artifact: str = "", by_iteration=None,
           final_iteration: int | None = None) -> dict:
    """One cell record of the current schema, by hand."""
    dbb = None if method in ("random", "whole") else ("pointnet_in" if method == "dd3d" else "pointnet")
    cell_id = f"{dataset}__{method}__ppc{ppc}__{dbb}__{eval_backbone}__sadm__s{seed}"
    per_class_bytes = 4 * 3072 * (ppc or 100)
    rec = {
        "schema": "ddbench-cell", "schema_version": 2, "cell_id": cell_id, "status": status, "dataset": dataset,
        "method": method, "method_role": role or {"whole": "full_data", "random": "coreset",
                                                  "herding": "coreset"}.get(method, "distilled"),
        "ppc": ppc, "seed": seed, "distill_backbone": dbb, "eval_backbone": eval_backbone, "protocol": "sadm",
        "protocol_version": "1",
        "deviations": [{"kind": "budget", "reference": 10, "used": 5, "setting": "eval_nets"}],
        "references": {"sadm": {"paper": "SADM (2025)", "repository": REFERENCE_URL, "revision": "abc123"}},
        "environment": {"device": "cpu", "device_name": "test-cpu", "allocator": "glibc",
                        "versions": {"ddbench": "0.1.0", "torch": "2.13.0+cpu"}},
        "seeds": {"cell": seed, "distill": seed, "eval_nets": [1996 + i for i in range(5)]},
        "artifact": {"path": artifact, "storage": {"floats": per_class_bytes // 4 * 3, "bytes": per_class_bytes * 3,
                                                   "bytes_per_class": per_class_bytes,
                                                   "effective_clouds_per_class": float(ppc or 100)}},
        "timing": {"distill_seconds": 10.0 * (ppc or 1), "eval_seconds": 20.0 + seed},
        "memory": {"peak_rss_bytes": 2**30 + seed},
    }
    if status != "ok":
        rec["error"] = "boom"
        return rec
    rec["results"] = _evaluation(accs, final_iteration)
    rec["results_by_iteration"] = [_evaluation(nets_for(m), it) for it, m in (by_iteration or [])]
    return rec


def _evaluation(accs, iteration=None) -> dict:
    mean = sum(accs) / len(accs)
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / len(accs))
    return {"nets": [{"seed": 1996 + i, "oa": a, "macc": a - 1} for i, a in enumerate(accs)], "oa_mean": mean,
            "oa_std": std, "ddof": 0, "num_nets": len(accs), "selection": "final", "engine": "sequential",
            "iteration": iteration}


def _cells() -> list[dict]:
    mn10 = "modelnet10"
    cells = [record(mn10, "random", 1, s, nets_for(m)) for s, m in enumerate([32, 36, 35])]
    cells += [record(mn10, "random", 3, s, nets_for(m)) for s, m in enumerate([70, 71, 72.5])]
    cells.append(record(mn10, "herding", 1, 0, nets_for(46), artifact="artifacts/herding.h5"))
    cells += [record(mn10, "sadm", 1, s, nets_for(m), by_iteration=[(0, m - 10), (50, m - 4)], final_iteration=100)
              for s, m in enumerate([44, 50, 47])]
    cells += [record(mn10, "sadm", 3, s, nets_for(m), final_iteration=100) for s, m in enumerate([80, 81.5, 82])]
    cells.append(record(mn10, "sadm", 1, 0, nets_for(40), eval_backbone="dgcnn", final_iteration=100))
    cells.append(record(mn10, "dd3d", 1, 0, nets_for(38), artifact="artifacts/dd3d.h5", final_iteration=20))
    cells.append(record(mn10, "3ddp", 1, 0, nets_for(30), artifact="artifacts/3ddp.h5", final_iteration=300))
    cells.append(record(mn10, "whole", None, 0, nets_for(90)))
    cells.append(record("modelnet40", "random", 1, 0, [35.0, 34.0, 36.0, 33.0, 37.0]))
    cells.append(record("modelnet40", "herding", 1, 0, [34.0, 36.0, 35.0, 33.0, 37.0]))
    cells.append(record(mn10, "random", 10, 0, None, status="failed"))
    return cells


def _points_set(n_points: int = 64, per_class: int = 1):
    from ddbench.synthetic.artifact import SyntheticSet

    gen = torch.Generator().manual_seed(0)
    k = len(CLASSES)
    points = torch.rand(k * per_class, n_points, 3, generator=gen) * 2 - 1
    return SyntheticSet(points, torch.arange(k).repeat_interleave(per_class), list(CLASSES))


def generator_set():
    from ddbench.synthetic.artifact import SyntheticSet
    from ddbench.synthetic.generators import ConditionalSiren, generator_extras

    torch.manual_seed(0)
    module = ConditionalSiren(num_clouds=len(CLASSES), hidden=8, layers=2, w0=30.0)
    with torch.no_grad():
        points = module.sample(64, torch.Generator().manual_seed(0))
    extras = generator_extras(module)
    info = {"generator": {"type": "conditional_siren", "config": module.config, "noise_seed": 0}}
    return SyntheticSet(points, torch.arange(len(CLASSES)), list(CLASSES), extras, list(extras), info)


def anchors_set(m: int = 2, morphs: int = 3, n2: int = 16):
    """A 3DDP-layout set: per class one slot of ``m`` anchors and ``morphs`` morphs (softmax-weighted anchors)."""
    from ddbench.synthetic.artifact import SyntheticSet

    gen = torch.Generator().manual_seed(1)
    k = len(CLASSES)
    anchors = torch.rand(k, m, n2, 3, generator=gen) * 2 - 1
    logits = torch.randn(k, morphs, m, generator=gen)
    morph_points = torch.einsum("slm,smnc->slnc", logits.softmax(-1), anchors)
    points = torch.cat([anchors, morph_points], dim=1).reshape(-1, n2, 3)
    labels = torch.arange(k).repeat_interleave(m + morphs)
    return SyntheticSet(points, labels, list(CLASSES), {"anchors": anchors, "morph_logits": logits},
                        ["anchors", "morph_logits"])


def build_results(root: Path) -> Path:
    """Write the results directory described in the module docstring under ``root``; returns ``root``."""
    from ddbench.synthetic.artifact import save_artifact

    for rec in _cells():
        write_json_atomic(root / "cells" / f"{rec['cell_id']}.json", rec)
    for name, synth in (("herding", _points_set()), ("dd3d", generator_set()), ("3ddp", anchors_set())):
        save_artifact(root / "artifacts" / f"{name}.h5", synth,
                      {"method": name, "dataset": "modelnet10", "ppc": 1, "seed": 0})
    (root / "experiment.toml").write_text("# ddbench run --config experiment.toml\n[experiment]\nppc = [1, 3]\n")
    return root


def real_clouds(n_per_class: int = 3, n_points: int = 128):
    """Stand-in real clouds of the fixture's classes (points, labels)."""
    gen = torch.Generator().manual_seed(2)
    k = len(CLASSES)
    return torch.rand(k * n_per_class, n_points, 3, generator=gen) * 2 - 1, torch.arange(k).repeat_interleave(n_per_class)


def test_fixture_records_are_typed_records(tmp_path):
    from ddbench.tables import read_cells

    cells, bad = read_cells(build_results(tmp_path))
    assert bad == [] and len(cells) == len(_cells())
    sadm = [c for c in cells if c.method == "sadm" and c.ppc == 1 and c.eval_backbone == "pointnet"]
    assert sorted(c.results.oa_mean for c in sadm) == [44, 47, 50]
    assert all(len(c.results_by_iteration) == 2 for c in sadm)
    assert {c.method_role for c in cells if c.method == "whole"} == {"full_data"}
