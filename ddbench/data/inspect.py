"""``ddbench data verify`` and ``ddbench data info``: checks and summaries of a dataset on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ddbench.data.base import Dataset
from ddbench.data.fetch import read_provenance
from ddbench.data.prepare import verify_sha256sums
from ddbench.errors import DDBenchError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def verify_dataset(ds: Dataset, data_root: Path) -> list[Check]:
    """Presence, release checksums, recorded archive checksums, split sizes, shapes, labels, NaN/inf, norms."""
    checks: list[Check] = []
    present, where = ds.availability()
    checks.append(Check("present", present, where))
    if not present:
        return checks
    release = getattr(ds, "find_release", lambda: None)()
    if release is not None:
        kind, folder = release
        if (folder / "SHA256SUMS").exists():
            try:
                names = {f.name for s in ("train", "test") for f in ds.source_files(kind, folder, s)}
                verify_sha256sums(folder, names)
                checks.append(Check("release checksums", True, f"{folder / 'SHA256SUMS'} matches"))
            except DDBenchError as err:
                checks.append(Check("release checksums", False, str(err)))
        else:
            checks.append(Check("release checksums", True, "no SHA256SUMS in the release folder (nothing to check)"))
    prov = read_provenance(data_root, ds.name)
    for entry in prov["archives"]:
        published, got = entry.get("published_sha256"), entry.get("sha256")
        if published:
            checks.append(Check(f"archive {entry['filename']}", published == got,
                                f"sha256 {got[:12]}... {'matches' if published == got else 'differs from'} the published value"))
        else:
            checks.append(Check(f"archive {entry['filename']}", True,
                                f"imported ({entry.get('kind')}); no published checksum, recorded {str(got)[:12]}..."))
    for split in ("train", "test"):
        try:
            data = ds.load(split)
        except DDBenchError as err:
            checks.append(Check(f"{split} split", False, str(err)))
            continue
        pts = data.points
        checks.append(Check(f"{split} split", True, f"{len(data)} clouds x {data.num_points} points x 3"))
        checks.append(Check(f"{split} finite", bool(torch.isfinite(pts).all()), "no NaN or inf"))
        radius = float(pts.norm(dim=-1).amax()) if len(pts) else 0.0
        normalised = getattr(ds.config, "normalize", False)
        checks.append(Check(f"{split} scale", (radius <= 1.0 + 1e-4) or not normalised,
                            f"max radius {radius:.4f}" + (" (unit sphere expected)" if normalised else "")))
        empty = [ds.class_names()[k] for k, c in enumerate(data.class_counts()) if c == 0]
        checks.append(Check(f"{split} classes", not empty,
                            "every class present" if not empty else f"no clouds for {', '.join(empty)}"))
    return checks


def dataset_info(ds: Dataset) -> dict:
    out = {"name": ds.name, "display_name": getattr(ds, "display_name", ""), "version": ds.version,
           "config": ds.config.model_dump(mode="json"), "classes": [], "splits": {}}
    present, where = ds.availability()
    out["present"], out["where"] = present, where
    if not present:
        return out
    out["classes"] = ds.class_names()
    for split in ("train", "test"):
        data = ds.load(split)
        out["splits"][split] = {"clouds": len(data), "points": data.num_points, "per_class": data.class_counts(),
                                "has_point_labels": data.point_labels is not None}
    return out
