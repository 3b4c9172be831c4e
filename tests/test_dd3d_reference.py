"""DD3D v2 follows the authors' released code (github.com/bdy9527/DD3D at a500ab4); each test guards one fix.

Citations are file:line of that revision. Everything runs on tiny built-in ``shapes`` data.
"""

from __future__ import annotations

import math

import pytest
import torch

import ddbench.methods.dd3d as dd3d
from ddbench.backbones.base import BackboneFactory
from ddbench.backbones.pointnet import PointNetIN
from ddbench.data.shapes import Shapes, ShapesConfig
from ddbench.methods.base import DistillContext
from ddbench.methods.dd3d import DD3DMethod, normalise
from ddbench.methods.iterative import IterativeMethod
from ddbench.ops.canonical import CanonicalisedNet, Canonicaliser, pca_canonicalise, sign_fix
from ddbench.references import active_departures
from ddbench.synthetic.generators import ConditionalSiren
from tests.test_matching_methods import check_checkpoint_round_trip

CPU = torch.device("cpu")
TINY = {"iterations": 1, "real_batch": 3, "train_points": 32, "eval_points": 48, "hidden": 32}


def ctx(ppc=1, family="", points=64, **setting) -> DistillContext:
    """Shapes (10 classes, 6 clouds each) in the given setting (rotation / canonical), DD3D's pointnet_in."""
    train = Shapes(ShapesConfig(points=points, train_per_class=6, test_per_class=1, **setting)).load("train")
    return DistillContext(train, ppc, 0, CPU, dataset="shapes", backbone=BackboneFactory.of(PointNetIN, {"width": 64}),
                          dataset_family=family)


def method(**values) -> DD3DMethod:
    return DD3DMethod(DD3DMethod.make_config({**TINY, **values}))


def setup(m: DD3DMethod, c: DistillContext):
    labels = torch.arange(c.num_classes).repeat_interleave(c.ppc)
    return m.setup(c, torch.zeros(len(labels), 8, 3), labels)


def radii(clouds: torch.Tensor) -> torch.Tensor:
    return (clouds - clouds.mean(dim=1, keepdim=True)).norm(dim=-1).amax(dim=1)


def is_normalised(clouds: torch.Tensor) -> bool:
    """Centred on the centroid and farthest point at r / (r + 1e-4), as provider.normalize_data leaves it."""
    centred = clouds.mean(dim=1).abs().max() < 1e-5
    r = clouds.norm(dim=-1).amax(dim=1)
    return bool(centred and ((r > 0.995) & (r <= 1.0)).all())


# -- the generator: hidden w0 = 1 and SIREN's initialisation (CINR.py:55-62, 75, 89, 104) -------------------------


def test_generator_hidden_frequency_is_the_codes_1():
    assert DD3DMethod.Config().w0_hidden == 1.0
    assert ConditionalSiren(4).w0_hidden == 1.0
    state = setup(method(), ctx())
    assert state.generator.w0_hidden == 1.0 and state.generator.config["w0_hidden"] == 1.0


def within_and_filling(t: torch.Tensor, bound: float) -> bool:
    """Every value in [-bound, bound] and the extremes near the bound (a uniform draw of many values)."""
    return bool(t.abs().max() <= bound + 1e-7 and t.abs().max() > 0.95 * bound)


def test_generator_layers_follow_sirens_initialisation_rule():
    hidden = 256
    g = ConditionalSiren(4, hidden=hidden, layers=2, w0=100.0)
    assert within_and_filling(g.first.weight, 1.0) and within_and_filling(g.first.bias, 1.0)  # 1 / fan_in
    bound = math.sqrt(6 / hidden) / 1.0  # sqrt(6 / fan_in) / w0_hidden
    for layer in g.hidden_layers:
        assert within_and_filling(layer.weight, bound) and within_and_filling(layer.bias, bound)
    # the output layer is a SIREN layer too (CINR.py:104), not PyTorch's default (bound 1/sqrt(fan_in) = 0.0625)
    assert within_and_filling(g.out.weight, bound) and g.out.bias is None
    # the bound scales with w0_hidden
    g30 = ConditionalSiren(4, hidden=hidden, w0_hidden=30.0)
    assert within_and_filling(g30.hidden_layers[0].weight, bound / 30) and within_and_filling(g30.out.weight, bound / 30)


