"""The shape of the code: functions fit on a screen (at most 60 lines), and the package reads the registry only in
its resolution layer (checked by the import-linter contract in pyproject.toml, run in .ci/run)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ddbench"
MAX_LINES = 60


def function_lengths(root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(lines, 'path:name') of every function and method under ``root``, longest first."""
    out = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(root.parent)}:{node.name}"))
    return sorted(out, reverse=True)


def test_no_function_is_longer_than_a_screen():
    long = [f"{where} ({n} lines)" for n, where in function_lengths() if n > MAX_LINES]
    assert not long, f"functions longer than {MAX_LINES} lines: {', '.join(long)}"


def test_the_length_check_sees_a_long_function(tmp_path):
    (tmp_path / "mod.py").write_text("def f():\n" + "    x = 1\n" * 70)
    assert function_lengths(tmp_path)[0] == (71, f"{tmp_path.name}/mod.py:f")


if __name__ == "__main__":
    for n, where in function_lengths()[:5]:
        print(n, where)
