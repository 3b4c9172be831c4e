"""Recorded departures of a cell from the reference settings, as structured fields (docs/results.md#deviations).

A deviation says what was changed (``setting`` for an experiment-level override such as ``--epochs``, or the
``component_kind``/``component``/``field`` of a component config), from which reference value to which used one,
and of which ``kind`` it is: ``budget`` (a quick run: fewer nets, epochs or iterations), ``config`` (another
hyperparameter) or ``test-selection`` (a paper's test-set selection, offered only as a labelled option).

Cell ids hash the deviations in the layout of the first release (a ``what`` string); :meth:`Deviation.legacy`
gives exactly that layout, so that ids stay stable, and :func:`parse_legacy` reads it back from old cell files.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

DeviationKind = Literal["budget", "config", "test-selection"]
_ITERATIONS = re.compile(r"^iterations \((?P<field>[^)]+)\)$")
_CONFIG = re.compile(r"^(?P<kind>\w+) (?P<name>\S+): (?P<field>.+)$")


class Deviation(BaseModel):
    """One departure from the reference value of a setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: DeviationKind
    reference: Any
    used: Any
    #: experiment-level setting (eval_nets, epochs, iterations, selection); None for a component option
    setting: str | None = None
    #: method, dataset or protocol whose config departs (config deviations); None otherwise
    component_kind: str | None = None
    component: str | None = None
    #: the config field (for ``iterations``: the method's field that the override sets)
    field: str | None = None

    def legacy_what(self) -> str:
        """The ``what`` string of the first schema (part of every cell id)."""
        if self.setting == "iterations":
            return f"iterations ({self.field})"
        if self.setting is not None:
            return self.setting
        return f"{self.component_kind} {self.component}: {self.field}"

    def legacy(self) -> dict[str, Any]:
        return {"what": self.legacy_what(), "reference": self.reference, "used": self.used, "kind": self.kind}

    def label(self) -> str:
        """How tables name it: ``iterations`` for the override of a method's field of that name."""
        if self.setting == "iterations" and self.field == "iterations":
            return "iterations"
        return self.legacy_what()


def parse_legacy(record: dict[str, Any]) -> Deviation:
    """A deviation of the first schema (``what``, ``reference``, ``used``, ``kind``) as a :class:`Deviation`."""
    what, base = record["what"], {k: record.get(k) for k in ("kind", "reference", "used")}
    if match := _ITERATIONS.match(what):
        return Deviation(**base, setting="iterations", field=match["field"])
    if match := _CONFIG.match(what):
        return Deviation(**base, component_kind=match["kind"], component=match["name"], field=match["field"])
    return Deviation(**base, setting=what)


def as_deviation(value: Deviation | dict[str, Any]) -> Deviation:
    """A structured deviation from either layout."""
    if isinstance(value, Deviation):
        return value
    return parse_legacy(value) if "what" in value else Deviation.model_validate(value)
