"""The repository's promises to a newcomer: the README's two commands and CI running the test command."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_has_exactly_two_commands_with_pinned_torch():
    commands = readme_commands()
    assert len(commands) == 2
    for cmd in commands:
        assert "\n" not in cmd
        assert "pip install torch==2.13.0" in cmd
    assert "ddbench run" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (REPO / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci


def test_main_job_config_exists_and_is_valid():
    from ddbench.pipeline.experiment import build_experiment, load_experiment_file

    cmd = readme_commands()[0]
    config = re.search(r"--config (\S+)", cmd).group(1)
    exp = build_experiment(load_experiment_file(REPO / config), {})
    assert exp.datasets == ["shapes"]


def test_docs_cover_every_builtin_component():
    from ddbench.plugins import load_registries

    reg = load_registries(entry_points=False)
    docs = {p.name: p.read_text() for p in (REPO / "docs").glob("*.md")}
    for kind, page in [("method", "methods.md"), ("backbone", "backbones.md"), ("dataset", "datasets.md"),
                       ("protocol", "protocols.md")]:
        for name in reg.kind(kind).names():
            assert f"`{name}`" in docs[page], f"{kind} {name} is not documented in docs/{page}"
    assert "register_methods" in docs["plugins.md"]


def test_the_readmes_show_the_generated_sadm_table_1_comparison():
    """README.md and results/README.md hold results/table_sadm2025_table1.md verbatim between their markers
    (results/make_tables.sh writes them; a hand edit or a stale copy fails here)."""
    table = (REPO / "results" / "table_sadm2025_table1.md").read_text().strip()
    begin, end = ("<!-- begin: ddbench table --preset sadm2025.table1 -->",
                  "<!-- end: ddbench table --preset sadm2025.table1 -->")
    for readme in (REPO / "README.md", REPO / "results" / "README.md"):
        block = readme.read_text().split(begin, 1)[1].split(end, 1)[0].strip()
        assert block == table, f"{readme.name}: run bash results/make_tables.sh"
    assert "within_2std" in table and "| no |" in table and "| yes |" in table
