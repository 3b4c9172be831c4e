"""The synthetic set and its on-disk artifact (HDF5 + JSON manifest).

The artifact is the contract between distillation and evaluation: ``ddbench eval`` reads it without importing
the method that made it. Layout:

- ``NAME.h5``: ``/points`` (M, N, 3) float32, ``/labels`` (M,) int64, ``/extras/<key>`` for any further stored
  parameters (e.g. SADM's rotation angles); attribute ``manifest`` = the manifest JSON minus the file hash.
- ``NAME.manifest.json``: method, method version and config, dataset, PPC, seeds, class names, shapes,
  storage in floats and bytes (total and per class), effective clouds per class, sha256 of the HDF5 file and
  of the points, creation time and library versions.

Storage counts every float of the arrays listed in ``stored`` (by default the points; methods add the extra
parameters a user would have to keep to rebuild the set), at 4 bytes per float32.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ddbench.errors import ArtifactError
from ddbench.io import atomic_path, sha256_file, write_json_atomic

FORMAT = "ddbench-synthetic-set"
FORMAT_VERSION = 1
BYTES_PER_FLOAT = 4


@dataclass
class SyntheticSet:
    """What a method produces: clouds to train evaluation nets on, plus the parameters stored with them."""

    points: torch.Tensor  # (M, N, 3)
    labels: torch.Tensor  # (M,)
    class_names: list[str]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    #: names (``points`` or keys of ``extras``) whose floats count as stored
    stored: list[str] = field(default_factory=lambda: ["points"])
    #: method-specific record (selected indices, embedding network, loss curve, ...): goes into the manifest
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a synthetic set owns its data: a snapshot taken during distillation must not follow the live
        # parameters (on CPU, detach() and .cpu() alone would share their memory)
        self.points = self.points.detach().to("cpu", torch.float32, copy=True).contiguous()
        self.labels = self.labels.detach().to("cpu", torch.int64, copy=True).reshape(-1)
        self.extras = {k: v.detach().to("cpu", copy=True) for k, v in self.extras.items()}
        if self.points.dim() != 3 or self.points.shape[-1] != 3:
            raise ArtifactError(f"synthetic points must be (M, N, 3), got {tuple(self.points.shape)}")
        if self.labels.shape[0] != self.points.shape[0]:
            raise ArtifactError(f"{self.points.shape[0]} synthetic clouds but {self.labels.shape[0]} labels")
        unknown = [s for s in self.stored if s != "points" and s not in self.extras]
        if unknown:
            raise ArtifactError(f"stored arrays {unknown} are neither 'points' nor extras")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def check_finite(self) -> None:
        if not torch.isfinite(self.points).all():
            raise ArtifactError(
                "the synthetic set contains NaN or infinite coordinates; the distillation diverged "
                "(lower the method's learning rate) or the artifact is damaged"
            )

    def storage(self) -> dict[str, Any]:
        arrays = {"points": self.points, **self.extras}
        floats = {name: int(arrays[name].numel()) for name in self.stored}
        total = sum(floats.values())
        k = max(self.num_classes, 1)
        counts = torch.bincount(self.labels, minlength=k).tolist()
        return {
            "floats": total,
            "bytes": total * BYTES_PER_FLOAT,
            "floats_by_array": floats,
            "floats_per_class": total / k,
            "bytes_per_class": total * BYTES_PER_FLOAT / k,
            "clouds": int(self.points.shape[0]),
            "clouds_per_class": counts,
            "effective_clouds_per_class": float(np.mean(counts)),
            "points_per_cloud": int(self.points.shape[1]),
            "bytes_per_float": BYTES_PER_FLOAT,
        }


def _points_sha256(points: torch.Tensor) -> str:
    return hashlib.sha256(np.ascontiguousarray(points.numpy()).tobytes()).hexdigest()


def manifest_path(h5_path: Path) -> Path:
    return h5_path.with_name(h5_path.name[: -len(".h5")] + ".manifest.json")


def save_artifact(path: str | Path, synth: SyntheticSet, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``path`` (.h5) and its manifest atomically; return the manifest.

    ``record`` holds the provenance: method, method_version, method_config, dataset, dataset_config, ppc,
    seed, distill_backbone, ... (whatever the caller knows); it is stored verbatim under those keys.
    """
    path = Path(path)
    if path.suffix != ".h5":
        raise ArtifactError(f"artifact path must end in .h5, got {path}")
    synth.check_finite()
    from ddbench.environment import library_versions

    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        # "generator": the set is a generator (stored in extras) that can be materialised at any resolution
        "kind": "generator" if "generator" in synth.info else "points",
        **record,
        "class_names": list(synth.class_names),
        "shapes": {
            "points": list(synth.points.shape),
            "labels": list(synth.labels.shape),
            **{f"extras/{k}": list(v.shape) for k, v in synth.extras.items()},
        },
        "stored": list(synth.stored),
        "storage": synth.storage(),
        "info": synth.info,
        "sha256": {"points": _points_sha256(synth.points)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": library_versions(),
    }
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("points", data=synth.points.numpy(), compression="gzip", compression_opts=4)
            h5.create_dataset("labels", data=synth.labels.numpy())
            for k, v in synth.extras.items():
                h5.create_dataset(f"extras/{k}", data=v.numpy())
            h5.attrs["manifest"] = json.dumps(manifest, default=str)
    manifest["sha256"]["file"] = sha256_file(path)
    write_json_atomic(manifest_path(path), manifest)
    return manifest


