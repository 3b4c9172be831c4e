"""How long the CLI takes to answer: every `ddbench list KIND` and `--help` (target: under 2 s each), each in a
fresh process as a user types it, best and median of a few runs, with the peak memory of the process. A listing
is timed twice: as it answers from its cache (every listing after the first, until code, plugins or the data root
change: docs/plugins.md#how-fast-a-listing-answers) and rebuilt with `--refresh` (the first listing on a machine).

    python benchmarks/bench_cli.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

KINDS = ("methods", "backbones", "datasets", "protocols", "executors", "presets")
COMMANDS = [["--help"], ["run", "--help"], ["table", "--help"]] + [
    cmd for kind in KINDS for cmd in (["list", kind], ["list", kind, "--refresh"])]
#: a cache folder of its own, so that the first listing of each kind is really the first
ENV = {**os.environ, "DDBENCH_CACHE": tempfile.mkdtemp(prefix="ddbench-bench-cli-")}


def timed(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MiB of this very child) of one `ddbench ARGS` in a fresh process."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "ddbench", *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=ENV)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"ddbench {' '.join(args)} failed with exit code {code}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| command | best s | median s | under 2 s | peak RSS MiB |")
    print("| --- | ---: | ---: | :---: | ---: |")
    for cmd in COMMANDS:
        if cmd[0] == "list" and "--refresh" not in cmd:
            timed(cmd)  # the cache a user has after the first listing
        runs = [timed(cmd) for _ in range(args.repeat)]
        seconds = [s for s, _ in runs]
        print(f"| `ddbench {' '.join(cmd)}` | {min(seconds):.2f} | {statistics.median(seconds):.2f} | "
              f"{'yes' if statistics.median(seconds) < 2 else 'no'} | {max(m for _, m in runs):.0f} |", flush=True)


if __name__ == "__main__":
    main()
