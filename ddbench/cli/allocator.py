"""Start heavy commands under a fast allocator: tcmalloc when the machine has it, else glibc tuned.

PointNet training allocates large fresh tensors at every step; with glibc's defaults each one above the mmap
threshold is mapped and zeroed by the kernel and returned at once, with tcmalloc it is reused. On the development
CPU one PointNet training step took 2.7-2.9 s with glibc's defaults, 1.3-1.6 s with glibc's mmap and trim
thresholds raised to 1 GiB, and 1.25-1.55 s with tcmalloc (benchmarks/README.md): the tuning alone recovers the
gap, and it needs nothing installed. ``ddbench run``, ``distill`` and ``eval`` therefore re-execute themselves once,
with tcmalloc preloaded when it is installed (Debian/Ubuntu: ``apt install libtcmalloc-minimal4``), else with
``GLIBC_TUNABLES`` raising those thresholds (glibc reads them only at process start, hence the re-execution). The
allocator in use is recorded in every result (``environment.allocator``: ``tcmalloc``, ``glibc-tuned`` or
``system``; ``environment.allocator_arranged``). ``DDBENCH_ALLOCATOR`` chooses: ``auto`` (default), ``tcmalloc``
(only tcmalloc, else nothing), ``glibc-tuned``, or ``system`` (switch it off).
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
#: glibc malloc with large blocks kept instead of mapped and unmapped at every step (1 GiB thresholds)
GLIBC_TUNED = "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824"


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


def arrange_allocator(argv: list[str]) -> None:
    """Re-execute this command under tcmalloc when :func:`reexec_plan` says so (never returns then)."""
    env = reexec_plan(argv, dict(os.environ), find_tcmalloc())
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, "-m", "ddbench", *argv], env)
    except OSError:
        return  # could not re-execute: go on with the system allocator (recorded as such)
