"""Pydantic base for every component configuration.

Each method, backbone, dataset and protocol declares a ``Config`` subclass of :class:`ComponentConfig`.
Unknown keys are rejected (``extra="forbid"``) so that a misspelt hyperparameter never silently falls back to
its default, and defaults are the reference values of docs/specification.md.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ddbench.errors import ConfigError

C = TypeVar("C", bound=BaseModel)


class ComponentConfig(BaseModel):
    """Base configuration: strict keys, validated on assignment, immutable once built."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)


def format_validation_error(err: ValidationError, what: str) -> str:
    """One line summarising every problem pydantic found."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        if e["type"] == "extra_forbidden":
            parts.append(f"{loc}: not a known option")
        else:
            parts.append(f"{loc}: {e['msg']}")
    return f"invalid {what}: " + "; ".join(parts)


def build_config(cls: type[C], values: dict[str, Any] | None, what: str) -> C:
    """Validate ``values`` against ``cls``; raise :class:`ConfigError` with a one-line message."""
    try:
        return cls.model_validate(values or {})
    except ValidationError as err:
        known = ", ".join(cls.model_fields) or "(none)"
        raise ConfigError(f"{format_validation_error(err, what)} (options: {known})") from None


def config_diff(config: BaseModel) -> dict[str, Any]:
    """The fields of ``config`` whose value differs from the class default: the recorded deviations."""
    default = type(config)()
    return {
        k: getattr(config, k)
        for k in type(config).model_fields
        if getattr(config, k) != getattr(default, k)
    }


def parse_scalar(text: str) -> Any:
    """Interpret a ``key=value`` override value: bool, int, float, null, list (comma) or string."""
    low = text.strip().lower()
    if low in {"true", "false"}:
        return low == "true"
    if low in {"none", "null"}:
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_overrides(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """Parse ``component.key=value`` items (from ``--set``) into ``{component: {key: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(
                f"cannot read override {item!r}; write it as COMPONENT.KEY=VALUE, e.g. herding.embedding=random"
            )
        lhs, value = item.split("=", 1)
        component, key = lhs.split(".", 1)
        out.setdefault(component.strip(), {})[key.strip()] = parse_scalar(value)
    return out
