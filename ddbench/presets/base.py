"""Table presets: one published table as data (docs/presets.md).

A preset names the grid that made a paper's table (datasets, methods, PPCs, backbones, protocol, number of
evaluation nets and draws), the layout it is printed in, and where its published numbers are
(``ddbench/reference/published_results.csv``: ``source`` and ``table``). Presets are components: built-ins and third
parties register them through the ``register_presets`` hook, so a paper's table is data, not a code branch.
``ddbench run --preset NAME`` runs the grid over the datasets present; ``ddbench table --preset NAME`` sets our
cells beside the published numbers.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ddbench.config import ComponentConfig
from ddbench.registry import Component


class PresetConfig(ComponentConfig):
    pass


class Preset(Component):
    """Base class of table presets. Subclasses set the class attributes below."""

    kind: ClassVar[str] = "preset"
    Config: ClassVar[type[ComponentConfig]] = PresetConfig
    #: the published source and table (columns ``source`` and ``table`` of the reference CSV)
    source: ClassVar[str] = ""
    table: ClassVar[str] = ""
    title: ClassVar[str] = ""
    #: the experiment that makes the table (keys of ddbench.pipeline.experiment.ExperimentConfig)
    grid: ClassVar[dict[str, Any]] = {}
    #: several experiments when one grid cannot say it (e.g. one per initialisation); default: [grid]
    runs: ClassVar[list[dict[str, Any]]] = []
    #: methods (rows = methods, columns = dataset x PPC) or backbones (rows = evaluation networks)
    layout: ClassVar[str] = "methods"
    #: the metric the table prints (oa: overall accuracy)
    metric: ClassVar[str] = "oa"
    #: the data release the paper's numbers were computed on, as cell records name it (ModelNet's 10k-point
    #: normal-resampled release is ddbench's "text release"); a cell on another release is marked
    paper_release: ClassVar[str] = "text release"
    #: what ddbench cannot reproduce of this table, said plainly ("" when everything is runnable)
    limitations: ClassVar[str] = ""

    @classmethod
    def describe(cls) -> str:
        return cls.title or super().describe()

    @classmethod
    def experiments(cls) -> list[dict[str, Any]]:
        """The experiment values of every run that makes the table."""
        return [dict(r) for r in (cls.runs or [cls.grid])]
