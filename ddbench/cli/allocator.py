"""Start heavy commands under a fast allocator: tcmalloc when the machine has it, else glibc tuned.

PointNet training and the distillation methods' real sides allocate large fresh tensors at every step; with glibc's
defaults each one above the mmap threshold is mapped and zeroed by the kernel and returned at once, with tcmalloc
it is reused. ``ddbench run``, ``distill`` and ``eval`` therefore re-execute themselves once, with tcmalloc preloaded
when it is installed (Debian/Ubuntu: ``apt install libtcmalloc-minimal4``), else with ``GLIBC_TUNABLES`` set to
:data:`GLIBC_TUNED` (glibc reads them only at process start, hence the re-execution): 1 GiB mmap and trim thresholds,
and no tcache or fastbins, without which a freed tensor is not reused for the next one of its size
(docs/results.md#what-the-cli-arranges-for-speed-and-how-to-switch-it-off; figures in benchmarks/README.md).
The allocator in use is recorded in every result (``environment.allocator``: ``tcmalloc``, ``glibc-tuned`` or
``system``; ``environment.allocator_arranged``; ``environment.allocator_settings``). ``DDBENCH_ALLOCATOR`` chooses:
``auto`` (default), ``tcmalloc`` (only tcmalloc, else nothing), ``glibc-tuned``, or ``system`` (switch it off).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HEAVY_COMMANDS = frozenset({"run", "distill", "eval"})
TCMALLOC_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/lib/libtcmalloc_minimal.so.4",
)
ARRANGED_FLAG = "DDBENCH_ALLOCATOR_ARRANGED"
#: glibc malloc with large blocks kept instead of mapped and unmapped at every step (1 GiB thresholds): ddbench's
#: tuning until 2026-12-03, kept for the allocator benchmark
GLIBC_THRESHOLDS = "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824"
#: the thresholds, plus freed small chunks merged at once (no tcache, no fastbins), so that a freed large block
#: can serve the next aligned request of its size (docs/results.md#what-the-cli-arranges-for-speed-and-how-to-switch-it-off)
GLIBC_TUNED = f"{GLIBC_THRESHOLDS}:glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0"


def find_tcmalloc(paths: tuple[str, ...] = TCMALLOC_PATHS) -> str | None:
    return next((p for p in paths if Path(p).exists()), None)


def command_of(argv: list[str]) -> str | None:
    """The sub-command in ``argv`` (arguments after the program name), skipping global options."""
    return next((a for a in argv if not a.startswith("-")), None)


def reexec_plan(argv: list[str], environ: dict[str, str], library: str | None) -> dict[str, str] | None:
    """The environment to re-execute with, or None to go on as we are."""
    choice = environ.get("DDBENCH_ALLOCATOR", "auto").strip().lower()
    if choice in ("system", "off", "0", "none") or environ.get(ARRANGED_FLAG):
        return None
    if sys.platform != "linux" or command_of(argv) not in HEAVY_COMMANDS:
        return None
    preload = environ.get("LD_PRELOAD", "")
    if any(name in preload for name in ("tcmalloc", "jemalloc", "mimalloc")) or environ.get("GLIBC_TUNABLES"):
        return None  # the user's own choice
    if library is not None and choice in ("auto", "tcmalloc"):
        return {**environ, "LD_PRELOAD": f"{library} {preload}".strip(), ARRANGED_FLAG: "1"}
    if choice in ("auto", "glibc-tuned"):
        return {**environ, "GLIBC_TUNABLES": GLIBC_TUNED, ARRANGED_FLAG: "1"}
    return None


def arrange_allocator(argv: list[str], relaunch: list[str] | None = None) -> None:
    """Re-execute this command under tcmalloc or glibc tuned when :func:`reexec_plan` says so for ddbench command
    line ``argv`` (never returns then). ``relaunch``: the interpreter's arguments to start again with (default
    ``-m ddbench`` and ``argv``; a benchmark script passes its own, ``sys.orig_argv[1:]``, with ``argv`` ``["run"]``
    to be measured under the allocator that ``ddbench run`` would arrange)."""
    env = reexec_plan(argv, dict(os.environ), find_tcmalloc())
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *(relaunch or ["-m", "ddbench", *argv])], env)
    except OSError:
        return  # could not re-execute: go on with the system allocator (recorded as such)
