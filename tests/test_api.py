"""ddbench.api, the stable surface for plugins: what it exports, that it stays cheap to import, and that the
example plugin and the plugin guide import nothing else from ddbench."""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ddbench.api as api

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"
GUIDE = REPO / "docs" / "plugins.md"

#: every public name of ddbench.api and the module it lives in (the test of "same object as at home")
HOMES = {
    "hookimpl": "ddbench.hookspecs",
    "ComponentConfig": "ddbench.config",
    "Field": "pydantic",
    "Method": "ddbench.methods.base",
    "DistillContext": "ddbench.methods.base",
    "check_ppc": "ddbench.methods.base",
    "IterativeMethod": "ddbench.methods.iterative",
    "IterativeConfig": "ddbench.methods.iterative",
    "IterativeState": "ddbench.methods.iterative",
    "PointsState": "ddbench.methods.iterative",
    "GradientMatchingMethod": "ddbench.methods.gradient_matching",
    "Preset": "ddbench.presets.base",
    "SyntheticSet": "ddbench.synthetic.artifact",
    "Backbone": "ddbench.backbones.base",
    "BackboneFactory": "ddbench.backbones.base",
    "BackboneOutput": "ddbench.backbones.base",
    "reading": "ddbench.backbones.base",
    "Dataset": "ddbench.data.base",
    "DatasetConfig": "ddbench.data.base",
    "PointCloudSet": "ddbench.data.cloudset",
    "Transform": "ddbench.data.transforms",
    "Protocol": "ddbench.evaluation.protocols",
    "ProtocolConfig": "ddbench.evaluation.protocols",
    "Executor": "ddbench.runner.executors",
    "CellTask": "ddbench.runner.cell",
    "CellOutcome": "ddbench.runner.cell",
    "execute_cell": "ddbench.runner.cell",
    "Reporter": "ddbench.runner.progress",
    "DDBenchError": "ddbench.errors",
    "ConfigError": "ddbench.errors",
    "DataError": "ddbench.errors",
    "ArtifactError": "ddbench.errors",
    "IncompatibleError": "ddbench.errors",
    "TrainingDivergedError": "ddbench.errors",
    "farthest_point_sample": "ddbench.ops.backends",  # the backend-dispatching one, not ops.sampling's
    "gather_points": "ddbench.ops.sampling",
    "fps_subsample": "ddbench.data.transforms",
    "knn": "ddbench.ops.neighbors",
    "ball_query": "ddbench.ops.neighbors",
    "group": "ddbench.ops.neighbors",
    "apply_rotation": "ddbench.ops.rotation",
    "random_rotation_matrices": "ddbench.ops.rotation",
    "normalize_unit_sphere": "ddbench.data.transforms",
}


# -- what it exports ------------------------------------------------------------------------------------------

def test_all_is_explicit_and_complete():
    assert len(api.__all__) == len(set(api.__all__)), "duplicate names in ddbench.api.__all__"
    assert set(api.__all__) == set(HOMES)


@pytest.mark.parametrize("name", sorted(HOMES))
def test_every_name_is_the_object_at_its_home_module(name):
    home = importlib.import_module(HOMES[name])
    assert getattr(api, name) is getattr(home, name)


def test_star_import_and_from_import_give_every_name():
    namespace: dict = {}
    exec("from ddbench.api import *", namespace)
    assert set(api.__all__) <= set(namespace)
    exec("from ddbench.api import Executor, CellTask, CellOutcome, execute_cell", namespace)
    assert namespace["Executor"] is importlib.import_module("ddbench.runner.executors").Executor
    assert set(api.__all__) <= set(dir(api))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        api.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        exec("from ddbench.api import no_such_name", {})


def test_errors_are_ddbench_errors_and_components_are_bases():
    for name in ("ConfigError", "DataError", "ArtifactError", "IncompatibleError", "TrainingDivergedError"):
        assert issubclass(getattr(api, name), api.DDBenchError)
    assert issubclass(api.IterativeMethod, api.Method)
    assert issubclass(api.IterativeConfig, api.ComponentConfig)
    assert issubclass(api.ProtocolConfig, api.ComponentConfig)
    assert issubclass(api.DatasetConfig, api.ComponentConfig)


# -- cheap to import ------------------------------------------------------------------------------------------

def test_import_does_not_load_the_plugin_loader_or_the_cli():
    code = ("import json, sys; import ddbench.api; "
            "print(json.dumps(sorted(m for m in sys.modules if m == 'ddbench' or m.startswith('ddbench.'))))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert "ddbench.api" in loaded
    offenders = sorted(m for m in loaded if m in {"ddbench.plugins", "ddbench.cli"} or m.startswith("ddbench.cli."))
    assert not offenders, f"importing ddbench.api loaded {offenders}"


# -- plugins and the guide import ddbench.api only ------------------------------------------------------------

def internal_imports(source: str, filename: str = "<source>") -> list[str]:
    """The ``ddbench`` imports of ``source`` other than ``ddbench.api``, as 'line N: statement' strings."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (alias.name == "ddbench" or alias.name.startswith("ddbench.")) and alias.name != "ddbench.api":
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "ddbench":
                for alias in node.names:
                    if alias.name != "api":
                        found.append(f"line {node.lineno}: from ddbench import {alias.name}")
            elif node.module.startswith("ddbench.") and node.module != "ddbench.api":
                found.append(f"line {node.lineno}: from {node.module} import ...")
    return found


@pytest.mark.parametrize("source, bad", [
    ("from ddbench.api import Method, hookimpl", False),
    ("import ddbench.api\nimport ddbench.api as dd", False),
    ("from ddbench import api", False),
    ("from . import helpers\nimport torch\nfrom pydantic import Field", False),
    ("from ddbench.methods.base import Method", True),
    ("from ddbench import hookimpl", True),
    ("from ddbench import api, hookimpl", True),
    ("import ddbench", True),
    ("import ddbench.config", True),
    ("import torch, ddbench.errors as e", True),
    ("def f():\n    from ddbench.synthetic import SyntheticSet\n", True),
    ("from ddbench.apix import thing", True),
])
def test_the_scan_itself(source, bad):
    assert bool(internal_imports(source)) is bad


def plugin_sources() -> list[Path]:
    return sorted(p for p in PLUGINS.rglob("*.py") if "__pycache__" not in p.parts and ".egg-info" not in str(p))


def test_plugins_import_only_ddbench_api():
    sources = plugin_sources()
    assert sources, f"no plugin sources under {PLUGINS}"
    offenders = {str(p.relative_to(REPO)): bad for p in sources if (bad := internal_imports(p.read_text(), str(p)))}
    assert not offenders, f"plugins must import from ddbench.api only: {offenders}"


def guide_code_blocks() -> list[tuple[int, str]]:
    """(line number, code) of every ```python fence of docs/plugins.md."""
    text = GUIDE.read_text()
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)]


def test_guide_code_imports_only_ddbench_api():
    blocks = guide_code_blocks()
    assert blocks, "docs/plugins.md has no ```python code blocks"
    offenders = {}
    for line, code in blocks:
        bad = internal_imports(code, f"docs/plugins.md:{line}")  # a SyntaxError here is a broken example
        if bad:
            offenders[f"block at line {line}"] = bad
    assert not offenders, f"docs/plugins.md examples must import from ddbench.api only: {offenders}"
    assert any("from ddbench.api import" in code for _, code in blocks)


def test_guide_lists_every_export():
    text = GUIDE.read_text()
    table = text.split("## What `ddbench.api` exports", 1)[1]
    listed = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    assert listed == set(api.__all__)
