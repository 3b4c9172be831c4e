"""``--set COMPONENT.KEY=VALUE`` overrides, sorted into experiment config sections by component kind (this needs
the registry to know what a name is, so it lives in the resolution layer)."""

from __future__ import annotations

from ddbench.config import parse_overrides
from ddbench.errors import ConfigError, UnknownNameError
from ddbench.plugins import get_registries

KIND_ALIASES = {
    "methods": "method", "method": "method", "backbones": "backbone", "backbone": "backbone",
    "datasets": "dataset", "dataset": "dataset", "protocols": "protocol", "protocol": "protocol",
    "executors": "executor", "executor": "executor", "transforms": "transform", "transform": "transform",
    "presets": "preset", "preset": "preset",
}


def parse_set_options(items: list[str] | None) -> dict[str, dict]:
    """``--set COMPONENT.KEY=VALUE`` -> experiment config sections.

    COMPONENT is ``protocol``, a method, dataset or backbone name, or ``kind:name`` when a name is ambiguous
    (``sadm`` is both a method and a protocol; ``protocol.lr=...`` always means the protocol).
    """
    reg = get_registries()
    sections: dict[str, dict] = {"method_config": {}, "dataset_config": {}, "backbone_config": {},
                                 "protocol_config": {}}
    for component, values in parse_overrides(items).items():
        if component == "protocol":
            sections["protocol_config"].update(values)
            continue
        if ":" in component:
            kind, name = component.split(":", 1)
            kind = KIND_ALIASES.get(kind, kind)
            if kind not in ("method", "dataset", "backbone"):
                raise ConfigError(f"--set kind must be method, dataset or backbone, got {kind!r}")
            reg.kind(kind).get(name)
            sections[f"{kind}_config"].setdefault(name, {}).update(values)
            continue
        kinds = [k for k in ("method", "dataset", "backbone") if component in reg.kind(k)]
        if len(kinds) > 1:
            raise ConfigError(
                f"--set {component!r} is a {' and a '.join(kinds)}; write {kinds[0]}:{component}.KEY=VALUE"
            )
        if not kinds:
            known = [n for k in ("method", "dataset", "backbone") for n in reg.kind(k).names()] + ["protocol"]
            raise UnknownNameError("component", component, known)
        sections[f"{kinds[0]}_config"].setdefault(component, {}).update(values)
    return {k: v for k, v in sections.items() if v}
