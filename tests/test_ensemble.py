"""The batched evaluation ensemble gives the results of independently trained nets.

The equivalence tests run in float64. PointNet training on a few clouds is chaotic in float32: the sequential
trainer run with 2 threads instead of 1 (a different summation order, nothing else) ends 0.3-1.6 apart in
weights after 3 epochs (benchmarks/README.md), because a rounding-level change flips which point wins a
max-pool. In float64 rounding stays far below the tolerance, so a gap above 1e-4 means the ensemble does
something different (a wrong dropout mask, data order, BatchNorm statistic or optimiser step), not that it rounds
differently.
"""

from __future__ import annotations

import pytest
import torch

from ddbench.errors import TrainingDivergedError
from ddbench.evaluation.ensemble_trainer import train_and_test_ensemble
from ddbench.evaluation.evaluate import choose_engine, evaluate_synthetic
from ddbench.evaluation.protocols import DD3DProtocol, SADMProtocol
from ddbench.evaluation.trainer import train_and_test
from ddbench.synthetic.artifact import SyntheticSet
from tests.conftest import make_cloudset
from tests.helpers import network_of

CPU = torch.device("cpu")


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _sets(points: int, per_class: int):
    train = make_cloudset(per_class=per_class, points=points, seed=0)
    test = make_cloudset(per_class=4, points=points, seed=1)
    for s in (train, test):
        s.points = s.points.to(torch.get_default_dtype())
    return train, test


