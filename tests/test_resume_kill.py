"""Killed for real: a ``python -m ddbench run`` subprocess SIGKILLed after its first distillation checkpoint resumes
to the same artifact as an uninterrupted run; an atomic write whose writer is SIGKILLed keeps the old file.

The checkpoint interval is ``DistillContext.checkpoint_every`` (50 iterations), which neither the command line
nor an experiment file sets: the runs here therefore distil for more than 50 iterations, on a tiny problem (the
built-in shapes at 32 points, 4 clouds per class, ``pointnet_in`` of width 16) so that each iteration is cheap.
The subprocesses import ddbench from this checkout (PYTHONPATH), so a copy of the package tests itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ddbench.synthetic.artifact import load_artifact

REPO = Path(__file__).resolve().parents[1]
#: more than the checkpoint interval (50), so that a checkpoint is written at iteration 50 and 20 iterations remain
ITERATIONS = 70
CHECKPOINT_AT = 50

TINY = ["--set", "shapes.points=32", "--set", "shapes.train_per_class=4", "--set", "shapes.test_per_class=2",
        "--distill-backbones", "pointnet_in", "--set", "pointnet_in.width=16"]
METHODS = {
    "dc": ["--set", "dc.real_batch=2", "--set", "dc.warmup_per_class=2", "--set", "dc.outer_loop=1",
           "--set", "dc.inner_loop=0", "--set", "dc.init=noise"],
    "dd3d": ["--set", "dd3d.real_batch=2", "--set", "dd3d.warmup_per_class=2", "--set", "dd3d.train_points=16",
             "--set", "dd3d.eval_points=32", "--set", "dd3d.hidden=16", "--set", "dd3d.outer_loop=1",
             "--set", "dd3d.inner_loop=0"],
    "3ddp": ["--set", "3ddp.real_batch=2", "--set", "3ddp.anchor_points=6", "--set", "3ddp.morphs=2",
             "--set", "3ddp.lr_anchors=10"],
}


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "DDBENCH_CACHE": str(tmp_path / "cache")}


def run_command(method: str, results: Path) -> list[str]:
    return [sys.executable, "-m", "ddbench", "run", "--datasets", "shapes", "--methods", method, "--ppc", "1",
            "--iterations", str(ITERATIONS), "--eval-nets", "1", "--epochs", "1", "--device", "cpu",
            "--results", str(results), *TINY, *METHODS[method]]


def the_artifact(results: Path):
    paths = sorted((results / "artifacts").glob("*.h5"))
    assert len(paths) == 1, paths
    return load_artifact(paths[0])


def checkpoints(results: Path) -> list[Path]:
    """Finished checkpoint files (a checkpoint being written is a hidden ``.NAME.PID.tmp`` file)."""
    return sorted((results / "checkpoints").glob("*.pt")) if (results / "checkpoints").exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_killed_distillation_resumes_to_the_uninterrupted_artifact(method, tmp_path):
    env = subprocess_env(tmp_path)
    reference = tmp_path / "reference"
    done = subprocess.run(run_command(method, reference), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr

    results = tmp_path / "killed"
    proc = subprocess.Popen(run_command(method, results), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not checkpoints(results) and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    assert checkpoints(results), "no checkpoint was written before the kill"
    assert not list(results.glob("artifacts/*.h5")), "the distillation had already finished when it was killed"
    saved = torch.load(checkpoints(results)[0], map_location="cpu", weights_only=True)
    assert saved["iteration"] == CHECKPOINT_AT

    resumed = subprocess.run(run_command(method, results), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    synth, manifest = the_artifact(results)
    ref_synth, ref_manifest = the_artifact(reference)
    assert manifest["info"]["init"]["resumed_from_iteration"] == CHECKPOINT_AT
    assert "resumed_from_iteration" not in ref_manifest["info"]["init"]
    assert torch.equal(synth.points, ref_synth.points), "the resumed clouds differ from the uninterrupted run's"
    assert torch.equal(synth.labels, ref_synth.labels)
    assert sorted(synth.extras) == sorted(ref_synth.extras)
    for key in ref_synth.extras:
        assert torch.equal(synth.extras[key], ref_synth.extras[key]), f"stored {key} differs after the resume"
    assert manifest["info"]["loss_curve"] == ref_manifest["info"]["loss_curve"]
    assert not checkpoints(results)  # the artifact holds the result now


WRITER = """
import sys, time
from ddbench.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "w") as fh:
        fh.write("the new content, half written")
        fh.flush()
        print("writing", flush=True)
        time.sleep(120)
        fh.write(" and the rest")
"""


def test_an_atomic_write_killed_midway_keeps_the_old_file(tmp_path):
    from ddbench.io import remove_stale_tmp_files

    target = tmp_path / "record.json"
    target.write_text("the old content")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], env=subprocess_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "writing", line + proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_text() == "the old content"
    # the dead writer's half-written temporary file is left behind; the clean-up removes it, not the record
    assert remove_stale_tmp_files(tmp_path) >= 1
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == [target.name]
    assert target.read_text() == "the old content"