# -- the inner network: SGD lr 1e-3, StepLR x0.1 after (outer x inner) // 2 epochs (gm_inr.py:231-234, 298, 325) --


class Spy(DD3DMethod):
    """DD3D recording what its iteration did."""

    def network_optimiser(self, net, state):
        self.opt_net, self.sched_net = super().network_optimiser(net, state)
        self.initial_lr = self.opt_net.param_groups[0]["lr"]
        return self.opt_net, self.sched_net

    def distillation_net(self, c, state):
        self.net = super().distillation_net(c, state)
        return self.net


def run_iteration(m: DD3DMethod, c: DistillContext, seed: int = 0):
    state = setup(m, c)
    torch.manual_seed(seed)
    m.iteration(c, state, torch.Generator().manual_seed(seed), 1)
    return state


def test_inner_network_trains_by_sgd_at_1e3_with_a_step_at_half_of_its_epochs():
    m = Spy(Spy.make_config(TINY))
    state = run_iteration(m, ctx())  # aligned ModelNet table at PPC 1: (10, 1), 9 inner epochs, step after 5
    assert (state.outer, state.inner) == (10, 1)
    opt = m.opt_net
    assert isinstance(opt, torch.optim.SGD) and m.initial_lr == pytest.approx(1e-3)
    assert opt.param_groups[0]["momentum"] == 0 and opt.param_groups[0]["weight_decay"] == 0
    assert isinstance(m.sched_net, torch.optim.lr_scheduler.StepLR) and m.sched_net.step_size == 5
    assert m.sched_net.last_epoch == 9  # stepped once per inner epoch
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    flat = Spy(Spy.make_config({**TINY, "net_schedule": "none"}))
    run_iteration(flat, ctx())
    assert flat.sched_net is None and flat.opt_net.param_groups[0]["lr"] == pytest.approx(1e-3)


# -- real batches: a random subset of points, re-normalised (gm_inr.py:249-252, provider.py:4-20), not FPS --------


def test_real_batches_are_random_point_subsets_renormalised():
    m, c = method(), ctx()
    reals = m.real_batches(c, 3, torch.Generator().manual_seed(5))
    replay = torch.Generator().manual_seed(5)
    full = IterativeMethod.real_batches(m, c, 3, replay)  # the same clouds, at 64 points
    for k, batch in enumerate(full):
        idx = torch.randperm(64, generator=replay)[:32]  # one subset of point indices for the class's batch
        expected = batch[:, idx]
        expected = expected - expected.mean(dim=1, keepdim=True)
        expected = expected / (expected.norm(dim=-1).amax(dim=1)[:, None, None] + 1e-4)
        assert torch.allclose(reals[k], expected, atol=1e-6)
        assert is_normalised(reals[k])
    # not FPS (which always keeps each cloud's first point): another draw picks other points
    again = m.real_batches(c, 3, torch.Generator().manual_seed(6))
    assert not torch.allclose(torch.cat(again), torch.cat(reals))


def test_real_batches_at_full_resolution_are_left_as_they_are():
    m, c = method(train_points=64), ctx()
    reals = m.real_batches(c, 2, torch.Generator().manual_seed(0))
    full = IterativeMethod.real_batches(m, c, 2, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(reals, full))  # gm_inr.py:253-254: no subset, no renormalising


# -- the inner loop: fresh noise, re-normalised (gm_inr.py:288-297) --------------------------------------------------


