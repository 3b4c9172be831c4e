"""What identifies a cell: its :class:`CellSpec`, and the id and distillation key hashed from it.

A cell is one (dataset, method, PPC, distillation backbone, evaluation backbone, seed) under one protocol. Its id
is a readable prefix plus a hash of its complete specification, so a changed config is a new cell and never
overwrites or resumes from a different one. Cells that share a distillation (same dataset, method, PPC,
distillation backbone, seed and configs) share one synthetic-set artifact, keyed by ``distill_key``.

The hash is computed over the layout of the first release, so that published cells keep their ids: fields and
options added since then enter it only when set away from their default (``OPTIONAL_FIELDS``,
``OPTIONAL_CONFIG_FIELDS``), and deviations enter it in their first layout (:meth:`Deviation.legacy`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from ddbench.cells.deviations import Deviation, as_deviation
from ddbench.io import stable_hash

#: spec fields added after the first release, with the default that keeps them out of the id hash
OPTIONAL_FIELDS: dict[str, Any] = {"eval_iterations": [], "budget_bytes": None, "task": "classification"}
#: component-config options added after the first release: at these defaults they stay out of the id hash,
#: so that cells run before the option existed keep their ids (and resume instead of running again)
OPTIONAL_CONFIG_FIELDS: dict[str, dict[str, Any]] = {
    "dataset_config": {"source": "auto", "surface_points": 10000, "sampling_seed": 0, "rotation": "aligned",
                       "rotation_seed": 0, "canonical": "none"},
    "protocol_config": {"canonicalise": "none"},
}
#: the fields a distillation depends on (cells that agree on them share one artifact)
DISTILL_FIELDS = ("dataset", "dataset_version", "dataset_config", "method", "method_version", "method_config",
                  "ppc", "seed", "distill_backbone", "distill_backbone_config", "eval_iterations", "task")


class CellSpec(BaseModel):
    """Everything that determines a cell's result, as plain data (validated configs dumped to JSON values)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    dataset_version: str
    dataset_config: dict[str, Any]
    method: str
    method_version: str
    method_config: dict[str, Any]
    ppc: int | None
    seed: int
    distill_backbone: str | None
    distill_backbone_config: dict[str, Any]
    eval_backbone: str
    eval_backbone_config: dict[str, Any]
    protocol: str
    protocol_version: str
    protocol_config: dict[str, Any]
    #: quick-run overrides and other departures from the reference values, recorded and marked in tables
    deviations: tuple[Deviation, ...] = ()
    #: intermediate iterations at which an iterative method's synthetic set is also evaluated
    eval_iterations: list[int] = []
    #: the storage budget (bytes per class) this cell's PPC was chosen for, when comparing at equal storage
    budget_bytes: int | None = None
    #: what the networks predict: classification (one label per cloud) or segmentation (a part label per point)
    task: str = "classification"

    @field_validator("deviations", mode="before")
    @classmethod
    def _structured(cls, value):
        return tuple(as_deviation(v) for v in value or ())

    def identity(self) -> dict[str, Any]:
        """The spec in the first release's layout, without options that are still at their added default."""
        fields = self.model_dump(mode="json")
        fields["deviations"] = [d.legacy() for d in self.deviations]
        out = {k: v for k, v in fields.items() if not (k in OPTIONAL_FIELDS and v == OPTIONAL_FIELDS[k])}
        for section, defaults in OPTIONAL_CONFIG_FIELDS.items():
            if isinstance(out.get(section), dict):
                out[section] = {k: v for k, v in out[section].items() if not (k in defaults and v == defaults[k])}
        return out

    def _id_parts(self) -> tuple[str, str]:
        ppc = f"ppc{self.ppc}" if self.ppc is not None else "all"
        task = "" if self.task == "classification" else f"{self.task}__"
        return f"{task}{self.dataset}__{self.method}__{ppc}", self.distill_backbone or "nobackbone"

    @property
    def cell_id(self) -> str:
        head, dbb = self._id_parts()
        prefix = f"{head}__{dbb}__{self.eval_backbone}__{self.protocol}__s{self.seed}"
        return f"{prefix}__{stable_hash(self.identity(), 10)}"

    def distill_fields(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in DISTILL_FIELDS}

    @property
    def distill_key(self) -> str:
        head, dbb = self._id_parts()
        identity = self.identity()
        payload = {k: identity[k] for k in DISTILL_FIELDS if k in identity}
        return f"{head}__{dbb}__s{self.seed}__{stable_hash(payload, 10)}"
