"""How long the CLI takes to answer: every `ddbench list KIND` and `--help` (target: under 2 s each), each in a
fresh process as a user types it, best and median of a few runs, with the peak memory of the process.

    python benchmarks/bench_cli.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

COMMANDS = [["--help"], ["run", "--help"], ["table", "--help"]] + [
    ["list", kind] for kind in ("methods", "backbones", "datasets", "protocols", "executors", "presets")]


def timed(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MiB of the child) of one `ddbench ARGS` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ddbench", *args], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return seconds, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| command | best s | median s | under 2 s | peak RSS MiB |")
    print("| --- | ---: | ---: | :---: | ---: |")
    for cmd in COMMANDS:
        runs = [timed(cmd) for _ in range(args.repeat)]
        seconds = [s for s, _ in runs]
        print(f"| `ddbench {' '.join(cmd)}` | {min(seconds):.2f} | {statistics.median(seconds):.2f} | "
              f"{'yes' if statistics.median(seconds) < 2 else 'no'} | {max(m for _, m in runs):.0f} |", flush=True)


if __name__ == "__main__":
    main()