def test_inner_loop_trains_on_fresh_normalised_generator_samples(monkeypatch):
    matched, inner = [], []
    real_loss, real_train = dd3d.gradient_matching_loss, dd3d.train_inner

    def loss_spy(net, points, labels, reals, classes=None):
        matched.append(points.detach().clone())
        return real_loss(net, points, labels, reals, classes)

    def train_spy(net, points, labels, epochs, batch, opt, gen):
        inner.append((points.detach().clone(), epochs))
        return real_train(net, points, labels, epochs, batch, opt, gen)

    monkeypatch.setattr(dd3d, "gradient_matching_loss", loss_spy)
    monkeypatch.setattr(dd3d, "train_inner", train_spy)
    state = run_iteration(method(outer_loop=3, inner_loop=2), ctx())
    assert len(matched) == 3 and len(inner) == 2 * 2 and all(e == 1 for _, e in inner)  # one call per epoch
    for step in range(2):
        first, second = inner[2 * step][0], inner[2 * step + 1][0]
        assert torch.equal(first, second)  # one sample for the inner epochs of an outer step
        assert is_normalised(first)
        assert first.shape == matched[step].shape
        assert not torch.allclose(first, normalise(matched[step]), atol=1e-3)  # fresh noise, not the matched clouds
    assert not torch.allclose(inner[0][0], inner[2][0], atol=1e-3)
    assert not is_normalised(matched[0])  # the matched clouds are the generator's raw output (gm_inr.py:266)
    assert state.labels.shape == (10,)


# -- the loop table depends on the setting (gm_inr.py:78-129) ---------------------------------------------------------


@pytest.mark.parametrize("setting,family,ppc,table,loops", [
    ({}, "", 1, "aligned_modelnet", (10, 1)),
    ({}, "modelnet40", 10, "aligned_modelnet", (20, 1)),
    ({}, "scanobjectnn", 10, "aligned_scanobjectnn", (20, 10)),
    ({}, "scanobjectnn", 50, "aligned_scanobjectnn", (30, 5)),
    ({}, "modelnet10", 3, "aligned_modelnet", (15, 1)),
    ({"canonical": "pca"}, "", 1, "pca", (5, 5)),
    ({"rotation": "rotated", "canonical": "pca"}, "modelnet40", 10, "pca", (20, 10)),
    ({"rotation": "rotated", "canonical": "pca"}, "scanobjectnn", 3, "pca", (10, 10)),
])
def test_loop_table_follows_the_setting(setting, family, ppc, table, loops):
    m, c = method(), ctx(ppc=ppc, family=family, points=16, **setting)
    state = setup(m, c)
    assert (state.loop_table, (state.outer, state.inner)) == (table, loops)
    info = m.materialise(c, state).info
    assert info["loop_table"] == table and info["loop_table_source"].startswith("auto")
    assert (info["outer_loop"], info["inner_loop"]) == loops


def test_loop_table_can_be_forced():
    state = setup(method(loop_table="pca"), ctx())
    assert (state.loop_table, state.loop_table_source, state.outer, state.inner) == ("pca", "config", 5, 5)


# -- the sign-fixing wrapper of the distillation network (gm_inr.py:226-227, CINR.py:252-253) ------------------------


def test_distillation_net_is_wrapped_in_the_pca_setting_only():
    flip = torch.tensor([-1.0, 1.0, -1.0])
    cloud = torch.randn(2, 32, 3, generator=torch.Generator().manual_seed(0)) + 0.3
    m = Spy(Spy.make_config(TINY))
    run_iteration(m, ctx(canonical="pca", rotation="rotated", points=32))
    wrapped = m.net
    assert isinstance(wrapped, CanonicalisedNet)
    assert (wrapped.canonicaliser.sign, wrapped.canonicaliser.frame, wrapped.canonicaliser.w0) == ("sin", "given", 1.0)
    wrapped.eval()
    with torch.no_grad():  # the axis signs of a cloud no longer matter
        assert torch.allclose(wrapped(cloud).logits, wrapped(cloud * flip).logits, atol=1e-5)
    run_iteration(m, ctx(points=32))
    assert not isinstance(m.net, CanonicalisedNet)  # aligned: the plain network, as the code without --pca
    info = m.materialise(ctx(canonical="pca"), setup(m, ctx(canonical="pca"))).info
    assert (info["sign_fix"], info["w0"], info["w0_hidden"]) == ("sin", 100.0, 1.0)


