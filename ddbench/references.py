"""What a component is faithful to, and where it knowingly is not (docs/departures.md).

Every method and protocol declares its :class:`Reference` (the paper, the authors' released repository and the
revision read) and its :class:`Departure` list: each place where ddbench's behaviour differs from that reference,
with the reference's source line, what ddbench does instead, why, and the config switch (if any) that selects
the reference behaviour. A departure may hold only for some settings (``when``: config values, e.g. the paper's
reading selected by a switch). The cell records the departures that apply to its configuration, tables mark those
cells, and ``ddbench list methods`` shows them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reference:
    """The published source a component follows."""

    paper: str
    repository: str = ""  # e.g. github.com/donguk071/SADM
    revision: str = ""  # the commit that was read
    notes: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Departure:
    """One known difference from the reference."""

    what: str  # the behaviour, in a few words
    reference: str  # what the reference does, with its source (file:line or paper section)
    ours: str  # what ddbench does instead
    reason: str = ""
    #: the config option that selects the reference behaviour ("" if none)
    switch: str = ""
    #: config values under which this departure holds (empty: always)
    when: dict[str, Any] = field(default_factory=dict)

    def applies(self, config: Any) -> bool:
        return all(getattr(config, k, None) == v for k, v in self.when.items())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("when")
        return out


def active_departures(component: Any, config: Any) -> list[dict[str, Any]]:
    """The declared departures of ``component`` (a class) that hold under ``config``, as records."""
    return [d.to_dict() for d in getattr(component, "departures", ()) if d.applies(config)]
