"""The README's main job (`ddbench run --config examples/quickstart.toml` and its table), timed after installation,
into a fresh results directory, with the allocator and threads the cells record (target: under 5 minutes on a
2-core machine).

    python benchmarks/bench_quickstart.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "quickstart"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ddbench", "run", "--config", str(REPO / "examples" / "quickstart.toml"),
                        "--results", str(results)], check=True, capture_output=True, cwd=REPO)
        subprocess.run([sys.executable, "-m", "ddbench", "table", "--results", str(results)], check=True,
                       capture_output=True, cwd=REPO)
        seconds = time.perf_counter() - start
        cells = [json.loads(p.read_text()) for p in (results / "cells").glob("*.json")]
        env = cells[0]["environment"] if cells else {}
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print("| main job | wall s | under 5 min | cells | allocator | torch threads | peak RSS MiB |")
    print("| --- | ---: | :---: | ---: | --- | ---: | ---: |")
    print(f"| `ddbench run --config examples/quickstart.toml` + `ddbench table` | {seconds:.0f} | "
          f"{'yes' if seconds < 300 else 'no'} | {sum(c['status'] == 'ok' for c in cells)} | "
          f"{env.get('allocator', '?')} | {env.get('torch_threads', '?')} | {peak:.0f} |")


if __name__ == "__main__":
    main()
