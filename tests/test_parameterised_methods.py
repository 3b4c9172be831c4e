"""DD3D and 3DDP, the rotated setting, the rotator, and storage accounting / equal-storage comparison."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ddbench.backbones.base import BackboneFactory
from ddbench.backbones.pointnet import PointNet
from ddbench.data.shapes import Shapes, ShapesConfig
from ddbench.errors import ConfigError
from ddbench.methods.base import DistillContext
from ddbench.methods.coreset import RandomMethod
from ddbench.methods.dd3d import DD3DMethod
from ddbench.methods.ddp3d import DDP3DMethod, fps_partitions, hungarian_align, uniformity
from ddbench.ops.canonical import Canonicaliser, pca_canonicalise
from ddbench.ops.rotation import apply_rotation, random_rotation_matrices
from ddbench.ops.sampling import farthest_point_sample, gather_points
from ddbench.plugins import get_registries
from ddbench.synthetic.artifact import load_artifact, save_artifact
from ddbench.synthetic.generators import ConditionalSiren, materialise
from tests.conftest import make_cloudset
from tests.test_matching_methods import check_checkpoint_round_trip, detached, initialiser_for

CPU = torch.device("cpu")


def ctx(ppc=1, points=64, per_class=6, family="", seed=0, dataset="shapes"):
    """The built-in shapes (10 classes), PointNet, the random coreset as initialiser; ``family`` as declared by
    the dataset (``dataset`` is its name, for records only)."""
    train = Shapes(ShapesConfig(points=points, train_per_class=per_class)).load("train")
    return DistillContext(train, ppc, seed, CPU, dataset=dataset, backbone=BackboneFactory.of(PointNet),
                          dataset_family=family, initialiser=RandomMethod())


TINY_DD3D = {"iterations": 2, "real_batch": 3, "warmup_per_class": 2, "train_points": 32, "eval_points": 64,
             "hidden": 32}
TINY_3DDP = {"iterations": 2, "real_batch": 2, "anchor_points": 12, "morphs": 3}

# -- DD3D's generator ---------------------------------------------------------------------------------------------


def test_generator_produces_clouds_of_any_size():
    g = ConditionalSiren(num_clouds=4, hidden=32)
    for n in (1, 64, 1024, 2048):
        clouds = g.sample(n, torch.Generator().manual_seed(0))
        assert clouds.shape == (4, n, 3) and clouds.abs().max() <= 1.0
    a = g.sample(100, torch.Generator().manual_seed(3))
    assert torch.equal(a, g.sample(100, torch.Generator().manual_seed(3)))


def test_dd3d_artifact_is_a_generator_that_materialises_at_any_resolution(tmp_path):
    synth = DD3DMethod(DD3DMethod.make_config(TINY_DD3D)).distill(ctx(family="modelnet10"))
    assert synth.points.shape == (10, 64, 3) and synth.info["generator"]["type"] == "conditional_siren"
    manifest = save_artifact(tmp_path / "g.h5", synth, {"method": "dd3d"})
    assert manifest["kind"] == "generator"
    loaded, _ = load_artifact(tmp_path / "g.h5")
    big = materialise(loaded, 2048)
    assert big.points.shape == (10, 2048, 3)
    again = materialise(loaded, 64)
    assert torch.allclose(again.points, synth.points, atol=1e-6)  # the stored clouds are the generator's
    assert synth.info["generator"]["config"]["w0"] == 100.0  # ModelNet's first-layer frequency
    assert synth.info["w0"] == 100.0 and synth.info["w0_source"] == "family modelnet10"


@pytest.mark.parametrize("dataset,family,config,w0,source", [
    ("my_scans", "scanobjectnn", {}, 50.0, "family scanobjectnn"),  # any name: the family decides
    ("scanobjectnn", "", {}, 100.0, "default (family '' has no reference value)"),  # the name alone does not
    ("parts_v2", "shapenetpart", {}, 400.0, "family shapenetpart"),
    ("my_scans", "scanobjectnn", {"w0": 7.0}, 7.0, "config"),
])
def test_dd3d_w0_follows_the_dataset_family_not_its_name(dataset, family, config, w0, source):
    method = DD3DMethod(DD3DMethod.make_config({**TINY_DD3D, **config}))
    c = ctx(family=family, dataset=dataset)
    state = method.setup(c, torch.zeros(10, 64, 3), torch.arange(10))
    assert state.generator.config["w0"] == w0 and (state.w0, state.w0_source) == (w0, source)
    info = method.materialise(c, state).info
    assert (info["w0"], info["w0_source"], info["generator"]["config"]["w0"]) == (w0, source, w0)


def test_dd3d_storage_is_the_generator_and_its_codes():
    cfg = DD3DMethod.make_config(TINY_DD3D)
    synth = DD3DMethod(cfg).distill(ctx())
    h = 32
    expected = 10 * h + (1 * h + h) + (h * h + h) + (h * h + h) + h * 3  # codes, first, hidden, modulation, out
    assert synth.storage()["floats"] == expected
    assert DD3DMethod.storage_floats(cfg, 1, 10, 64) == expected


def test_dd3d_gradients_reach_the_generator():
    method = DD3DMethod(DD3DMethod.make_config(TINY_DD3D))
    c = ctx()
    state = method.setup(c, torch.zeros(10, 64, 3), torch.arange(10))
    gen = torch.Generator().manual_seed(0)
    reals = method.real_batches(c, 3, gen)
    assert reals[0].shape == (3, 32, 3)  # real clouds reduced to the training resolution
    net = method.warmed_net(c, torch.cat(reals), frozen=False)
    method.matching_loss(c, state, net, reals).backward()
    grads = [p.grad for p in state.generator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_dd3d_needs_loops_for_an_untabulated_ppc():
    with pytest.raises(ConfigError, match="outer_loop and inner_loop"):
        DD3DMethod(DD3DMethod.make_config(TINY_DD3D)).distill(ctx(ppc=2))


# -- 3DDP ---------------------------------------------------------------------------------------------------------


def test_hungarian_alignment_is_a_permutation_of_the_source_points():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(30, 3))
    cloud = ref[rng.permutation(30)] + rng.normal(scale=0.01, size=(30, 3))
    perm = hungarian_align(ref, cloud)
    assert sorted(perm.tolist()) == list(range(30))
    assert np.abs(cloud[perm] - ref).max() < 0.05  # undoes the shuffle


def test_3ddp_anchors_are_aligned_permutations_of_fps_reduced_real_clouds():
    c = ctx(points=64, per_class=8)
    method = DDP3DMethod(DDP3DMethod.make_config(TINY_3DDP))
    points, labels, record = method.initialise(c)
    assert len(points) == 10 * 4 and record["init"] == "random"  # M = 4 clouds per slot
    state = method.setup(c, points, labels)
    anchors = state.anchors.detach()
    reduced = gather_points(points, farthest_point_sample(points, 12)).reshape(10, 4, 12, 3)
    for s in range(10):
        for m in range(4):
            a = anchors[s, m].numpy()
            src = reduced[s, m].numpy()
            # same set of points, possibly re-ordered
            assert np.allclose(np.sort(a.view([("", a.dtype)] * 3), axis=0).view(a.dtype),
                               np.sort(src.view([("", src.dtype)] * 3), axis=0).view(src.dtype))
        assert torch.allclose(anchors[s, 0], reduced[s, 0])  # anchor 0 keeps its order


def test_3ddp_morphs_are_convex_combinations_of_the_anchors():
    c = ctx(points=64, per_class=8)
    method = DDP3DMethod(DDP3DMethod.make_config(TINY_3DDP))
    state = method.setup(c, *method.initialise(c)[:2])
    w = method.weights(state)
    assert torch.all(w >= 0) and torch.allclose(w.sum(-1), torch.ones(w.shape[:2]))
    clouds, labels = method.clouds(state)
    per_slot = clouds.reshape(10, 4 + 3, 12, 3).detach()
    anchors = state.anchors.detach()
    for s in range(10):
        for l_ in range(3):
            morph = per_slot[s, 4 + l_]
            assert torch.allclose(morph, torch.einsum("m,mnc->nc", w[s, l_].detach(), anchors[s]), atol=1e-6)
            lo, hi = anchors[s].amin(0), anchors[s].amax(0)
            assert torch.all(morph >= lo - 1e-6) and torch.all(morph <= hi + 1e-6)
    assert labels.tolist() == [k for k in range(10) for _ in range(7)]
    static = DDP3DMethod(DDP3DMethod.make_config({**TINY_3DDP, "morphing": "static"}))
    st = static.setup(c, *static.initialise(c)[:2])
    assert torch.allclose(static.weights(st), torch.full((10, 3, 4), 0.25))
    assert not st.logits.requires_grad


def test_uniformity_is_lower_for_an_even_subset_than_a_clustered_one():
    pts = torch.rand(1, 2000, 3, generator=torch.Generator().manual_seed(0))
    even = gather_points(pts, farthest_point_sample(pts, 128))
    centre = pts[0, 0]
    clustered = pts[:, (pts[0] - centre).norm(dim=-1).argsort()[:128]]
    clustered = torch.cat([clustered[:, :64], pts[:, -64:]], dim=1)  # a dense clump plus scattered points
    assert float(uniformity(even)) < float(uniformity(clustered))


def test_fps_partitions_are_disjoint_subsets():
    pts = torch.rand(2, 100, 3, generator=torch.Generator().manual_seed(1))
    parts = fps_partitions(pts, 4, 24)
    assert parts.shape == (2, 4, 24, 3)
    for b in range(2):
        flat = parts[b].reshape(-1, 3)
        assert len({tuple(p.tolist()) for p in flat}) == 96  # no point twice
        assert all(any(torch.equal(p, q) for q in pts[b]) for p in flat[:10])


def test_3ddp_learns_and_its_gradients_reach_anchors_and_morphs():
    c = ctx(points=64, per_class=8)
    method = DDP3DMethod(DDP3DMethod.make_config({**TINY_3DDP, "lr_anchors": 10.0}))
    state = method.setup(c, *method.initialise(c)[:2])

    def heldout():
        total = 0.0
        for s in (101, 102, 103):
            torch.manual_seed(s)
            reals = method.real_batches(c, 2, torch.Generator().manual_seed(s))
            total += float(method.matching_loss(c, state, method.warmed_net(c, torch.cat(reals)), reals).detach())
        return total

    torch.manual_seed(0)
    reals = method.real_batches(c, 2, torch.Generator().manual_seed(0))
    method.matching_loss(c, state, method.warmed_net(c, torch.cat(reals)), reals).backward()
    for t in (state.anchors, state.logits):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    before = heldout()
    gen = torch.Generator().manual_seed(0)
    for it in range(1, 16):
        torch.manual_seed(it)
        method.iteration(c, state, gen, it)
    assert heldout() < before


def test_3ddp_presets():
    assert DDP3DMethod().sizes("modelnet10") == (4, 252, 16)
    assert DDP3DMethod().sizes("modelnet40") == (4, 255, 4)
    assert DDP3DMethod(DDP3DMethod.make_config({"preset": "modelnet10"})).sizes("") == (4, 252, 16)
    with pytest.raises(ConfigError, match="M x N2"):
        DDP3DMethod(DDP3DMethod.make_config({"anchor_points": 100})).distill(ctx(points=64))


@pytest.mark.parametrize("dataset,family,preset,morphs,source", [
    ("my_modelnet10_copy", "modelnet10", "modelnet10", 16, "family modelnet10"),  # any name: the family decides
    ("modelnet10", "scanobjectnn", "default", 4, "default (family 'scanobjectnn' is not modelnet10)"),
    ("modelnet10", "", "default", 4, "default (family '' is not modelnet10)"),
])
def test_3ddp_auto_preset_follows_the_dataset_family_not_its_name(dataset, family, preset, morphs, source):
    config = DDP3DMethod.make_config({**TINY_3DDP, "morphs": None, "iterations": 1})
    synth = DDP3DMethod(config).distill(ctx(points=64, per_class=8, family=family, dataset=dataset))
    assert (synth.info["preset"], synth.info["preset_source"], synth.info["morphs_per_slot"]) == (preset, source, morphs)
    assert synth.storage()["floats"] == DDP3DMethod.storage_floats(config, 1, 10, 64, family=family)
    assert synth.storage()["effective_clouds_per_class"] == 4 + morphs


def test_datasets_declare_their_family():
    from ddbench.data.modelnet import ModelNet10, ModelNet40
    from ddbench.data.scanobjectnn import ScanObjectNN
    from ddbench.data.shapenet import ShapeNetPart

    assert (ModelNet10.family, ModelNet40.family, ScanObjectNN.family, ShapeNetPart.family) == (
        "modelnet10", "modelnet40", "scanobjectnn", "shapenetpart")
    assert Shapes.family == ""


#: the checkpoint layout of the string-keyed state dicts (what the old ``_state_payload`` wrote)
LEGACY_LAYOUTS = {
    "dd3d": lambda s: {"generator": s.generator.state_dict(), "labels": detached(s.labels),
                       "opt": s.optimisers[0].state_dict(), "sched": s.scheduler.state_dict()},
    "3ddp": lambda s: {"anchors": detached(s.anchors), "logits": detached(s.logits),
                       "opts": [o.state_dict() for o in s.optimisers], "slot_labels": detached(s.slot_labels)},
}


def test_dd3d_checkpoint_round_trip_gives_the_same_state():
    method = DD3DMethod(DD3DMethod.make_config({**TINY_DD3D, "outer_loop": 2, "inner_loop": 1, "iterations": 4}))
    keys = {"generator", "labels", "optimisers", "scheduler"}
    check_checkpoint_round_trip(method, ctx(family="modelnet10"), keys, LEGACY_LAYOUTS["dd3d"])


def test_3ddp_checkpoint_round_trip_gives_the_same_state():
    method = DDP3DMethod(DDP3DMethod.make_config(TINY_3DDP))
    keys = {"anchors", "logits", "optimisers", "slot_labels"}
    check_checkpoint_round_trip(method, ctx(points=64, per_class=8), keys, LEGACY_LAYOUTS["3ddp"])


# -- storage accounting ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,config,expected", [
    ("random", {}, 10 * 2 * 64 * 3),
    ("herding", {"embedding": "random"}, 10 * 2 * 64 * 3),
    ("kcenter", {"embedding": "random"}, 10 * 2 * 64 * 3),
    ("dm", {"iterations": 1, "real_batch": 2, "warmup_per_class": 2}, 10 * 2 * 64 * 3),
    ("dc", {"iterations": 1, "real_batch": 2, "warmup_per_class": 2, "outer_loop": 1, "inner_loop": 0},
     10 * 2 * 64 * 3),
    ("pcc", {"iterations": 1, "real_batch": 2, "warmup_per_class": 2, "outer_loop": 1, "inner_loop": 0,
             "init_config": {"embedding": "random"}}, 10 * 2 * 64 * 3),
    ("sadm", {"iterations": 1, "real_batch": 2}, 10 * 2 * (64 * 3 + 3)),
    ("3ddp", TINY_3DDP, 10 * 2 * (3 * 4 * 12 + 3 * 4)),
])
def test_storage_counts_equal_hand_computed_values(name, config, expected, tmp_path):
    info = get_registries().method.get(name)
    cfg = info.make_config(config)
    c = ctx(ppc=2, points=64, per_class=8)
    c.cache_dir = tmp_path
    method = info.cls(cfg)
    c.initialiser = initialiser_for(method) if hasattr(method.config, "init") else None
    synth = method.distill(c)
    assert synth.storage()["floats"] == expected
    assert synth.storage()["bytes"] == 4 * expected
    assert info.cls.storage_floats(cfg, 2, 10, 64, Shapes.family) == expected


def test_effective_clouds_per_class():
    c = ctx(points=64, per_class=8)
    synth = DDP3DMethod(DDP3DMethod.make_config(TINY_3DDP)).distill(c)
    assert synth.storage()["effective_clouds_per_class"] == 7.0  # 4 anchors + 3 morphs per slot


# -- the rotated setting and the rotator ----------------------------------------------------------------------------


def asymmetric_cloud(seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(1, 300, 3, generator=g) * torch.tensor([1.0, 0.5, 0.2])
    return pts + 0.3 * pts**2  # skewed, so every axis has a defined sign


def test_rotator_makes_the_canonical_form_rotation_invariant():
    cloud = asymmetric_cloud()
    reference = pca_canonicalise(cloud)
    rotations = random_rotation_matrices(8, torch.Generator().manual_seed(1))
    rotated = apply_rotation(cloud.expand(8, -1, -1), rotations)
    canonical = pca_canonicalise(rotated)
    assert torch.allclose(canonical, reference.expand(8, -1, -1), atol=1e-4)
    learned = Canonicaliser("learned")
    with torch.no_grad():
        out = learned(rotated)
        assert torch.allclose(out, learned(cloud).expand(8, -1, -1), atol=1e-4)
    assert not torch.allclose(rotated[0], rotated[1])


def test_rotated_setting_is_seeded_and_canonicalisation_undoes_it():
    base = {"points": 128, "train_per_class": 2, "test_per_class": 1}
    aligned = Shapes(ShapesConfig(**base)).load("train")
    rotated = Shapes(ShapesConfig(**base, rotation="rotated")).load("train")
    again = Shapes(ShapesConfig(**base, rotation="rotated")).load("train")
    assert torch.equal(rotated.points, again.points)
    assert torch.allclose(rotated.points.norm(dim=-1), aligned.points.norm(dim=-1), atol=1e-5)
    assert not torch.allclose(rotated.points, aligned.points, atol=1e-3)
    other = Shapes(ShapesConfig(**base, rotation="rotated", rotation_seed=1)).load("train")
    assert not torch.allclose(rotated.points, other.points)
    canon_rot = Shapes(ShapesConfig(**base, rotation="rotated", canonical="pca")).load("train")
    canon_al = Shapes(ShapesConfig(**base, canonical="pca")).load("train")
    # every instance whose PCA frame is well defined comes out the same
    close = [(a - b).abs().max() < 1e-3 for a, b in zip(canon_rot.points, canon_al.points)]
    assert sum(close) >= 0.8 * len(close)


def test_dd3d_protocol_trains_behind_the_sign_fixing_wrapper():
    from ddbench.evaluation.protocols import DD3DProtocol
    from ddbench.evaluation.trainer import train_and_test

    train, test = make_cloudset(per_class=3), make_cloudset(per_class=2, seed=2)
    for sign in ("pca", "learned"):
        cfg = DD3DProtocol.make_config({"epochs": 2, "batch_size": 4, "canonicalise": sign})
        network = BackboneFactory.of(get_registries().backbone.get(cfg.backbone).cls)
        r = train_and_test(train.points, train.labels, test, cfg, 0, CPU, 3, network=network)
        assert 0 <= r.oa <= 100


# -- equal-storage comparison -----------------------------------------------------------------------------------------


def test_ppc_for_budget_picks_the_largest_ppc_that_fits():
    from ddbench.pipeline.resolve import ppc_for_budget

    reg = get_registries().method
    one_cloud = 1024 * 3 * 4
    assert ppc_for_budget(reg.get("random").cls, reg.get("random").cls.Config(), 3 * one_cloud, 10, 1024, "x") == 3
    sadm = reg.get("sadm").cls
    assert ppc_for_budget(sadm, sadm.Config(), 3 * one_cloud, 10, 1024, "x") == 2  # the angles tip it over
    ddp = reg.get("3ddp").cls
    assert ppc_for_budget(ddp, ddp.Config(), one_cloud, 10, 1024, "modelnet10") is None  # 3088 floats > 3072
    dd3d = reg.get("dd3d").cls
    ppc = ppc_for_budget(dd3d, dd3d.Config(), 10 * one_cloud, 10, 1024, "modelnet10")
    floats = dd3d.storage_floats(dd3d.Config(), ppc, 10, 1024)
    assert floats * 4 / 10 <= 10 * one_cloud < dd3d.storage_floats(dd3d.Config(), ppc + 1, 10, 1024) * 4 / 10


def test_grid_at_equal_storage_and_its_table(tmp_path):
    from ddbench.pipeline import build_experiment, make_tables, run_grid

    one = 64 * 3 * 4
    exp = build_experiment(None, {
        "datasets": ["shapes"], "dataset_config": {"shapes": {"points": 64, "train_per_class": 4, "test_per_class": 2}},
        "methods": ["random", "sadm"], "budget_bytes": [one, 3 * one], "eval_nets": 1, "epochs": 2, "iterations": 1,
        "device": "cpu", "results": str(tmp_path / "runs"), "method_config": {"sadm": {"real_batch": 2}},
    })
    summary = run_grid(exp)
    assert summary.ok == 3  # sadm does not fit one cloud's bytes (its angles): skipped with a warning
    recs = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "cells").glob("*.json")]
    chosen = sorted((r["method"], r["spec"]["budget_bytes"], r["ppc"]) for r in recs)
    assert chosen == [("random", one, 1), ("random", 3 * one, 3), ("sadm", 3 * one, 2)]
    md = make_tables(tmp_path / "runs", "markdown", by="budget")
    assert "Shapes 2.2 KB" in md and "(PPC 2)" in md and "equal storage" in md
    storage = make_tables(tmp_path / "runs", "markdown", storage=True)
    assert "KB, 1 cl)" in storage


def test_eval_at_another_resolution(tmp_path):
    from ddbench.synthetic.artifact import SyntheticSet
    from ddbench.synthetic.resolution import at_resolution

    synth = DD3DMethod(DD3DMethod.make_config(TINY_DD3D)).distill(ctx())
    assert at_resolution(synth, 300).points.shape[1] == 300
    stored = SyntheticSet(torch.randn(2, 50, 3), torch.tensor([0, 1]), ["a", "b"])
    assert at_resolution(stored, 20).points.shape[1] == 20
    with pytest.raises(ConfigError, match="stores clouds of 50 points and no generator"):
        at_resolution(stored, 100)


def tiny_3ddp():
    c = ctx(points=64, per_class=8)
    method = DDP3DMethod(DDP3DMethod.make_config(TINY_3DDP))
    return c, method, method.setup(c, *method.initialise(c)[:2])


def test_3ddp_class_chunks_give_the_same_loss_and_gradients_as_one_pass():
    from ddbench.methods.iterative import class_chunks

    c, method, state = tiny_3ddp()
    torch.manual_seed(0)
    reals = method.real_batches(c, 2, torch.Generator().manual_seed(0))
    net = method.warmed_net(c, torch.cat(reals))
    whole = method.matching_loss(c, state, net, reals)
    whole.backward()
    expected = [getattr(state, k).grad.clone() for k in ("anchors", "logits")]
    for k in ("anchors", "logits"):
        getattr(state, k).grad = None
    chunks = class_chunks(c.num_classes, 1 * (4 + 3), 12, budget=3 * 7 * 12)
    assert len(chunks) == 4  # 10 classes, 3 per chunk
    total = 0.0
    for classes in chunks:
        loss = method.matching_loss(c, state, net, reals, classes)
        loss.backward()
        total += float(loss.detach())
    assert total == pytest.approx(float(whole.detach()), rel=1e-5)
    for k, g in zip(("anchors", "logits"), expected):
        assert torch.allclose(getattr(state, k).grad, g, rtol=1e-4, atol=1e-7)


def test_3ddp_partition_cache_gives_the_partitions_and_weights_computed_from_the_points(monkeypatch):
    """The per-cloud cache (FPS partitions and uniformity, computed once per training cloud) serves exactly what
    the direct computation gives, for the same draw, and does not recompute a cloud it has seen."""
    from ddbench.methods import ddp3d

    c = ctx(points=64, per_class=8)
    method = DDP3DMethod(DDP3DMethod.make_config(TINY_3DDP))
    m, n2, _ = method.sizes(c.dataset_family)
    reals = method.real_batches(c, 3, torch.Generator().manual_seed(5))
    indices = method.real_batch_indices(c, 3, torch.Generator().manual_seed(5))
    for real, idx in zip(reals, indices):
        assert torch.equal(real, c.train.points[idx])
    cached = method.cached_real_sides(c, indices, reals)
    for real, side in zip(reals, cached):
        direct = method.real_side(real, m, n2)
        assert torch.equal(side.parts, direct.parts)
        assert torch.allclose(side.weights, direct.weights, rtol=1e-5, atol=1e-7)
        assert side.weights.sum() == pytest.approx(0.8)
    calls = []
    real_fps = ddp3d.fps_partition_indices
    monkeypatch.setattr(ddp3d, "fps_partition_indices", lambda *a: calls.append(a[0].shape[0]) or real_fps(*a))
    method.cached_real_sides(c, indices, reals)
    assert calls == []  # every cloud was already in the cache
    method.cached_real_sides(c, [torch.arange(len(c.train))], [c.train.points])
    assert calls == [len(c.train) - len(torch.cat(indices).unique())]  # only the unseen clouds, in one batch


def test_3ddp_iteration_matches_the_uncached_loss():
    c, method, state = tiny_3ddp()
    torch.manual_seed(3)
    gen = torch.Generator().manual_seed(9)
    warmup = method.real_batches(c, method.config.warmup_per_class, gen)  # v2: its own draw, first
    reals = method.real_batches(c, method.config.real_batch, gen)
    with torch.no_grad():
        expected = float(method.matching_loss(c, state, method.warmed_net(c, torch.cat(warmup)), reals))
    torch.manual_seed(3)
    got = method.iteration(c, state, torch.Generator().manual_seed(9), 1)  # same draw, same net, cached sides
    assert got == pytest.approx(expected, rel=1e-5)
