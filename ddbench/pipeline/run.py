"""The pipeline's entry points: plan and run a grid, distil one synthetic set, evaluate one artifact.

``ddbench run``, ``ddbench distill`` and ``ddbench eval`` are thin wrappers around these, and they go through the
same resolution (:mod:`ddbench.pipeline.grid`) and the same cell code (:mod:`ddbench.runner.cell`) as the grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddbench.backbones.tasks import supports, task_class
from ddbench.cells.resolved import Resolved, ResolvedCell
from ddbench.data.paths import resolve_cache_dir, resolve_data_root
from ddbench.environment import environment_record, resolve_device
from ddbench.errors import ConfigError
from ddbench.pipeline.experiment import ExperimentConfig
from ddbench.pipeline.grid import backbone_factory, expand_grid
from ddbench.pipeline.resolve import protocol_name
from ddbench.plugins import Registries, get_registries
from ddbench.runner.cell import RunSettings, distill_artifact_record, distill_context
from ddbench.runner.progress import Reporter
from ddbench.runner.run import GridSummary, run_cells
from ddbench.synthetic.artifact import SyntheticSet, load_artifact, save_artifact


def plan_grid(exp: ExperimentConfig, reg: Registries | None = None) -> list[ResolvedCell]:
    """Every cell of ``exp``, resolved (data root and cache as the experiment or the environment say)."""
    reg = reg or get_registries()
    return expand_grid(exp, reg, resolve_data_root(exp.data_root), resolve_cache_dir(exp.cache_dir))


def build_executor(exp: ExperimentConfig, reg: Registries | None = None):
    """The experiment's executor, built with its validated options (a missing extra fails here, in one line)."""
    reg = reg or get_registries()
    ex_info = reg.executor.get(exp.executor)
    return ex_info.cls(ex_info.make_config(exp.executor_config))


def run_grid(exp: ExperimentConfig, reporter: Reporter | None = None) -> GridSummary:
    """Resolve ``exp`` and run its unfinished cells on the experiment's executor."""
    reg = get_registries()
    executor = build_executor(exp, reg)
    if getattr(executor, "remote", False):
        check_device_name(exp.device)  # the cells run on other machines, whose devices count
    else:
        resolve_device(exp.device)  # fail before the grid when the device is unusable
    cells = plan_grid(exp, reg)
    settings = RunSettings(Path(exp.results), exp.device, exp.eval_engine, exp.ensemble_size,
                           resolve_data_root(exp.data_root), resolve_cache_dir(exp.cache_dir), exp.overwrite,
                           exp.no_recompute)
    return run_cells(cells, executor, settings, reporter)


def check_device_name(device: str) -> None:
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda[:N]")


@dataclass(frozen=True)
class DistillRequest:
    """``ddbench distill``: one method on one dataset at one PPC and seed."""

    method: str
    dataset: str
    ppc: int = 1
    seed: int = 0
    backbone: str | None = None
    iterations: int | None = None
    device: str = "auto"
    data_root: str | None = None
    cache_dir: str | None = None
    sections: dict[str, Any] | None = None  # method_config / dataset_config / backbone_config, as from --set
    task: str = "classification"


def distill_one(request: DistillRequest, out_path: Path) -> dict[str, Any]:
    """Distil the synthetic set ``request`` names and save it as an artifact; returns its manifest."""
    sections = request.sections or {}
    exp = ExperimentConfig(
        datasets=[request.dataset], methods=[request.method], ppc=[request.ppc], seeds=[request.seed],
        distill_backbones=[request.backbone] if request.backbone else None, iterations=request.iterations,
        data_root=request.data_root, cache_dir=request.cache_dir, device=request.device, task=request.task,
        **{k: v for k, v in sections.items() if k in ("method_config", "dataset_config", "backbone_config")},
    )
    cell = plan_grid(exp)[0]
    dataset = cell.dataset.build(resolve_data_root(exp.data_root), resolve_cache_dir(exp.cache_dir))
    ctx = distill_context(cell, dataset.load("train"), resolve_device(exp.device), resolve_cache_dir(exp.cache_dir),
                          task_ops=cell.task.for_dataset(dataset))
    synth = cell.method.build().distill(ctx)
    return save_artifact(out_path, synth, distill_artifact_record(cell))


@dataclass(frozen=True)
class EvalRequest:
    """``ddbench eval``: one artifact under one protocol."""

    artifact: Path
    protocol: str | None = None  # None: the default protocol of the artifact's task
    eval_nets: int | None = None
    epochs: int | None = None
    backbone: str | None = None
    seed: int = -1  # -1: the artifact's draw seed
    points: int | None = None
    device: str = "auto"
    eval_engine: str = "auto"
    ensemble_size: int | None = None
    data_root: str | None = None
    cache_dir: str | None = None


def resolve_eval_protocol(request: EvalRequest, reg: Registries, task: str = "classification") -> Resolved:
    info = reg.protocol.get(protocol_name(ExperimentConfig(protocol=request.protocol, task=task), reg))
    if not supports(info.cls, task):
        raise ConfigError(f"protocol {info.name} does not score {task}; the artifact was distilled for {task}")
    values: dict[str, Any] = {}
    if request.eval_nets is not None:
        values["num_nets"] = request.eval_nets
    if request.backbone is not None:
        reg.backbone.get(request.backbone)
        values["backbone"] = request.backbone
    cfg = info.make_config(values)
    if request.epochs is not None:
        cfg = cfg.with_epochs(request.epochs)
    return Resolved(info.cls, cfg)


def evaluate_one(request: EvalRequest) -> tuple[dict[str, Any], dict[str, Any], SyntheticSet, Resolved]:
    """Evaluate an artifact on its dataset's test set, without the method's code: (record, manifest, set,
    protocol)."""
    from ddbench.synthetic.resolution import at_resolution

    reg = get_registries()
    synth, manifest = load_artifact(request.artifact)
    if request.points is not None:
        synth = at_resolution(synth, request.points)
    task = manifest.get("task", "classification")
    protocol = resolve_eval_protocol(request, reg, task)
    dataset_name = manifest.get("dataset")
    if not dataset_name:
        raise ConfigError(f"{request.artifact} does not name its dataset in the manifest")
    info = reg.dataset.get(dataset_name)
    dataset = info.cls(info.make_config(manifest.get("dataset_config")), resolve_data_root(request.data_root),
                       resolve_cache_dir(request.cache_dir))
    device = resolve_device(request.device)
    draw = manifest.get("seed", 0) if request.seed < 0 else request.seed
    network = backbone_factory(ExperimentConfig(), reg, protocol.config.backbone, protocol.config.backbone_config)
    result = protocol.cls.evaluate(synth, dataset.load("test"), protocol.config, protocol.config.net_seeds(draw),
                                   device, engine=request.eval_engine, ensemble_size=request.ensemble_size,
                                   network=network, task=task_class(task).for_dataset(dataset))
    record = {"artifact": str(request.artifact), "artifact_sha256": manifest["sha256"].get("file"),
              "points": int(synth.points.shape[1]), "protocol": protocol.name, "task": task,
              "protocol_version": protocol.version, "protocol_config": protocol.config.model_dump(mode="json"),
              "results": result, "environment": environment_record(device)}
    return record, manifest, synth, protocol
