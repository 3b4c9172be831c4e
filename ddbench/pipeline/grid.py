"""Expanding a validated experiment into resolved cells: dataset x method x PPC x seed x backbones.

Part of the resolution layer (it reads the registry); see :mod:`ddbench.pipeline.resolve` for the pieces.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ddbench.backbones.base import BackboneFactory, check_provides
from ddbench.backbones.tasks import supports, task_class, unsupported
from ddbench.cells.resolved import DataIdentity, Resolved, ResolvedCell
from ddbench.cells.spec import CellSpec
from ddbench.data.fingerprint import content_fingerprint
from ddbench.errors import ConfigError
from ddbench.pipeline.experiment import ExperimentConfig
from ddbench.pipeline.resolve import (
    ProtocolChoice,
    budget_deviations,
    config_deviations,
    open_dataset_of,
    ppc_for_budget,
    resolve_datasets,
    resolve_methods,
    resolve_protocol,
    snapshot_iterations,
)
from ddbench.plugins import Registries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MethodChoice:
    """One method of the grid on one dataset: validated config, deviations, PPCs and backbones to expand."""

    resolved: Resolved
    initialiser: Resolved | None
    deviations: tuple
    ppcs: list[tuple[int | None, int | None]]  # (ppc, storage budget it was chosen for)
    distill_backbones: list[str | None]
    eval_iterations: list[int]


def validate_sections(exp: ExperimentConfig, reg: Registries) -> None:
    """Every component named in a config section exists and its options are valid, even outside the grid."""
    for section, kind in (("method_config", "method"), ("dataset_config", "dataset"),
                          ("backbone_config", "backbone")):
        for name, values in getattr(exp, section).items():
            reg.kind(kind).get(name).make_config(values)


def backbone_factory(exp: ExperimentConfig, reg: Registries, name: str, base: dict | None = None) -> BackboneFactory:
    """The backbone ``name`` with ``base`` values overridden by the experiment's ``backbone_config``."""
    cls = reg.backbone.get(name).cls
    return BackboneFactory.of(cls, {**(base or {}), **exp.backbone_config.get(name, {})})


def check_task(exp: ExperimentConfig, reg: Registries, protocol: ProtocolChoice, eval_backbones: list[str]) -> None:
    """Every component the grid names supports the experiment's task: a one-line error before the grid starts."""
    task_class(exp.task)
    comps = [("protocol", protocol.cls)] + [("backbone", reg.backbone.get(b).cls)
                                             for b in eval_backbones + (exp.distill_backbones or [])]
    bad = unsupported(comps, exp.task)
    if bad:
        able = [i.name for i in reg.kind(bad[0].split()[0]) if supports(i.cls, exp.task)]
        raise ConfigError(f"{bad[0]} does not support task {exp.task}; use one that does: {', '.join(able)}")


def check_dataset_task(dataset, task: str, reg: Registries) -> None:
    if not supports(type(dataset), task):
        able = [i.name for i in reg.dataset if supports(i.cls, task)]
        raise ConfigError(f"dataset {dataset.name} does not support task {task}; datasets that do: {', '.join(able)}")


def resolve_initialiser(reg: Registries, method_cls, config) -> Resolved | None:
    """The coreset method that makes ``method_cls``'s initial set, when it asks for one."""
    request = method_cls.initialiser_request(config)
    if request is None:
        return None
    name, values = request
    info = reg.method.get(name)
    return Resolved(info.cls, info.make_config(values or None))


def method_ppcs(exp, method_cls, config, dataset) -> list[tuple[int | None, int | None]]:
    """(PPC, budget) pairs of one method: the experiment's PPCs, or the largest PPC that fits each budget."""
    if not method_cls.uses_ppc:
        return [(None, None)]
    if not exp.budget_bytes:
        return [(p, None) for p in exp.ppc]
    k, points = len(dataset.class_names()), getattr(dataset.config, "points", 1024)
    out = []
    for budget in exp.budget_bytes:
        ppc = ppc_for_budget(method_cls, config, budget, k, points, dataset.family)
        if ppc is None:
            log.warning("%s does not fit %d bytes per class on %s even at PPC 1; skipped", method_cls.name, budget,
                        dataset.name)
        else:
            out.append((ppc, budget))
    return out


def method_for_task(reg, name: str, task: str) -> type:
    """The method class that runs ``name`` for ``task`` (a method may hand a task to a variant class, e.g. DD3D's
    segmentation generator); a one-line error when it has none."""
    info = reg.method.get(name)
    cls = info.cls.for_task(task)
    if cls is None:
        able = [i.name for i in reg.method if i.cls.for_task(task) is not None]
        raise ConfigError(f"method {name} does not support task {task}; methods that do: {', '.join(able)}")
    return cls


