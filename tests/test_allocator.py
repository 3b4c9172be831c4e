"""The glibc tuning ddbench arranges without tcmalloc (docs/results.md#what-the-cli-arranges-for-speed-and-how-to-switch-it-off):
a large tensor freed while a small allocation made after it lives on must be reused by the next tensor of its size,
not left behind while fresh pages are mapped for the new one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ddbench.cli.allocator import GLIBC_TUNED
from ddbench.environment import ALLOCATOR_VARIABLES

BLOCKS = r"""
import json, resource, torch
grown = []
for i in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    block = torch.empty(20, 1024, 1024).fill_(1.0)  # 80 MiB, from posix_memalign as every torch CPU tensor
    others = [object() for _ in range(1000)]  # an 8 KB list from malloc, above the block, replacing the last one
    del block
    grown.append((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
print(json.dumps(grown))
"""


def peak_growth_mib(tunables: str) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_VARIABLES}
    out = subprocess.run([sys.executable, "-c", BLOCKS], env={**env, "GLIBC_TUNABLES": tunables, "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="GLIBC_TUNABLES is read by glibc on Linux")
def test_tuned_glibc_reuses_a_freed_large_tensor():
    grown = peak_growth_mib(GLIBC_TUNED)
    # the first blocks may map new pages; afterwards the peak stays where it is (under the thresholds alone it
    # rises by about 80 MiB at every block on glibc 2.36: the freed block is a few bytes short of the next
    # aligned request, which is not served from it)
    assert sum(grown[3:]) < 40, grown


RELAUNCHED = r"""
import json, os, sys
from ddbench.cli.allocator import arrange_allocator
arrange_allocator(["run"], relaunch=sys.orig_argv[1:])
print(json.dumps({"argv": sys.argv[1:], "arranged": os.environ.get("DDBENCH_ALLOCATOR_ARRANGED"),
                  "settings": [os.environ.get(k, "") for k in ("LD_PRELOAD", "GLIBC_TUNABLES")]}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator is arranged on Linux only")
def test_a_benchmark_script_relaunches_itself_under_the_arranged_allocator(tmp_path):
    script = tmp_path / "bench_like.py"
    script.write_text(RELAUNCHED)
    env = {k: v for k, v in os.environ.items() if k not in (*ALLOCATOR_VARIABLES, "DDBENCH_ALLOCATOR_ARRANGED")}
    out = subprocess.run([sys.executable, str(script), "--ppc", "1"], env=env, capture_output=True, text=True,
                         check=True, timeout=60)
    seen = json.loads(out.stdout)
    assert seen["argv"] == ["--ppc", "1"] and seen["arranged"] == "1", seen  # the script itself, with its arguments
    assert "tcmalloc" in seen["settings"][0] or seen["settings"][1] == GLIBC_TUNED, seen
    switched_off = subprocess.run([sys.executable, str(script)], env={**env, "DDBENCH_ALLOCATOR": "system"},
                                  capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(switched_off.stdout)["arranged"] is None
