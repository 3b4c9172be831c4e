"""Errors that reach the user.

Every error ddbench raises on purpose is a :class:`DDBenchError`. Its message is a single line that says
what went wrong and what to do about it; the CLI prints it as ``error: <message>`` and exits with status 2,
without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DDBenchError(Exception):
    """Base class of every user-facing ddbench error (one-line message, actionable)."""


class UnknownNameError(DDBenchError, KeyError):
    """A component, dataset, protocol or option name that does not exist."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        self.kind, self.name, self.known = kind, name, known
        super().__init__(unknown_name_message(kind, name, known))

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class RegistryCollisionError(DDBenchError):
    """Two plugins registered the same name for the same kind of component."""


class PluginError(DDBenchError):
    """A plugin failed to load or to register its components."""


class ConfigError(DDBenchError):
    """A configuration value or file is invalid."""


class DataError(DDBenchError):
    """Data files are missing, corrupt or of the wrong shape."""


class ArtifactError(DDBenchError):
    """A synthetic-set artifact is missing, corrupt or inconsistent."""


class TrainingDivergedError(DDBenchError):
    """A loss or a parameter became NaN or infinite."""


class IncompatibleError(DDBenchError):
    """Two components cannot work together (e.g. a method needs features a backbone lacks)."""


def suggest(name: str, known: Iterable[str]) -> list[str]:
    """Close matches of ``name`` among ``known`` (case-insensitive), best first."""
    known = list(known)
    lowered = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    # A prefix match ("herd" -> "herding") is a good suggestion even when difflib's ratio is low.
    hits += [k for k in lowered if k.startswith(name.lower()) and k not in hits]
    return [lowered[h] for h in hits]


def unknown_name_message(kind: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    hints = suggest(name, known)
    msg = f"unknown {kind} {name!r}"
    msg += f"; did you mean {' or '.join(repr(h) for h in hints)}?" if hints else "."
    return msg + f" Known {kind}s: {', '.join(known) if known else '(none)'}"
