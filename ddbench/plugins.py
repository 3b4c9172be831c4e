"""Plugin loading: built-ins, entry points, allow/deny lists, and isolation of broken plugins.

Loading never raises because of a third-party plugin. A plugin that cannot be imported, that implements a hook
ddbench does not define (a misspelt hook name, caught by pluggy's ``check_pending``), whose hook raises, or
that registers a name another plugin already owns, is recorded as *broken* with its one-line error and none of
its components are kept. ``ddbench plugins`` lists them.

Environment variables:

- ``DDBENCH_PLUGINS``: comma-separated entry-point names; when set, only these third-party plugins load
  (set it to an empty string to load none). Built-ins always load.
- ``DDBENCH_DISABLE_PLUGINS``: comma-separated entry-point names that never load.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from ddbench import hookspecs
from ddbench.errors import DDBenchError, PluginError
from ddbench.registry import KINDS, Registry

ENTRY_POINT_GROUP = "ddbench"
#: the environment variables that choose which third-party plugins load (allow list, deny list)
ALLOW_ENV, DENY_ENV = "DDBENCH_PLUGINS", "DDBENCH_DISABLE_PLUGINS"

#: Modules that register the built-in components, through the same hooks as third-party plugins.
BUILTIN_PLUGINS = (
    "ddbench.data.builtin",
    "ddbench.backbones.builtin",
    "ddbench.methods.builtin",
    "ddbench.evaluation.builtin",
    "ddbench.runner.builtin",
    "ddbench.presets.builtin",
)


@dataclass
class PluginInfo:
    """What ddbench knows of one plugin."""

    name: str
    module: str
    distribution: str
    version: str
    builtin: bool
    status: str = "loaded"  # loaded | broken | disabled
    error: str = ""
    components: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)


@dataclass
class Registries:
    """The registries of every kind plus the plugin report."""

    by_kind: dict[str, Registry]
    plugins: list[PluginInfo]
    manager: pluggy.PluginManager

    def __getattr__(self, item: str) -> Registry:
        # registries.method, registries.backbone, ... for readability at call sites
        by_kind = self.__dict__.get("by_kind", {})
        if item in by_kind:
            return by_kind[item]
        raise AttributeError(item)

    def kind(self, kind: str) -> Registry:
        return self.by_kind[kind]

    @property
    def broken(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.status == "broken"]


def installed_entry_points() -> list:
    """The installed distributions' entry points in the ``ddbench`` group."""
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _env_list(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}" if not isinstance(err, DDBenchError) else str(err)
    return " ".join(text.split())


def _ddbench_version() -> str:
    from ddbench import __version__

    return __version__


def _candidates(extra_plugins, entry_points: bool) -> list[tuple[str, str, str, str, Any]]:
    """(name, module, distribution, version, loader) of every third-party plugin to consider."""
    out: list[tuple[str, str, str, str, Any]] = []
    if entry_points:
        for ep in installed_entry_points():
            dist = getattr(ep, "dist", None)
            out.append((ep.name, ep.value, dist.name if dist else "?", dist.version if dist else "?", ep.load))
    for name, obj in extra_plugins or []:
        out.append((name, getattr(obj, "__name__", repr(obj)), "(in-process)", "", lambda o=obj: o))
    return out


def _load_third_party(pm: pluggy.PluginManager, candidate) -> PluginInfo:
    """Register one third-party plugin with ``pm``; its :class:`PluginInfo` says loaded, disabled or broken."""
    name, modname, dist, version, load = candidate
    info = PluginInfo(name, modname, dist, version, builtin=False)
    allow, deny = _env_list(ALLOW_ENV), _env_list(DENY_ENV) or set()
    if name in deny or (allow is not None and name not in allow):
        info.status = "disabled"
        info.error = f"disabled by {DENY_ENV}" if name in deny else f"not in {ALLOW_ENV}"
        return info
    if pm.has_plugin(name):
        info.status, info.error = "broken", f"another plugin is already registered under the name {name!r}"
        return info
    try:
        pm.register(load(), name=name)
    except Exception as err:  # noqa: BLE001 - any import failure makes the plugin broken, not ddbench
        info.status, info.error = "broken", f"failed to load: {_one_line(err)}"
        return info
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as err:
        pm.unregister(name=name)
        info.status = "broken"
        info.error = f"{_one_line(err)} (hooks ddbench defines: {', '.join(hookspecs.HOOK_KINDS)})"
    return info


def _call_hook(impl, kind: str, registry: Registry, info: PluginInfo) -> None:
    """Collect what one plugin's hook registers; all of it is kept or, on any error, none of it."""
    staged: list[type] = []
    impl.function(register=staged.append)
    added = []
    try:
        for cls in staged:
            registry.add(cls, source=info.name, source_version=info.version)
            added.append(cls.name)
    except Exception:
        for n in added:
            registry.remove(n)
        raise
    info.components += [(kind, n) for n in added]


def _register_components(pm: pluggy.PluginManager, plugins: list[PluginInfo]) -> dict[str, Registry]:
    by_kind = {kind: Registry(kind) for kind in KINDS}
    status = {p.name: p for p in plugins}
    # Built-ins first, then third-party plugins in load order, so that built-in names win collisions.
    for hook_name, kind in hookspecs.HOOK_KINDS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in sorted(hook.get_hookimpls(), key=lambda i: (not status[i.plugin_name].builtin,)):
            info = status[impl.plugin_name]
            if info.status != "loaded":
                continue
            try:
                _call_hook(impl, kind, by_kind[kind], info)
            except Exception as err:  # noqa: BLE001
                if info.builtin:
                    raise PluginError(f"built-in plugin {info.name} failed: {_one_line(err)}") from err
                info.status, info.error = "broken", f"{hook_name} failed: {_one_line(err)}"
                _drop_components(by_kind, info)
    return by_kind


def load_registries(
    extra_plugins: list[tuple[str, Any]] | None = None,
    entry_points: bool = True,
) -> Registries:
    """Build the registries from built-ins, installed entry points and ``extra_plugins``.

    ``extra_plugins`` (name, module-or-object) pairs are treated exactly like third-party plugins; the tests
    use them to exercise broken and colliding plugins without installing distributions.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    plugins: list[PluginInfo] = []
    for modname in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
        plugins.append(PluginInfo(modname, modname, "ddbench", _ddbench_version(), builtin=True))
    plugins += [_load_third_party(pm, c) for c in _candidates(extra_plugins, entry_points)]
    return Registries(by_kind=_register_components(pm, plugins), plugins=plugins, manager=pm)


def _drop_components(by_kind: dict[str, Registry], info: PluginInfo) -> None:
    """Remove everything a plugin registered before it turned out to be broken."""
    for kind, name in info.components:
        entry = by_kind[kind].entries.get(name)
        if entry is not None and entry.source == info.name:
            by_kind[kind].remove(name)
    info.components = []


_CACHE: Registries | None = None


def get_registries() -> Registries:
    """The process-wide registries (loaded once)."""
    global _CACHE
    if _CACHE is None:
        _CACHE = load_registries()
    return _CACHE


def reset_registries() -> None:
    """Forget the loaded registries (tests and plugin installation)."""
    global _CACHE
    _CACHE = None


def get_component(kind: str, name: str):
    """Shortcut: the :class:`~ddbench.registry.ComponentInfo` of ``name`` in the ``kind`` registry."""
    return get_registries().kind(kind).get(name)
