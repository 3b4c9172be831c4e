"""The cell model: what identifies a cell (:mod:`.spec`), its resolved components (:mod:`.resolved`), its typed
record (:mod:`.record`) and its structured deviations (:mod:`.deviations`). Below the runner and the tables,
which both speak it; above the components it refers to."""

from ddbench.cells.deviations import Deviation
from ddbench.cells.record import SCHEMA, SCHEMA_VERSION, CellRecord, load_record
from ddbench.cells.spec import CellSpec

__all__ = ["SCHEMA", "SCHEMA_VERSION", "CellRecord", "CellSpec", "Deviation", "load_record"]