def test_learned_sign_fix_is_a_switch_with_parameters_trained_with_the_network():
    m = Spy(Spy.make_config({**TINY, "sign_fix": "learned", "outer_loop": 2, "inner_loop": 1}))
    state = run_iteration(m, ctx(points=32))
    assert state.sign_fix == "learned" and state.sign_fix_source == "config"
    learned = m.net.canonicaliser.learned
    assert learned is not None and any(p.grad is not None for p in learned.parameters())
    whats = [d["what"] for d in active_departures(DD3DMethod, m.config)]
    assert "learned sign encoder in the distillation network's wrapper" in whats


def test_released_sign_fix_is_the_sign_of_the_mean_sine_without_a_frame():
    pts = torch.randn(3, 50, 3, generator=torch.Generator().manual_seed(1)) * torch.tensor([1.0, 0.5, 0.2]) + 0.1
    code = pts * torch.sign(torch.sin(1.0 * pts).mean(dim=1, keepdim=True))  # CINR.py:252-253
    assert torch.allclose(sign_fix(pts), code)
    assert torch.allclose(Canonicaliser("sin", frame="given")(pts), code)  # no centring, no projection
    canonical = pca_canonicalise(pts)
    assert torch.allclose(Canonicaliser("sin", frame="given")(canonical), canonical)  # real clouds pass unchanged
    assert torch.allclose(Canonicaliser("sin")(pts), canonical)  # frame pca: as before


# -- the paper's distillation augmentation (Table 7) is a switch, off as in the code (gm_inr.py:256-259, 314) ---------


def test_augmentation_is_the_papers_switch(monkeypatch):
    reals_seen = []
    real_loss = dd3d.gradient_matching_loss

    def loss_spy(net, points, labels, reals, classes=None):
        reals_seen.append(torch.cat(reals))
        return real_loss(net, points, labels, reals, classes)

    monkeypatch.setattr(dd3d, "gradient_matching_loss", loss_spy)
    assert DD3DMethod.Config().augment is False
    run_iteration(method(outer_loop=1, inner_loop=0), ctx())
    run_iteration(method(outer_loop=1, inner_loop=0, augment=True), ctx())
    plain, augmented = reals_seen
    assert is_normalised(plain) and not is_normalised(augmented)
    assert radii(augmented).min() < 0.95 or radii(augmented).max() > 1.05  # scaled per cloud
    whats = [d["what"] for d in active_departures(DD3DMethod, method(augment=True).config)]
    assert "real batches augmented during distillation" in whats


# -- declarations, records, checkpoints ------------------------------------------------------------------------------


def test_reference_and_default_departures():
    assert DD3DMethod.version == "2"
    ref = DD3DMethod.reference
    assert ref.repository == "github.com/bdy9527/DD3D" and ref.revision == "a500ab4bf84dbbb49b73093d5137b7217caca3e5"
    defaults = {d["what"] for d in active_departures(DD3DMethod, DD3DMethod.Config())}
    assert defaults == {"distillation at 256 points", "one more generator update"}
    assert all("@a500ab4" in d.reference for d in DD3DMethod.departures)


def test_pca_setting_checkpoint_round_trip_gives_the_same_state():
    from tests.test_parameterised_methods import LEGACY_LAYOUTS

    m = method(outer_loop=2, inner_loop=1, iterations=4)
    keys = {"generator", "labels", "optimisers", "scheduler"}
    check_checkpoint_round_trip(m, ctx(canonical="pca", points=32), keys, LEGACY_LAYOUTS["dd3d"])
