"""Start heavy commands under tcmalloc when the machine has it.

PointNet training allocates large fresh tensors at every step; with glibc malloc each one is mapped and
zeroed by the kernel, with tcmalloc it is reused. On the development CPU the same PointNet forward over
80 x 1024 points ran 2.5x faster with tcmalloc (benchmarks/README.md). ``ddbench run``, ``distill`` and
``eval`` therefore re-execute themselves once with tcmalloc preloaded when it is installed (Debian/Ubuntu:
``apt install libtcmalloc-minimal4``). The allocator in use is recorded in every result
(``environment.allocator``, ``environment.allocator_arranged``). ``DDBENCH_ALLOCATOR=system`` switches this off.
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
    if sys.platform != "linux" or library is None or command_of(argv) not in HEAVY_COMMANDS:
        return None
    preload = environ.get("LD_PRELOAD", "")
    if any(name in preload for name in ("tcmalloc", "jemalloc", "mimalloc")):
        return None
    return {**environ, "LD_PRELOAD": f"{library} {preload}".strip(), ARRANGED_FLAG: "1"}


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