def load_artifact(path: str | Path, verify: bool = True) -> tuple[SyntheticSet, dict[str, Any]]:
    """Read an artifact from its ``.h5`` or ``.manifest.json`` path, verifying its checksums."""
    path = Path(path)
    if path.name.endswith(".manifest.json"):
        path = path.with_name(path.name[: -len(".manifest.json")] + ".h5")
    if not path.exists():
        raise ArtifactError(f"artifact {path} does not exist; give the .h5 (or .manifest.json) path")
    mpath = manifest_path(path)
    manifest: dict[str, Any] | None = None
    if mpath.exists():
        try:
            manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as err:
            raise ArtifactError(f"manifest {mpath} is not valid JSON ({err}); re-create the artifact") from None
        expected = manifest.get("sha256", {}).get("file")
        if verify and expected and sha256_file(path) != expected:
            raise ArtifactError(
                f"{path} does not match the sha256 in {mpath.name}: the file was modified or is corrupt"
            )
    try:
        with h5py.File(path, "r") as h5:
            points = torch.from_numpy(np.asarray(h5["points"][...], dtype=np.float32))
            labels = torch.from_numpy(np.asarray(h5["labels"][...], dtype=np.int64))
            extras = {}
            if "extras" in h5:
                extras = {k: torch.from_numpy(np.asarray(h5["extras"][k][...])) for k in h5["extras"]}
            inner = json.loads(h5.attrs["manifest"])
    except (OSError, KeyError, ValueError) as err:
        reason = " ".join(str(err).split())
        raise ArtifactError(f"cannot read artifact {path} ({reason}); it is truncated or not an artifact") from None
    if manifest is None:
        manifest = inner
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a {FORMAT} artifact (format={manifest.get('format')!r})")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format version {manifest['format_version']}; this ddbench reads up to "
            f"{FORMAT_VERSION}: upgrade ddbench"
        )
    if verify and _points_sha256(points) != manifest["sha256"]["points"]:
        raise ArtifactError(f"points in {path} do not match their recorded sha256: the artifact is corrupt")
    synth = SyntheticSet(
        points, labels, list(manifest["class_names"]), extras, list(manifest.get("stored", ["points"])),
        dict(manifest.get("info", {})),
    )
    return synth, manifest