def choose_method(exp, reg, name: str, dataset, protocol: ProtocolChoice) -> MethodChoice:
    cls = method_for_task(reg, name, exp.task)
    values = dict(exp.method_config.get(name, {}))
    if exp.iterations is not None and cls.iterations_field is not None:
        values[cls.iterations_field] = exp.iterations
    cfg = cls.make_config(values)
    devs = budget_deviations(exp, protocol.default, cls)
    devs += config_deviations("method", name, cfg, skip={cls.iterations_field} if exp.iterations else set())
    devs += config_deviations("dataset", dataset.name, dataset.config)
    devs += protocol.deviations
    default_dbb = cls.task_backbones.get(exp.task, cls.default_backbone)
    dbbs = (exp.distill_backbones or [default_dbb]) if cls.uses_backbone else [None]
    for dbb in dbbs:
        if dbb is not None:
            check_provides(reg.backbone.get(dbb).cls, cls.needs, name)
    return MethodChoice(Resolved(cls, cfg), resolve_initialiser(reg, cls, cfg), tuple(devs),
                        method_ppcs(exp, cls, cfg, dataset), dbbs, snapshot_iterations(exp, cls, cfg))


def data_identity(dataset) -> DataIdentity:
    """The content fingerprint and release record of a dataset's prepared train and test sets (loads them)."""
    return DataIdentity(content_fingerprint(dataset.load("train"), dataset.load("test")), dataset.release_record())


def make_cell(exp, reg, dataset: Resolved, choice: MethodChoice, protocol: ProtocolChoice, ppc, budget, seed,
              dbb: str | None, ebb: str, data: DataIdentity | None = None) -> ResolvedCell:
    pcfg = protocol.config
    eval_net = backbone_factory(exp, reg, ebb, pcfg.backbone_config if ebb == pcfg.backbone else {})
    distill_net = backbone_factory(exp, reg, dbb) if dbb else None
    proto_values = {**pcfg.model_dump(mode="json"), "backbone": ebb, "backbone_config": eval_net.config_dict()}
    method = choice.resolved
    spec = CellSpec(
        dataset=dataset.name, dataset_version=dataset.version, dataset_config=dataset.config.model_dump(mode="json"),
        method=method.name, method_version=method.version, method_config=method.config.model_dump(mode="json"),
        ppc=ppc, seed=seed, distill_backbone=dbb,
        distill_backbone_config=distill_net.config_dict() if distill_net else {},
        eval_backbone=ebb, eval_backbone_config=eval_net.config_dict(),
        protocol=protocol.name, protocol_version=str(protocol.cls.version), protocol_config=proto_values,
        deviations=choice.deviations, eval_iterations=choice.eval_iterations, budget_bytes=budget, task=exp.task,
    )
    return ResolvedCell(spec, dataset, method, choice.initialiser, distill_net, eval_net,
                        Resolved(protocol.cls, protocol.cls.make_config(proto_values)), data, task_class(exp.task))


def expand_grid(exp: ExperimentConfig, reg: Registries, data_root=None, cache_dir=None) -> list[ResolvedCell]:
    """All cells of ``exp``, resolved. Raises a one-line :class:`DDBenchError` on any bad name or config."""
    validate_sections(exp, reg)
    protocol = resolve_protocol(exp, reg)
    eval_backbones = exp.eval_backbones or [protocol.config.backbone]
    for name in eval_backbones + (exp.distill_backbones or []):
        reg.backbone.get(name)
    check_task(exp, reg, protocol, eval_backbones)
    cells: list[ResolvedCell] = []
    for ds_name in resolve_datasets(exp, reg, data_root, cache_dir):
        dataset = open_dataset_of(reg, ds_name, exp.dataset_config.get(ds_name), data_root, cache_dir)
        check_dataset_task(dataset, exp.task, reg)
        ds_resolved, data = Resolved(type(dataset), dataset.config), data_identity(dataset)
        for m_name in resolve_methods(exp, reg):
            choice = choose_method(exp, reg, m_name, dataset, protocol)
            cells += [make_cell(exp, reg, ds_resolved, choice, protocol, ppc, budget, seed, dbb, ebb, data)
                      for ppc, budget in choice.ppcs for seed in exp.seeds
                      for dbb in choice.distill_backbones for ebb in eval_backbones]
    if not cells:
        raise ConfigError("the grid is empty; give at least one dataset, method, PPC and seed")
    return cells
