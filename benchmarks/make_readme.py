"""Regenerate the measured figures of benchmarks/README.md in one command: every section between a
``<!-- begin: NAME -->`` and ``<!-- end: NAME -->`` marker is replaced by the output of its benchmark, run now, on
this machine, with a line naming the machine and the date. The prose around the markers is not touched.

    python benchmarks/make_readme.py                      # every section (about 20 minutes on 2 cores)
    python benchmarks/make_readme.py --only cli,quickstart
Stop other jobs first: the figures are ratios measured in one run, but a loaded machine still skews them.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
#: section -> the benchmark command whose output it holds
SECTIONS = {
    "cli": ["bench_cli.py"],
    "quickstart": ["bench_quickstart.py"],
    "allocator": ["bench_allocator.py", "--rounds", "3", "--steps", "5"],
    "speed_table": ["bench_speed_table.py"],
    "eval_loop": ["bench_eval_loop.py"],
}


def splice(text: str, name: str, body: str) -> str:
    """``text`` with the block between section ``name``'s markers replaced by ``body`` (an error names a missing
    marker)."""
    begin, end = f"<!-- begin: {name} -->", f"<!-- end: {name} -->"
    if begin not in text or end not in text:
        raise SystemExit(f"{README.name} has no markers for section {name!r}: add {begin} ... {end}")
    head, rest = text.split(begin, 1)
    return f"{head}{begin}\n{body.strip()}\n{end}{rest.split(end, 1)[1]}"


def machine_line() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return (f"Measured {datetime.date.today().isoformat()} by `python benchmarks/make_readme.py` on {cpu} "
            f"({os.cpu_count()} cores), Python {platform.python_version()}, load {os.getloadavg()[0]:.1f} at the start.")


def run_section(name: str) -> str:
    cmd = [sys.executable, str(HERE / SECTIONS[name][0]), *SECTIONS[name][1:]]
    # the speed benchmarks re-execute themselves under the allocator `ddbench run` arranges; the allocator row
    # chooses its allocators itself, and the CLI and main-job timings go through the CLI, which arranges its own
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=HERE.parent).stdout
    return f"{machine_line()}\n\n    python benchmarks/{' '.join(SECTIONS[name])}\n\n{out}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections: " + ", ".join(SECTIONS))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown sections {unknown}; use {', '.join(SECTIONS)}")
    for name in names:
        body = run_section(name)
        README.write_text(splice(README.read_text(), name, body))
        print(f"updated section {name}", flush=True)


if __name__ == "__main__":
    main()
