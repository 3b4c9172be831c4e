"""Typed registries of components (methods, backbones, datasets, protocols, executors, transforms).

A component is a class with the class attributes ``name``, ``version`` and ``Config`` (a
:class:`~ddbench.config.ComponentConfig` whose defaults are the reference values). Plugins hand such classes to
the ``register`` callback of a hook; the registry keeps one entry per name and kind, remembers which plugin
registered it, refuses a second registration of the same name, and answers unknown names with suggestions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ddbench.config import ComponentConfig, build_config
from ddbench.errors import PluginError, RegistryCollisionError, UnknownNameError
from ddbench.references import Departure, Reference

KINDS = ("method", "backbone", "dataset", "protocol", "executor", "transform", "preset")


class Component:
    """Mixin for registrable classes. Subclasses set ``name``, ``version`` and ``Config``."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    Config: ClassVar[type[ComponentConfig]] = ComponentConfig
    #: the paper and released code this component follows (docs/departures.md), and where it knowingly departs
    reference: ClassVar[Reference | None] = None
    departures: ClassVar[tuple[Departure, ...]] = ()

    @classmethod
    def describe(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def make_config(cls, values: dict[str, Any] | None = None) -> ComponentConfig:
        kind = getattr(cls, "kind", "component")
        return build_config(cls.Config, values, f"{kind} {cls.name!r} config")


@dataclass(frozen=True)
class ComponentInfo:
    """One registered component and where it came from."""

    kind: str
    name: str
    cls: type
    version: str
    description: str
    source: str  # plugin name ("ddbench" for built-ins)
    source_version: str

    @property
    def Config(self) -> type[ComponentConfig]:  # noqa: N802 - mirrors the component attribute
        return self.cls.Config

    def default_config(self) -> dict[str, Any]:
        return self.cls.Config().model_dump(mode="json")

    def make_config(self, values: dict[str, Any] | None = None) -> ComponentConfig:
        return build_config(self.cls.Config, values, f"{self.kind} {self.name!r} config")


def validate_component(kind: str, cls: Any) -> None:
    """Raise :class:`PluginError` when ``cls`` lacks what a registered component needs."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"a {kind} registered without a string `name` attribute: {cls!r}")
    if name != name.strip() or "," in name or " " in name:
        raise PluginError(f"{kind} name {name!r} must not contain spaces or commas")
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, ComponentConfig)):
        raise PluginError(f"{kind} {name!r} must declare `Config`, a subclass of ddbench.api.ComponentConfig")
    if config.model_config.get("extra") != "forbid":
        raise PluginError(f"{kind} {name!r}: its Config must forbid unknown keys (extra='forbid')")
    try:
        config()
    except Exception as err:  # noqa: BLE001 - any failure means the defaults are unusable
        raise PluginError(f"{kind} {name!r}: its Config has no valid defaults ({err})") from None


@dataclass
class Registry:
    """All components of one kind, by unique name."""

    kind: str
    entries: dict[str, ComponentInfo] = field(default_factory=dict)

    def add(self, cls: type, source: str = "ddbench", source_version: str = "") -> ComponentInfo:
        validate_component(self.kind, cls)
        name = cls.name
        if name in self.entries:
            prev = self.entries[name]
            raise RegistryCollisionError(
                f"{self.kind} {name!r} from plugin {source!r} collides with the one registered by plugin "
                f"{prev.source!r}; rename one of them or disable a plugin with DDBENCH_DISABLE_PLUGINS"
            )
        info = ComponentInfo(
            kind=self.kind,
            name=name,
            cls=cls,
            version=str(getattr(cls, "version", "1")),
            description=cls.describe() if hasattr(cls, "describe") else (cls.__doc__ or "").strip(),
            source=source,
            source_version=source_version,
        )
        self.entries[name] = info
        return info

    def remove(self, name: str) -> None:
        self.entries.pop(name, None)

    def get(self, name: str) -> ComponentInfo:
        try:
            return self.entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.entries) from None

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[ComponentInfo]:
        return iter(self.entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self.entries)
