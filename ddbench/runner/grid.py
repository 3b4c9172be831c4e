"""Expanding an experiment into cells, with every name and config validated before any work starts.

A cell is one (dataset, method, PPC, distillation backbone, evaluation backbone, seed) under one protocol.
Its id is a readable prefix plus a hash of its complete specification, so a changed config is a new cell and
never overwrites or resumes from a different one. Cells that share a distillation (same dataset, method,
PPC, distillation backbone, seed and configs) share one synthetic-set artifact, keyed by ``distill_key``.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict

from ddbench.backbones.base import check_provides
from ddbench.config import config_diff
from ddbench.errors import ConfigError, DataError
from ddbench.io import stable_hash
from ddbench.plugins import Registries
from ddbench.runner.experiment import ExperimentConfig

log = logging.getLogger(__name__)

#: spec fields added after the first release, with the default that keeps them out of the id hash
OPTIONAL_FIELDS: dict[str, Any] = {"eval_iterations": [], "budget_bytes": None}
#: component-config options added after the first release: at these defaults they stay out of the id hash,
#: so that cells run before the option existed keep their ids (and resume instead of running again)
OPTIONAL_CONFIG_FIELDS: dict[str, dict[str, Any]] = {
    "dataset_config": {"source": "auto", "surface_points": 10000, "sampling_seed": 0, "rotation": "aligned",
                       "rotation_seed": 0, "canonical": "none"},
    "protocol_config": {"canonicalise": "none"},
}


class CellSpec(BaseModel):
    """Everything that determines a cell's result (validated component configs, not raw overrides)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    dataset_version: str
    dataset_config: dict[str, Any]
    method: str
    method_version: str
    method_config: dict[str, Any]
    ppc: int | None
    seed: int
    distill_backbone: str | None
    distill_backbone_config: dict[str, Any]
    eval_backbone: str
    eval_backbone_config: dict[str, Any]
    protocol: str
    protocol_version: str
    protocol_config: dict[str, Any]
    #: quick-run overrides and other departures from the reference values, recorded and marked in tables
    deviations: list[dict[str, Any]]
    #: intermediate iterations at which an iterative method's synthetic set is also evaluated
    eval_iterations: list[int] = []
    #: the storage budget (bytes per class) this cell's PPC was chosen for, when comparing at equal storage
    budget_bytes: int | None = None

    def _hash_payload(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Fields added after the first release enter the hash only when set, so existing ids stay valid."""
        out = {k: v for k, v in fields.items() if not (k in OPTIONAL_FIELDS and v == OPTIONAL_FIELDS[k])}
        for section, defaults in OPTIONAL_CONFIG_FIELDS.items():
            if isinstance(out.get(section), dict):
                out[section] = {k: v for k, v in out[section].items() if not (k in defaults and v == defaults[k])}
        return out

    def _id_parts(self) -> tuple[str, str]:
        ppc = f"ppc{self.ppc}" if self.ppc is not None else "all"
        return f"{self.dataset}__{self.method}__{ppc}", self.distill_backbone or "nobackbone"

    @property
    def cell_id(self) -> str:
        head, dbb = self._id_parts()
        prefix = f"{head}__{dbb}__{self.eval_backbone}__{self.protocol}__s{self.seed}"
        return f"{prefix}__{stable_hash(self._hash_payload(self.model_dump(mode='json')), 10)}"

    def distill_fields(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "dataset_version": self.dataset_version,
            "dataset_config": self.dataset_config, "method": self.method,
            "method_version": self.method_version, "method_config": self.method_config, "ppc": self.ppc,
            "seed": self.seed, "distill_backbone": self.distill_backbone,
            "distill_backbone_config": self.distill_backbone_config, "eval_iterations": self.eval_iterations,
        }

    @property
    def distill_key(self) -> str:
        head, dbb = self._id_parts()
        return f"{head}__{dbb}__s{self.seed}__{stable_hash(self._hash_payload(self.distill_fields()), 10)}"


def resolve_datasets(exp: ExperimentConfig, reg: Registries, data_root, cache_dir) -> list[str]:
    """Dataset names to run; ``all`` means every registered benchmark dataset whose data is present."""
    names: list[str] = []
    for name in exp.datasets:
        if name == "all":
            for info in reg.dataset:
                if not info.cls.benchmark or info.name in names:
                    continue
                ds = info.cls(info.make_config(exp.dataset_config.get(info.name)), data_root, cache_dir)
                ok, why = ds.availability()
                if ok:
                    names.append(info.name)
                else:
                    log.warning("skipping dataset %s: %s", info.name, why)
            continue
        info = reg.dataset.get(name)
        ds = info.cls(info.make_config(exp.dataset_config.get(name)), data_root, cache_dir)
        ok, why = ds.availability()
        if not ok:
            raise DataError(why)
        if name not in names:
            names.append(name)
    if not names:
        raise DataError(
            "no dataset with data present; pass --data-root DIR (or set DDBENCH_DATA), or use --datasets shapes"
        )
    return names


def resolve_methods(exp: ExperimentConfig, reg: Registries) -> list[str]:
    names: list[str] = []
    for name in exp.methods:
        if name == "all":
            names += [n for n in reg.method.names() if n != "whole" and n not in names]
        else:
            reg.method.get(name)
            if name not in names:
                names.append(name)
    return names


def _budget_deviations(exp: ExperimentConfig, protocol_default: dict, method_cls, method_cfg) -> list[dict]:
    devs = []
    if exp.eval_nets is not None and exp.eval_nets != protocol_default["num_nets"]:
        devs.append({"what": "eval_nets", "reference": protocol_default["num_nets"], "used": exp.eval_nets,
                     "kind": "budget"})
    if exp.epochs is not None and exp.epochs != protocol_default["epochs"]:
        devs.append({"what": "epochs", "reference": protocol_default["epochs"], "used": exp.epochs,
                     "kind": "budget"})
    field = method_cls.iterations_field
    if exp.iterations is not None and field is not None:
        ref = method_cls.Config().model_dump()[field]
        if exp.iterations != ref:
            devs.append({"what": f"iterations ({field})", "reference": ref, "used": exp.iterations,
                         "kind": "budget"})
    return devs


def _config_deviations(kind: str, name: str, config, skip: set[str] = frozenset()) -> list[dict]:
    """Non-default values of a component config, as recorded deviations from the reference."""
    default = type(config)().model_dump(mode="json")
    used = config.model_dump(mode="json")
    return [
        {"what": f"{kind} {name}: {k}", "reference": default[k], "used": used[k], "kind": "config"}
        for k in config_diff(config)
        if k not in skip
    ]


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


def ppc_for_budget(method_cls, config, budget_bytes: int, num_classes: int, points: int, dataset: str,
                   limit: int = 100_000) -> int | None:
    """The largest PPC whose synthetic set stores at most ``budget_bytes`` per class (None if PPC 1 does not fit).
    Storage grows with PPC, so an exponential then binary search finds it."""

    def fits(ppc: int) -> bool:
        floats = method_cls.storage_floats(config, ppc, num_classes, points, dataset)
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


def expand_grid(exp: ExperimentConfig, reg: Registries, data_root=None, cache_dir=None) -> list[CellSpec]:
    """All cells of ``exp``, validated. Raises a one-line :class:`DDBenchError` on any bad name or config."""
    for section, kind in (("method_config", "method"), ("dataset_config", "dataset"),
                          ("backbone_config", "backbone")):
        for name, values in getattr(exp, section).items():
            # unknown component -> did you mean; bad option -> one-line error, even for components not in the grid
            reg.kind(kind).get(name).make_config(values)
    proto_info = reg.protocol.get(exp.protocol)
    proto_values = dict(exp.protocol_config)
    if exp.selection is not None:
        proto_values["selection"] = exp.selection
    if exp.eval_nets is not None:
        proto_values["num_nets"] = exp.eval_nets
    proto_cfg = proto_info.make_config(proto_values)
    if exp.epochs is not None:
        proto_cfg = proto_cfg.with_epochs(exp.epochs)
    proto_default = proto_info.cls.Config().model_dump()
    proto_devs = _config_deviations("protocol", exp.protocol, proto_cfg,
                                    skip={"num_nets", "epochs", "step_epoch", "selection"})
    if proto_cfg.selection == "best_test":
        proto_devs.append({"what": "selection", "reference": proto_default["selection"], "used": "best_test",
                           "kind": "test-selection"})

    eval_backbones = exp.eval_backbones or [proto_cfg.backbone]
    for name in eval_backbones + (exp.distill_backbones or []):
        reg.backbone.get(name)
    datasets = resolve_datasets(exp, reg, data_root, cache_dir)
    methods = resolve_methods(exp, reg)

    def backbone_config(name: str, base: dict | None = None) -> dict:
        info = reg.backbone.get(name)
        values = {**(base or {}), **exp.backbone_config.get(name, {})}
        return info.make_config(values).model_dump(mode="json")

    cells: list[CellSpec] = []
    for ds_name in datasets:
        ds_info = reg.dataset.get(ds_name)
        ds_cfg = ds_info.make_config(exp.dataset_config.get(ds_name))
        for m_name in methods:
            m_info = reg.method.get(m_name)
            m_values = dict(exp.method_config.get(m_name, {}))
            if exp.iterations is not None and m_info.cls.iterations_field is not None:
                m_values[m_info.cls.iterations_field] = exp.iterations
            m_cfg = m_info.make_config(m_values)
            devs = _budget_deviations(exp, proto_default, m_info.cls, m_cfg)
            devs += _config_deviations("method", m_name, m_cfg,
                                       skip={m_info.cls.iterations_field} if exp.iterations else set())
            devs += _config_deviations("dataset", ds_name, ds_cfg)
            devs += proto_devs
            ppcs: list[tuple[int | None, int | None]] = [(p, None) for p in exp.ppc] if m_info.cls.uses_ppc else [(None, None)]
            if exp.budget_bytes and m_info.cls.uses_ppc:
                ds = ds_info.cls(ds_cfg, data_root, cache_dir)
                k, points = len(ds.class_names()), getattr(ds_cfg, "points", 1024)
                ppcs = []
                for budget in exp.budget_bytes:
                    ppc = ppc_for_budget(m_info.cls, m_cfg, budget, k, points, ds_name)
                    if ppc is None:
                        log.warning("%s does not fit %d bytes per class on %s even at PPC 1; skipped", m_name,
                                    budget, ds_name)
                    else:
                        ppcs.append((ppc, budget))
            dbbs = (exp.distill_backbones or [m_info.cls.default_backbone]) if m_info.cls.uses_backbone else [None]
            for dbb in dbbs:
                if dbb is not None:
                    check_provides(reg.backbone.get(dbb).cls, m_info.cls.needs, m_name)
            for ppc, budget in ppcs:
                for seed in exp.seeds:
                    for dbb in dbbs:
                        for ebb in eval_backbones:
                            ebb_base = proto_cfg.backbone_config if ebb == proto_cfg.backbone else {}
                            ebb_cfg = backbone_config(ebb, ebb_base)
                            cells.append(CellSpec(
                                dataset=ds_name, dataset_version=ds_info.version,
                                dataset_config=ds_cfg.model_dump(mode="json"),
                                method=m_name, method_version=m_info.version,
                                method_config=m_cfg.model_dump(mode="json"),
                                ppc=ppc, seed=seed,
                                distill_backbone=dbb,
                                distill_backbone_config=backbone_config(dbb) if dbb else {},
                                eval_backbone=ebb, eval_backbone_config=ebb_cfg,
                                protocol=exp.protocol, protocol_version=proto_info.version,
                                protocol_config={**proto_cfg.model_dump(mode="json"), "backbone": ebb,
                                                 "backbone_config": ebb_cfg},
                                deviations=devs,
                                eval_iterations=snapshot_iterations(exp, m_info.cls, m_cfg),
                                budget_bytes=budget,
                            ))
    if not cells:
        raise ConfigError("the grid is empty; give at least one dataset, method, PPC and seed")
    return cells