def _max_weight_gap(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """Largest absolute gap over parameters, and relative gap over BatchNorm running statistics."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    gaps = [0.0]
    for k in sa:
        x, y = sa[k].double(), sb[k].double()
        gap = (x - y).abs().max()
        if "running" in k:
            gap = gap / max(1.0, float(y.abs().max()))
        gaps.append(float(gap))
    return max(gaps)


@pytest.mark.parametrize(
    "protocol, overrides",
    [
        # sadm: T-Net, BatchNorm running stats, dropout masks, SGD with momentum, optimiser re-created at the step
        (SADMProtocol, {"epochs": 3, "step_epoch": 3, "batch_size": 4}),
        # dd3d: InstanceNorm net, Adam, cosine schedule, per-batch augmentation
        (DD3DProtocol, {"epochs": 4, "batch_size": 4}),
        # pointnet without its T-Net and without dropout
        (SADMProtocol, {"epochs": 2, "step_epoch": None, "batch_size": 4,
                        "backbone_config": {"input_transform": False, "dropout": 0.0}}),
    ],
)
def test_each_member_matches_its_sequentially_trained_net(protocol, overrides, float64):
    train, test = _sets(points=64, per_class=3)
    cfg = protocol.make_config(overrides)
    seeds = [11, 12, 13]
    results, ensemble = train_and_test_ensemble(
        train.points, train.labels, test, cfg, seeds, CPU, 3, return_ensemble=True,
        network=network_of(cfg))
    members = ensemble.export_members()
    for seed, member, res in zip(seeds, members, results):
        ref, net = train_and_test(train.points, train.labels, test, cfg, seed, CPU, 3, return_net=True, network=network_of(cfg))
        assert _max_weight_gap(member, net) < 1e-4
        member.eval(), net.eval()
        with torch.no_grad():
            gap = (member(test.points).logits - net(test.points).logits).abs().max()
            assert gap < 1e-4
            assert torch.equal(member(test.points).logits.argmax(-1), net(test.points).logits.argmax(-1))
        assert res.seed == seed and res.oa == ref.oa and res.macc == ref.macc
        assert res.final_train_loss == pytest.approx(ref.final_train_loss, abs=1e-4)


def test_members_differ_from_each_other():
    train, test = make_cloudset(per_class=3, points=32), make_cloudset(per_class=2, points=32, seed=1)
    cfg = SADMProtocol.make_config({"epochs": 2, "step_epoch": 2, "batch_size": 4})
    _, ensemble = train_and_test_ensemble(train.points, train.labels, test, cfg, [1, 2], CPU, 3, return_ensemble=True, network=network_of(cfg))
    a, b = ensemble.export_members()
    assert _max_weight_gap(a, b) > 1e-3


def test_best_test_selection_tracks_each_member(float64):
    train, test = _sets(points=32, per_class=3)
    cfg = DD3DProtocol.make_config({"epochs": 3, "batch_size": 4, "selection": "best_test"})
    results = train_and_test_ensemble(train.points, train.labels, test, cfg, [5, 6], CPU, 3, network=network_of(cfg))
    for res in results:
        assert len(res.test_curve) == 3 and res.oa == max(res.test_curve)
        ref = train_and_test(train.points, train.labels, test, cfg, res.seed, CPU, 3, network=network_of(cfg))
        assert res.test_curve == ref.test_curve and res.selected_epoch == ref.selected_epoch


def test_divergence_names_the_member():
    train, test = make_cloudset(per_class=3, points=32), make_cloudset(per_class=2, points=32, seed=1)
    cfg = SADMProtocol.make_config({"epochs": 2, "step_epoch": 2, "batch_size": 4, "lr": 1e30, "momentum": 0.0})
    with pytest.raises(TrainingDivergedError, match=r"seed \d+\) got a non-finite loss"):
        train_and_test_ensemble(train.points, train.labels, test, cfg, [1, 2], CPU, 3, network=network_of(cfg))


def test_engine_choice_is_recorded_and_falls_back():
    cfg = SADMProtocol.make_config({})
    assert choose_engine("ensemble", cfg, CPU, network_of(cfg).cls)[0] == "ensemble"
    assert choose_engine("sequential", cfg, CPU, network_of(cfg).cls)[0] == "sequential"
    dgcnn = SADMProtocol.make_config({"backbone": "dgcnn"})
    engine, reason = choose_engine("ensemble", dgcnn, CPU, network_of(dgcnn).cls)
    assert engine == "sequential" and "dgcnn has no ensemble implementation" in reason
    pca = DD3DProtocol.make_config({"canonicalise": "pca"})
    engine, reason = choose_engine("ensemble", pca, CPU, network_of(pca).cls)
    assert engine == "sequential" and "canonicalis" in reason


def test_evaluate_synthetic_with_ensemble_engine_records_it():
    train, test = make_cloudset(per_class=2, points=32), make_cloudset(per_class=3, points=32, seed=1)
    synth = SyntheticSet(train.points, train.labels, train.class_names)
    cfg = SADMProtocol.make_config({"epochs": 2, "step_epoch": 2, "batch_size": 4})
    seq = evaluate_synthetic(synth, test, cfg, [3, 4], CPU, engine="sequential", network=network_of(cfg))
    ens = evaluate_synthetic(synth, test, cfg, [3, 4], CPU, engine="ensemble", network=network_of(cfg))
    assert seq["engine"] == "sequential" and ens["engine"] == "ensemble" and ens["engine_reason"]
    assert [n["seed"] for n in ens["nets"]] == [n["seed"] for n in seq["nets"]] == [3, 4]
    assert ens["num_nets"] == 2 and 0 <= ens["oa_mean"] <= 100
    grouped = evaluate_synthetic(synth, test, cfg, [3, 4, 5], CPU, engine="ensemble", ensemble_size=2, network=network_of(cfg))
    assert [n["seed"] for n in grouped["nets"]] == [3, 4, 5] and grouped["ensemble_size"] == 2


def test_allocator_arrangement_plans_and_switches_off():
    from ddbench.cli.allocator import command_of, reexec_plan

    lib = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
    env = reexec_plan(["-v", "run", "--ppc", "1"], {"PATH": "/bin"}, lib)
    assert env is not None and env["LD_PRELOAD"] == lib and env["DDBENCH_ALLOCATOR_ARRANGED"] == "1"
    assert command_of(["--debug", "eval", "a.h5"]) == "eval"
    assert reexec_plan(["run"], {"DDBENCH_ALLOCATOR": "system"}, lib) is None  # switched off
    assert reexec_plan(["run"], {"DDBENCH_ALLOCATOR_ARRANGED": "1"}, lib) is None  # no loop
    assert reexec_plan(["table"], {}, lib) is None  # light commands stay as they are
    tuned = reexec_plan(["run"], {}, None)  # no tcmalloc: glibc with raised thresholds
    assert tuned["GLIBC_TUNABLES"].startswith("glibc.malloc.mmap_threshold=1073741824") and "LD_PRELOAD" not in tuned
    assert reexec_plan(["run"], {"DDBENCH_ALLOCATOR": "glibc-tuned"}, lib)["GLIBC_TUNABLES"] == tuned["GLIBC_TUNABLES"]
    assert reexec_plan(["run"], {"DDBENCH_ALLOCATOR": "tcmalloc"}, None) is None  # asked for tcmalloc only
    assert reexec_plan(["run"], {"LD_PRELOAD": "/x/libjemalloc.so"}, lib) is None  # user's choice kept
    assert reexec_plan(["run"], {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, lib) is None


def test_cli_records_the_allocator_and_the_engine(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from ddbench.cli.allocator import ARRANGED_FLAG, GLIBC_TUNED, find_tcmalloc
    from ddbench.environment import ALLOCATOR_VARIABLES

    env = {k: v for k, v in os.environ.items() if k not in (*ALLOCATOR_VARIABLES, ARRANGED_FLAG)}
    cmd = [sys.executable, "-m", "ddbench", "run", "--methods", "random", "--datasets", "shapes", "--ppc", "1",
           "--eval-nets", "1", "--epochs", "1", "--results", str(tmp_path), "--set", "shapes.train_per_class=3",
           "--set", "shapes.test_per_class=2", "--set", "shapes.points=64"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)
    cell = json.loads(next((tmp_path / "cells").glob("*.json")).read_text())
    expected = "tcmalloc" if find_tcmalloc() else "glibc-tuned"
    assert cell["environment"]["allocator"] == expected and cell["environment"]["allocator_arranged"]
    settings = cell["environment"]["allocator_settings"]  # exactly what ran
    assert settings == ({"LD_PRELOAD": find_tcmalloc()} if find_tcmalloc() else {"GLIBC_TUNABLES": GLIBC_TUNED})
    assert cell["results"]["engine"] == "sequential"  # auto on CPU
    subprocess.run(cmd + ["--overwrite", "--eval-engine", "ensemble"], env={**env, "DDBENCH_ALLOCATOR": "system"},
                   check=True, capture_output=True, timeout=300)
    cell = json.loads(next((tmp_path / "cells").glob("*.json")).read_text())
    assert cell["environment"]["allocator"] == "system" and not cell["environment"]["allocator_arranged"]
    assert cell["results"]["engine"] == "ensemble" and cell["results"]["ensemble_size"] == 1
