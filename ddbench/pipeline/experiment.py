"""Experiment files (TOML or YAML), validated by pydantic; CLI flags override their values.

Example (TOML)::

    datasets = ["modelnet10"]
    methods = ["random", "herding", "kcenter"]
    ppc = [1, 3, 10]
    seeds = [0, 1, 2]
    protocol = "sadm"
    eval_nets = 5
    data_root = "../shared/data"

    [method_config.herding]
    embedding = "trained"

    [executor]          # where the cells run (docs/running.md); a plain name works too: executor = "pool"
    name = "pool"
    workers = 4

Keys are those of :class:`ExperimentConfig`; an unknown key is an error that names the known ones.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ddbench.config import format_validation_error
from ddbench.errors import ConfigError


class ExperimentConfig(BaseModel):
    """A grid: datasets x methods x PPC x distillation backbones x evaluation backbones x seeds."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[str] = Field(default_factory=lambda: ["shapes"], description="dataset names or 'all'")
    methods: list[str] = Field(default_factory=lambda: ["random"], description="method names")
    ppc: list[int] = Field(default_factory=lambda: [1], description="synthetic clouds per class")
    budget_bytes: list[int] | None = Field(
        None, description="compare at equal storage instead of equal PPC: bytes per class; each method gets the "
        "largest PPC whose synthetic set fits (replaces the PPC axis)"
    )
    seeds: list[int] = Field(default_factory=lambda: [0], description="draw seeds (one synthetic set each)")
    distill_backbones: list[str] | None = Field(
        None, description="backbones the methods distil with (default: each method's own, e.g. pointnet_in for dd3d)"
    )
    eval_backbones: list[str] | None = Field(None, description="default: the protocol's network")
    task: str = Field("classification", description="classification or segmentation (docs/segmentation.md)")
    protocol: str | None = Field(None, description="evaluation protocol (default: the task's, sadm for "
                                 "classification, dd3d_seg for segmentation)")
    eval_nets: int | None = Field(None, gt=0, description="override the protocol's number of nets")
    epochs: int | None = Field(None, gt=0, description="override the protocol's epochs")
    iterations: int | None = Field(None, gt=0, description="override the methods' iterations")
    eval_iterations: list[int] | None = Field(
        None, description="also evaluate iterative methods at these iterations (e.g. 0,250,...,1500)"
    )
    selection: Literal["final", "best_test"] | None = None
    device: str = "auto"
    eval_engine: Literal["auto", "sequential", "ensemble"] = Field(
        "auto", description="train the evaluation nets one after another or as one batched ensemble (same "
        "results; auto = ensemble on CUDA, sequential on CPU)"
    )
    ensemble_size: int | None = Field(None, gt=0, description="most evaluation nets trained at once (ensemble engine)")
    results: str = "results/runs"
    data_root: str | None = None
    cache_dir: str | None = None
    executor: str = Field("inprocess", description="inprocess, pool, ray, slurm or a plugin's; in a file also a "
                          "table: [executor] name = \"pool\", workers = 4, ...")
    executor_config: dict[str, Any] = Field(default_factory=dict, description="the executor's options")
    overwrite: bool = False
    no_recompute: bool = Field(False, description="a cell finished on other data is an error instead of re-running")
    method_config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    dataset_config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    backbone_config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    protocol_config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _executor_table(cls, values: Any) -> Any:
        """``executor = {name = ..., options...}`` -> ``executor`` + ``executor_config``."""
        if isinstance(values, dict) and isinstance(values.get("executor"), dict):
            values = dict(values)
            table = split_executor_table(values["executor"])
            values["executor"] = table.pop("name")
            values["executor_config"] = {**table, **(values.get("executor_config") or {})}
        return values

    @field_validator("ppc", "seeds")
    @classmethod
    def _non_empty_ints(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("ppc")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(p < 1 for p in v):
            raise ValueError("PPC values must be >= 1")
        return v


def load_experiment_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or YAML experiment file into a dict (validated later, after CLI overrides)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"experiment file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"experiment file {path} must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot parse {path}: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a table/mapping of experiment keys at the top level")
    return data


def split_executor_table(table: dict[str, Any]) -> dict[str, Any]:
    """An ``[executor]`` table, checked: it names its executor (``name``); the other keys are its options."""
    if not isinstance(table.get("name", "inprocess"), str):
        raise ConfigError("[executor] name must be an executor's name, e.g. name = \"pool\"")
    return {"name": "inprocess", **table}


def _merge_executor(values: dict[str, Any], overrides: dict[str, Any]) -> None:
    """The file's executor (a name or an [executor] table) with the CLI's ``--executor`` and ``--executor-opt``:
    options given on the command line win; the file's options are dropped when the CLI names another executor."""
    if isinstance(values.get("executor"), dict):
        table = split_executor_table(values["executor"])
        values["executor"] = table.pop("name")
        values["executor_config"] = {**table, **(values.get("executor_config") or {})}
    name = overrides.get("executor")
    if name is not None and name != values.get("executor", "inprocess"):
        values["executor_config"] = {}
    if name is not None:
        values["executor"] = name
    if overrides.get("executor_config"):
        values["executor_config"] = {**(values.get("executor_config") or {}), **overrides["executor_config"]}


def build_experiment(file_values: dict[str, Any] | None, overrides: dict[str, Any]) -> ExperimentConfig:
    """Merge file values with CLI overrides (overrides win; ``None`` means 'not given')."""
    values = dict(file_values or {})
    _merge_executor(values, overrides)
    for key, value in overrides.items():
        if value is None or key in ("executor", "executor_config"):
            continue
        if key in ("method_config", "dataset_config", "backbone_config") and isinstance(value, dict):
            merged = {k: dict(v) for k, v in values.get(key, {}).items()}
            for comp, kv in value.items():
                merged.setdefault(comp, {}).update(kv)
            values[key] = merged
        elif key == "protocol_config":
            values[key] = {**values.get(key, {}), **value}
        else:
            values[key] = value
    try:
        return ExperimentConfig.model_validate(values)
    except ValidationError as err:
        raise ConfigError(
            f"{format_validation_error(err, 'experiment')} (keys: {', '.join(ExperimentConfig.model_fields)})"
        ) from None
