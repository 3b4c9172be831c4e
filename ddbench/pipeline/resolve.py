"""The resolution layer: an experiment -> typed, resolved cells (docs/results.md#the-grid).

This is the only code that reads the component registry. It validates every name and option before any work
starts, turns each component's values into its validated Config once, records every departure from the
reference values as a structured :class:`~ddbench.cells.deviations.Deviation`, and hands lower layers classes,
configs and factories, never names to look up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ddbench.backbones.tasks import supports, task_class
from ddbench.cells.deviations import Deviation
from ddbench.config import config_diff
from ddbench.errors import ConfigError, DataError
from ddbench.pipeline.experiment import ExperimentConfig
from ddbench.plugins import Registries

log = logging.getLogger(__name__)
#: protocol fields that experiment-level settings set (recorded as budget or selection deviations instead)
_PROTOCOL_SETTINGS = {"num_nets", "epochs", "step_epoch", "selection"}


@dataclass(frozen=True)
class ProtocolChoice:
    """The experiment's protocol, validated, with the deviations its settings make."""

    cls: type
    config: Any
    default: dict[str, Any]
    deviations: tuple[Deviation, ...]

    @property
    def name(self) -> str:
        return self.cls.name


def config_deviations(kind: str, name: str, config, skip: set[str] = frozenset()) -> list[Deviation]:
    """Non-default values of a component config, as recorded deviations from the reference."""
    default = type(config)().model_dump(mode="json")
    used = config.model_dump(mode="json")
    return [Deviation(kind="config", component_kind=kind, component=name, field=k, reference=default[k], used=used[k])
            for k in config_diff(config) if k not in skip]


def protocol_name(exp: ExperimentConfig, reg: Registries) -> str:
    """The experiment's protocol, or the one its task declares as its default (``Protocol.default_for``)."""
    task_class(exp.task)  # an unknown task is named first
    if exp.protocol is not None:
        return exp.protocol
    defaults = [i.name for i in reg.protocol if exp.task in getattr(i.cls, "default_for", ())]
    if not defaults:
        raise ConfigError(f"no protocol is the default for task {exp.task!r}; name one with --protocol")
    return defaults[0]


def resolve_protocol(exp: ExperimentConfig, reg: Registries) -> ProtocolChoice:
    info = reg.protocol.get(protocol_name(exp, reg))
    values = dict(exp.protocol_config)
    if exp.selection is not None:
        values["selection"] = exp.selection
    if exp.eval_nets is not None:
        values["num_nets"] = exp.eval_nets
    cfg = info.make_config(values)
    if exp.epochs is not None:
        cfg = cfg.with_epochs(exp.epochs)
    default = info.cls.Config().model_dump()
    devs = config_deviations("protocol", info.name, cfg, skip=_PROTOCOL_SETTINGS)
    if cfg.selection == "best_test":
        devs.append(Deviation(kind="test-selection", setting="selection", reference=default["selection"],
                              used="best_test"))
    return ProtocolChoice(info.cls, cfg, default, tuple(devs))


def budget_deviations(exp: ExperimentConfig, protocol_default: dict, method_cls) -> list[Deviation]:
    """The quick-run overrides (fewer nets, epochs or iterations than the reference)."""
    devs = []
    for setting, field in (("eval_nets", "num_nets"), ("epochs", "epochs")):
        used = getattr(exp, setting)
        if used is not None and used != protocol_default[field]:
            devs.append(Deviation(kind="budget", setting=setting, reference=protocol_default[field], used=used))
    field = method_cls.iterations_field
    if exp.iterations is not None and field is not None:
        ref = method_cls.Config().model_dump()[field]
        if exp.iterations != ref:
            devs.append(Deviation(kind="budget", setting="iterations", field=field, reference=ref,
                                  used=exp.iterations))
    return devs


def open_dataset_of(reg: Registries, name: str, values: dict | None, data_root, cache_dir):
    """The dataset ``name`` with ``values`` validated, reading from ``data_root``."""
    info = reg.dataset.get(name)
    return info.cls(info.make_config(values), data_root, cache_dir)


def resolve_datasets(exp: ExperimentConfig, reg: Registries, data_root, cache_dir) -> list[str]:
    """Dataset names to run; ``all`` means every registered benchmark dataset whose data is present."""
    names: list[str] = []
    for name in exp.datasets:
        candidates = ([i.name for i in reg.dataset if i.cls.benchmark and supports(i.cls, exp.task)]
                      if name == "all" else [name])
        for candidate in candidates:
            ok, why = open_dataset_of(reg, candidate, exp.dataset_config.get(candidate), data_root,
                                      cache_dir).availability()
            if not ok and name != "all":
                raise DataError(why)
            if not ok:
                log.warning("skipping dataset %s: %s", candidate, why)
            elif candidate not in names:
                names.append(candidate)
    if not names:
        raise DataError(
            "no dataset with data present; pass --data-root DIR (or set DDBENCH_DATA), or use --datasets shapes"
        )
    return names


def resolve_methods(exp: ExperimentConfig, reg: Registries) -> list[str]:
    """Method names to run; ``all`` means every registered method except full-data references."""
    names: list[str] = []
    for name in exp.methods:
        if name == "all":
            names += [i.name for i in reg.method if i.cls.role != "full_data" and i.name not in names
                      and i.cls.for_task(exp.task) is not None]
        else:
            reg.method.get(name)
            if name not in names:
                names.append(name)
    return names


def snapshot_iterations(exp: ExperimentConfig, method_cls, method_cfg) -> list[int]:
    """The requested intermediate iterations that exist for this method (0 .. its iterations, excluding the
    final one, which is always evaluated)."""
    field = method_cls.iterations_field
    if not exp.eval_iterations or field is None:
        return []
    total = getattr(method_cfg, field)
    bad = [i for i in exp.eval_iterations if i < 0]
    if bad:
        raise ConfigError(f"--eval-iterations must be >= 0, got {bad}")
    return sorted({i for i in exp.eval_iterations if i < total})


def ppc_for_budget(method_cls, config, budget_bytes: int, num_classes: int, points: int, family: str = "",
                   limit: int = 100_000) -> int | None:
    """The largest PPC whose synthetic set stores at most ``budget_bytes`` per class (None if PPC 1 does not fit).
    Storage grows with PPC, so an exponential then binary search finds it."""

    def fits(ppc: int) -> bool:
        floats = method_cls.storage_floats(config, ppc, num_classes, points, family)
        return floats * 4 / num_classes <= budget_bytes

    if not fits(1):
        return None
    lo, hi = 1, 2
    while hi <= limit and fits(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo
