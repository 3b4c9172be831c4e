"""Fault injection for the ``pool`` executor: SIGKILL workers (and, once, the runner) at random moments, rerun.

    python benchmarks/fault_injection.py            # 20 trials; --trials N --seed S --json

Each trial runs one small grid (8 cells: random and herding at PPC 1 and 2, each evaluated by two networks, so
pairs of cells share a distillation) with ``ddbench run --executor pool --workers 2`` on a fresh results
directory. While it runs, 1-3 worker processes are SIGKILLed, each at a random moment while a worker computes a
cell; in one trial (chosen at random) the runner itself is SIGKILLed instead. The run goes on or ends; then the
same command runs again, without faults, and the trial counts:

- lost cells: cells of the grid without an ``ok`` record after the rerun;
- corrupt files: cell records, artifacts (their checksums verified), manifests, checkpoints and claim files
  that cannot be read;
- cells computed twice: cells whose computation finished more than once, and distillations made more than once
  (from ``claims/events.jsonl``).

Diagnostics beside them: workers still alive 5 s after their runner was killed (orphans), temporary files and
claims left after the rerun, and how often a dead worker's claim was taken over.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

GRID = ["--datasets", "shapes", "--methods", "random,herding", "--set", "herding.embedding=random", "--ppc", "1,2",
        "--eval-backbones", "pointnet,pointnet_in", "--eval-nets", "2", "--epochs", "6", "--device", "cpu",
        "--set", "shapes.points=128", "--set", "shapes.train_per_class=6", "--set", "shapes.test_per_class=4",
        "--executor", "pool", "--workers", "2", "--executor-opt", "threads=1"]
CELLS = 8


def command(results: Path) -> list[str]:
    return [sys.executable, "-m", "ddbench", "run", *GRID, "--results", str(results)]


def children(pid: int) -> list[int]:
    """The pool workers of runner ``pid`` (its spawned children; not the resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and "spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def computing(results: Path) -> bool:
    """Whether a worker holds a cell claim now."""
    return any((results / "claims").glob("*.lock"))


def wait_until(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def inject(proc: subprocess.Popen, results: Path, rng: random.Random, kill_runner: bool) -> dict:
    """SIGKILL 1-3 workers (or the runner) while cells are computed; returns what was killed."""
    killed = {"workers": 0, "runner": False, "orphans": 0}
    for _ in range(1 if kill_runner else rng.randint(1, 3)):
        if not wait_until(lambda: computing(results) and children(proc.pid), proc):
            break
        time.sleep(rng.uniform(0.0, 3.0))
        workers = [p for p in children(proc.pid) if alive(p)]
        if proc.poll() is not None or not workers:
            break
        if kill_runner:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed["runner"] = True
            time.sleep(5.0)  # the workers watch their parent every second
            orphans = [p for p in workers if alive(p)]
            killed["orphans"] = len(orphans)
            for p in orphans:  # started by this script's runner: ended so that the next trial is clean
                os.kill(p, signal.SIGKILL)
            break
        os.kill(rng.choice(workers), signal.SIGKILL)
        killed["workers"] += 1
        time.sleep(1.0)  # the pool notices and starts again
    return killed


def corrupt_files(results: Path) -> list[str]:
    """Every file of the results directory that cannot be read back."""
    import torch

    from ddbench.cells.record import load_record
    from ddbench.synthetic.artifact import load_artifact

    bad = []
    for path in sorted(p for p in results.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            if path.parent.name == "cells" and path.suffix == ".json":
                record = load_record(path)
                assert record is not None and record.cell_id == path.stem
            elif path.suffix == ".h5":
                load_artifact(path, verify=True)
            elif path.suffix in (".json", ".claim"):
                json.loads(path.read_text())
            elif path.suffix == ".pt":
                torch.load(path, weights_only=False)
        except Exception as err:  # noqa: BLE001 - anything that cannot be read counts
            bad.append(f"{path.relative_to(results)}: {type(err).__name__}: {err}"[:300])
    return bad


def count(results: Path) -> dict:
    from ddbench.runner.claims import read_claims, read_events

    cells = [json.loads(p.read_text()) for p in (results / "cells").glob("*.json")]
    events = read_events(results)
    finished = Counter(e["key"] for e in events if e["event"] == "finished" and e.get("status") == "ok")
    distilled = Counter(e["key"] for e in events if e["event"] == "distilled")
    return {
        "lost": CELLS - sum(c.get("status") == "ok" for c in cells),
        "corrupt": corrupt_files(results),
        "twice": sum(n > 1 for n in finished.values()) + sum(n > 1 for n in distilled.values()),
        "taken_over": sum(e["event"] == "took-over" for e in events),
        "tmp_left": len(list(results.rglob("*.tmp"))),
        "claims_left": len(read_claims(results)) + len(read_claims(results, "distill")),
    }


def trial(root: Path, index: int, rng: random.Random, kill_runner: bool, env: dict) -> dict:
    results = root / f"trial{index:02d}"
    start = time.monotonic()
    proc = subprocess.Popen(command(results), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = inject(proc, results, rng, kill_runner)
    first = proc.wait()
    rerun = subprocess.run(command(results), env=env, capture_output=True, text=True)
    out = {"trial": index, **killed, "first_exit": first, "rerun_exit": rerun.returncode, **count(results),
           "seconds": round(time.monotonic() - start, 1)}
    if rerun.returncode != 0:
        out["rerun_error"] = rerun.stderr[-500:]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    runner_trial = rng.randrange(args.trials)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fault_injection_") as tmp:
        env = {**os.environ, "DDBENCH_CACHE": str(Path(tmp) / "cache")}
        for i in range(args.trials):
            rows.append(trial(Path(tmp), i, rng, i == runner_trial, env))
            if not args.json:
                r = rows[-1]
                print(f"trial {i:2d}: killed {'the runner' if r['runner'] else str(r['workers']) + ' worker(s)'}, "
                      f"lost {r['lost']}, corrupt {len(r['corrupt'])}, twice {r['twice']}, taken over "
                      f"{r['taken_over']}, orphans {r['orphans']}, rerun exit {r['rerun_exit']} ({r['seconds']} s)",
                      flush=True)
    totals = {k: sum(len(r[k]) if isinstance(r[k], list) else r[k] for r in rows)
              for k in ("lost", "corrupt", "twice", "workers", "orphans", "tmp_left", "claims_left", "taken_over")}
    totals["runner_kills"] = sum(r["runner"] for r in rows)
    totals["failed_reruns"] = sum(r["rerun_exit"] != 0 for r in rows)
    if args.json:
        print(json.dumps({"trials": rows, "totals": totals}, indent=2))
        return
    print(f"{args.trials} trials x {CELLS} cells: {totals['workers']} workers and {totals['runner_kills']} runner "
          f"SIGKILLed; lost cells {totals['lost']}, corrupt files {totals['corrupt']}, cells computed twice "
          f"{totals['twice']}; orphans {totals['orphans']}, temporary files left {totals['tmp_left']}, claims left "
          f"{totals['claims_left']}, failed reruns {totals['failed_reruns']}, claims taken over {totals['taken_over']}")
    for r in rows:
        for c in r["corrupt"]:
            print(f"  corrupt (trial {r['trial']}): {c}")


if __name__ == "__main__":
    main()
