"""The typed cell record: the one file per grid cell that is the source of truth of a result
(docs/results.md#cell-files). The cell writes it; tables, status and reports read it.

One schema version lives here (:data:`SCHEMA_VERSION`). :func:`load_record` also reads files of the first schema
(version 1, written before records were typed): their deviations are ``what`` strings, parsed into structured
fields, and their method role is taken from the one full-data method of that release (``whole``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ddbench.cells.deviations import Deviation, as_deviation

SCHEMA = "ddbench-cell"
SCHEMA_VERSION = 2
#: what version-1 files lacked: the roles of the methods that existed then (``whole`` the one full-data method)
_V1_ROLES = {"whole": "full_data", "random": "coreset", "herding": "coreset", "kcenter": "coreset"}


class NetRecord(BaseModel):
    """One evaluation net: its seed and test accuracies (percent)."""

    model_config = ConfigDict(extra="allow")

    seed: int
    #: overall accuracy: of clouds (classification) or of points (segmentation)
    oa: float
    #: mean class accuracy (classification; segmentation records instance_miou and class_miou instead)
    macc: float | None = None
    per_class_acc: list[float] = []
    final_train_loss: float | None = None
    epochs: int | None = None
    seconds: float | None = None
    selected_epoch: int | None = None
    test_curve: list[float] = []


class EvaluationRecord(BaseModel):
    """The evaluation of one synthetic set: every net and their summary (ddof stated)."""

    model_config = ConfigDict(extra="allow")

    nets: list[NetRecord]
    oa_mean: float | None = None
    oa_std: float | None = None
    macc_mean: float | None = None
    macc_std: float | None = None
    ddof: int = 0
    num_nets: int | None = None
    selection: str = "final"
    seconds: float | None = None
    engine: str = ""
    iteration: int | None = None


class CellRecord(BaseModel):
    """Everything about one cell: what it is, what ran, on what, and what came out."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_name: Literal["ddbench-cell"] = Field(SCHEMA, alias="schema")
    schema_version: int = SCHEMA_VERSION
    cell_id: str
    status: Literal["running", "ok", "failed"]
    dataset: str
    method: str
    #: classification or segmentation (docs/segmentation.md); files before the task axis are classification
    task: str = "classification"
    #: the method's declared role: distilled, coreset or full_data (docs/methods.md)
    method_role: str = "distilled"
    ppc: int | None = None
    seed: int
    distill_backbone: str | None = None
    eval_backbone: str
    protocol: str
    protocol_version: str
    spec: dict[str, Any] = {}
    deviations: list[Deviation] = []
    #: each component's declared reference (paper, repository, revision) and the departures from it that hold
    #: under this cell's configs (docs/departures.md); absent in files of schema 1
    references: dict[str, dict[str, str]] = {}
    departures: list[dict[str, Any]] = []
    started: str = ""
    finished: str = ""
    environment: dict[str, Any] = {}
    data: dict[str, Any] = {}
    artifact: dict[str, Any] = {}
    seeds: dict[str, Any] = {}
    results: EvaluationRecord | None = None
    results_by_iteration: list[EvaluationRecord] = []
    timing: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    error: str = ""
    traceback: str = ""
    #: where the record was read from (not written)
    path: str = Field("", exclude=True)

    @field_validator("deviations", mode="before")
    @classmethod
    def _structured(cls, value):
        return [as_deviation(v) for v in value or []]

    @field_validator("protocol_version", mode="before")
    @classmethod
    def _text(cls, value):
        return str(value)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A record of any known schema version in the current layout."""
    version = raw.get("schema_version", 1)
    if version > SCHEMA_VERSION:
        raise ValueError(f"schema version {version} is newer than this ddbench reads ({SCHEMA_VERSION}); upgrade")
    if version == 1:
        raw = {**raw, "schema_version": SCHEMA_VERSION,
               "method_role": _V1_ROLES.get(raw.get("method", ""), "distilled")}
    return raw


def parse_record(raw: Any, path: str = "") -> CellRecord | None:
    """The record in ``raw`` (a decoded JSON value), None when it is not a cell record at all."""
    if not (isinstance(raw, dict) and raw.get("schema") == SCHEMA):
        return None
    return CellRecord.model_validate({**migrate(raw), "path": path})


def load_record(path: str | Path) -> CellRecord | None:
    """Read one cell file; raises ``ValueError`` (with the reason) when it is damaged or invalid."""
    try:
        raw = json.loads(Path(path).read_text())
        return parse_record(raw, str(path))
    except (OSError, json.JSONDecodeError, ValidationError) as err:
        raise ValueError(f"{path}: {' '.join(str(err).split())[:300]}") from None
