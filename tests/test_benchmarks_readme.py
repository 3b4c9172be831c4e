"""benchmarks/make_readme.py replaces exactly the marked blocks of benchmarks/README.md and nothing else."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def make_readme():
    spec = importlib.util.spec_from_file_location("make_readme", REPO / "benchmarks" / "make_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_splice_replaces_only_the_named_block():
    mod = make_readme()
    text = "intro\n<!-- begin: cli -->\nold\n<!-- end: cli -->\nmiddle\n<!-- begin: quickstart -->\nq\n<!-- end: quickstart -->\n"
    out = mod.splice(text, "cli", "| new | table |\n")
    assert out == text.replace("old", "| new | table |")
    assert mod.splice(out, "cli", "again") == text.replace("old", "again")
    with pytest.raises(SystemExit, match="no markers for section 'speed'"):
        mod.splice(text, "speed", "x")


def test_every_section_has_its_markers_and_its_script():
    mod = make_readme()
    readme = (REPO / "benchmarks" / "README.md").read_text()
    for name, cmd in mod.SECTIONS.items():
        assert f"<!-- begin: {name} -->" in readme and f"<!-- end: {name} -->" in readme
        assert (REPO / "benchmarks" / cmd[0]).exists()


def test_every_mutation_of_the_mutation_check_still_applies():
    """A patch whose text the code no longer contains would silently test nothing: every one must apply."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mutation_check.py"), "--check"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    total = proc.stdout.strip().splitlines()[-1]
    applied, of = total.split()[0].split("/")
    assert applied == of, proc.stdout
