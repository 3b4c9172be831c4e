"""Tests that fail when the science is wrong (docs/specification.md).

- Every matching loss against an independent computation of its formula: plain loops over classes, points
  (ranks), partitions and layers, in float64, written from docs/specification.md without calling the function
  under test; values and gradients (``torch.autograd.grad`` on both).
- Class correspondence: each learned method moves class k's synthetic clouds toward class k's real clouds and
  not another's, judged by a classifier trained on the real clouds, against a control distillation whose labels
  are shifted by one class.
- Learning through the runner's code path: the context built by ``ddbench.runner.cell.distill_context`` from a
  cell of ``ddbench.pipeline.plan_grid``, the method built from the cell, ``distill`` (DD3D through its
  ``iteration``, on ``pointnet_in``): the matching loss on held-out real clouds and unseen networks goes down.
- Protocols: the frozen-BN warm-up, ``final`` selection tests once after training, the optimiser is re-created at
  the lr step, the epochs and lr schedule, renormalisation of the synthetic clouds.

Nothing here asserts a value the code sets by construction; every expected value is computed here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import pytest
import torch
import torch.nn.functional as F

from ddbench.backbones.base import FEATURES, BackboneFactory, reading
from ddbench.backbones.pointnet import PointNet, PointNetIN, PointNetINConfig
from ddbench.data.cloudset import PointCloudSet
from ddbench.data.shapes import Shapes, ShapesConfig
from ddbench.data.transforms import normalize_unit_sphere
from ddbench.methods.base import DistillContext
from ddbench.methods.dc import DCMethod
from ddbench.methods.dd3d import DD3DMethod
from ddbench.methods.ddp3d import DDP3DMethod, fps_partition_indices, partition_weights, uniformity
from ddbench.methods.dm import DMMethod, dm_class_loss
from ddbench.methods.gradient_matching import GradientMatchingMethod
from ddbench.methods.losses import gradient_distance, multi_bandwidth_mmd
from ddbench.methods.sadm import SADMMethod, sadm_class_loss
from tests.conftest import make_cloudset
from tests.test_matching_methods import tiny_ctx

CPU = torch.device("cpu")

# the reference values of docs/specification.md, written out here rather than read from the code
MMD_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
SADM_LAMBDA1, SADM_LAMBDA2 = 0.2, 0.001
#: DC's reference code adds 1e-6 to the product of the row norms (docs/methods.md#dc); the only value not in the
#: specification's formula, kept so that rows with tiny gradients compare the same way
DC_EPS = 1e-6
UNIFORMITY_NEIGHBOURS = 16


@pytest.fixture
def float64():
    """Everything built in the test (networks, angles, logits) in float64."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def assert_close(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-7, what: str = "") -> None:
    """|got - expected| <= rtol * max|expected| (+ a tiny floor), elementwise."""
    got, expected = (torch.as_tensor(v, dtype=torch.float64).detach() for v in (got, expected))
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    err = float((got - expected).abs().max()) if expected.numel() else 0.0
    assert err <= rtol * scale + 1e-12, f"{what}: max error {err:.3g} against scale {scale:.3g}"


def assert_same_value_and_gradients(loss, reference, wrt: Sequence[torch.Tensor], rtol=1e-7, grad_rtol=1e-6):
    assert_close(loss, reference, rtol, "value")
    got = torch.autograd.grad(loss, wrt, retain_graph=True, allow_unused=True)
    want = torch.autograd.grad(reference, wrt, retain_graph=True, allow_unused=True)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        g = torch.zeros_like(wrt[i]) if g is None else g
        w = torch.zeros_like(wrt[i]) if w is None else w
        assert torch.isfinite(w).all(), f"the reference gradient w.r.t. input {i} is not finite"
        assert float(w.abs().max()) > 0, f"the reference gradient w.r.t. input {i} is zero: nothing is checked"
        assert_close(g, w, grad_rtol, f"gradient w.r.t. input {i}")


# -- independent computations of the formulas (loops, float64, nothing from the code under test) ----------------


def ref_sorted_channels(f: torch.Tensor) -> torch.Tensor:
    """(C, N) -> every channel (row) sorted over the points, descending, by Python's sort of the values."""
    rows = []
    for c in range(f.shape[0]):
        order = sorted(range(f.shape[1]), key=lambda n, c=c: -f[c, n].item())
        rows.append(f[c, order])
    return torch.stack(rows)


def ref_sorted_channels_fast(f: torch.Tensor) -> torch.Tensor:
    """The same for 1024 channels: one argsort per cloud (torch, not the code's numpy path)."""
    return torch.gather(f, 1, torch.argsort(f, dim=1, descending=True))


def ref_max_over_points(f: torch.Tensor) -> torch.Tensor:
    """(C, N) -> (C,) max over the points, one point at a time."""
    out = f[:, 0]
    for n in range(1, f.shape[1]):
        out = torch.maximum(out, f[:, n])
    return out


def ref_mmd(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
    """docs/specification.md#multi-bandwidth-mmd with loops over the pairs of samples (1-D tensors)."""
    z = [v.reshape(-1) for v in list(xs) + list(ys)]
    m, n = len(z), len(xs)
    d = [[((z[i] - z[j]) ** 2).sum() for j in range(m)] for i in range(m)]
    h = sum(d[i][j].item() for i in range(m) for j in range(m) if i != j) / (m * (m - 1))  # a constant
    k = [[sum(torch.exp(-d[i][j] / (h * s)) for s in MMD_SCALES) for j in range(m)] for i in range(m)]

    def mean(rows, cols):
        return sum(k[i][j] for i in rows for j in cols) / (len(rows) * len(cols))

    x, y = range(n), range(n, m)
    return mean(x, x) - 2 * mean(x, y) + mean(y, y)


def ref_sadm_class_loss(real: torch.Tensor, syn: torch.Tensor, ppc: int, sort: bool = True,
                        kernel: str = "linear", fast_sort: bool = False) -> torch.Tensor:
    """(lambda1 L_alpha + lambda2 L_beta) x PPC for point-wise features real (B, C, N) and syn (P, C, N)."""
    sorter = ref_sorted_channels_fast if fast_sort else ref_sorted_channels
    r = [sorter(real[b]) if sort else real[b] for b in range(len(real))]
    s = [sorter(syn[p]) if sort else syn[p] for p in range(len(syn))]
    if kernel == "linear":
        n_ranks = real.shape[2]
        l_alpha = 0.0
        for rank in range(n_ranks):
            mean_real = sum(x[:, rank] for x in r) / len(r)
            mean_syn = sum(x[:, rank] for x in s) / len(s)
            l_alpha = l_alpha + ((mean_real - mean_syn) ** 2).sum()  # summed over channels
        l_alpha = l_alpha / n_ranks  # averaged over rank positions
    else:
        l_alpha = ref_mmd(r, s)
    l_beta = ref_mmd([ref_max_over_points(real[b]) for b in range(len(real))],
                     [ref_max_over_points(syn[p]) for p in range(len(syn))])
    return (SADM_LAMBDA1 * l_alpha + SADM_LAMBDA2 * l_beta) * ppc


def ref_layerwise_distance(real: Sequence[torch.Tensor], syn: Sequence[torch.Tensor]) -> torch.Tensor:
    """DC's distance: per tensor, rows = output channels, sum over rows of 1 - cos; 1-D tensors count 0."""
    total = 0.0
    for gr, gs in zip(real, syn, strict=True):
        if gr.dim() == 1:
            continue
        for row in range(gr.shape[0]):
            a, b = gr[row].reshape(-1), gs[row].reshape(-1)
            total = total + 1 - (a * b).sum() / (a.norm() * b.norm() + DC_EPS)
    return total


def ref_layerwise_distance_by_layer(real: Sequence[torch.Tensor], syn: Sequence[torch.Tensor]) -> torch.Tensor:
    """The same distance with the rows of each tensor taken together (a loop over layers): a network has
    thousands of rows, and slicing them one by one makes the double backward slow."""
    total = 0.0
    for gr, gs in zip(real, syn, strict=True):
        if gr.dim() == 1:
            continue
        a, b = gr.reshape(gr.shape[0], -1), gs.reshape(gs.shape[0], -1)
        dots, norms = (a * b).sum(1), a.norm(dim=1) * b.norm(dim=1)
        total = total + (1 - dots / (norms + DC_EPS)).sum()
    return total


def ref_cross_entropy(logits: torch.Tensor, label: int) -> torch.Tensor:
    return -sum(logits[i].log_softmax(-1)[label] for i in range(len(logits))) / len(logits)


def ref_gradient_matching(net, syn: torch.Tensor, ppc: int, reals: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over classes of the layer-wise distance between the parameter gradients of the cross-entropy on class
    k's real batch (detached) and on class k's synthetic clouds (rows k*PPC..(k+1)*PPC, class-major)."""
    params = [p for p in net.parameters() if p.requires_grad]
    total = 0.0
    for k, real in enumerate(reals):
        g_real = [g.detach() for g in torch.autograd.grad(ref_cross_entropy(net(real).logits, k), params)]
        own = syn[k * ppc : (k + 1) * ppc]
        g_syn = torch.autograd.grad(ref_cross_entropy(net(own).logits, k), params, create_graph=True)
        total = total + ref_layerwise_distance_by_layer(g_real, g_syn)
    return total


def ref_rotation(tx: torch.Tensor, ty: torch.Tensor, tz: torch.Tensor) -> torch.Tensor:
    """Rx(tx) Ry(ty) Rz(tz), multiplied out with loops."""
    c, s = torch.cos, torch.sin
    one, zero = torch.ones_like(tx), torch.zeros_like(tx)
    rx = [[one, zero, zero], [zero, c(tx), -s(tx)], [zero, s(tx), c(tx)]]
    ry = [[c(ty), zero, s(ty)], [zero, one, zero], [-s(ty), zero, c(ty)]]
    rz = [[c(tz), -s(tz), zero], [s(tz), c(tz), zero], [zero, zero, one]]

    def matmul(a, b):
        return [[sum(a[i][m] * b[m][j] for m in range(3)) for j in range(3)] for i in range(3)]

    r = matmul(matmul(rx, ry), rz)
    return torch.stack([torch.stack(row) for row in r])


def ref_fps(cloud: torch.Tensor, n: int, start: int = 0) -> list[int]:
    """Farthest point sampling from point ``start``: repeatedly the point farthest from the chosen ones."""
    chosen = [start]
    nearest = ((cloud - cloud[start]) ** 2).sum(-1)
    while len(chosen) < n:
        i = int(nearest.argmax())
        chosen.append(i)
        nearest = torch.minimum(nearest, ((cloud - cloud[i]) ** 2).sum(-1))
    return chosen


def ref_partitions(cloud: torch.Tensor, parts: int, size: int) -> list[list[int]]:
    """FPS the cloud from its first point, the first ``size`` points are partition 1; FPS the remaining points,
    starting from the point the previous FPS would have picked next (3DDP's released code, scripts/train.py:219-235;
    the specification leaves the start open); and so on."""
    remaining, start, out = list(range(len(cloud))), 0, []
    for p in range(parts):
        more = p < parts - 1 and len(remaining) > size
        order = ref_fps(cloud[remaining], size + int(more), remaining.index(start))
        picked = [remaining[i] for i in order[:size]]
        out.append(picked)
        if more:
            start = remaining[order[size]]
        remaining = [i for i in remaining if i not in set(picked)]
    return out


def ref_uniformity(cloud: torch.Tensor) -> float:
    """Mean over points of std / mean of the distances to the point's 16 nearest points (itself included)."""
    k = min(UNIFORMITY_NEIGHBOURS, len(cloud))
    total = 0.0
    for p in cloud:
        d = sorted(float(((p - q) ** 2).sum().sqrt()) for q in cloud)[:k]
        mean = sum(d) / k
        std = math.sqrt(sum((x - mean) ** 2 for x in d) / (k - 1))  # torch.std's (n - 1), as the released code
        total += std / mean
    return total / len(cloud)


def ref_partition_weights(nu_full: Sequence[float], nu_parts: Sequence[Sequence[float]], penalty: bool) -> list[float]:
    """0.8 eta_s / sum eta with eta_s = exp(-1000 (nu_s - nu_full)^2), nu averaged over the batch."""
    m = len(nu_parts[0])
    if not penalty:
        return [0.8 / m] * m
    full = sum(nu_full) / len(nu_full)
    eta = [math.exp(-1000 * (sum(nu[s] for nu in nu_parts) / len(nu_parts) - full) ** 2) for s in range(m)]
    return [0.8 * e / sum(eta) for e in eta]


def ref_3ddp_loss(net, anchors: torch.Tensor, logits: torch.Tensor, ppc: int, reals: Sequence[torch.Tensor],
                  penalty: bool = True) -> torch.Tensor:
    """docs/specification.md#3ddp for every class: slots k*PPC..(k+1)*PPC (class-major), each slot's anchors and
    its morphs sum_m softmax(w_l)_m anchor_m; the real batch's FPS partitions, weighted by uniformity; the MMD
    between sorted |x_m| of each partition and of the synthetic clouds; summed over classes, divided by 10."""
    m, n2 = anchors.shape[1], anchors.shape[2]

    def features(cloud):
        with torch.set_grad_enabled(cloud.requires_grad):
            return ref_sorted_channels_fast(net(cloud[None]).point_features[0].abs())

    total = 0.0
    for k, real in enumerate(reals):
        syn = []
        for slot in range(k * ppc, (k + 1) * ppc):
            syn += [anchors[slot, a] for a in range(m)]
            for w in logits[slot]:
                weights = torch.exp(w) / torch.exp(w).sum()
                syn.append(sum(weights[a] * anchors[slot, a] for a in range(m)))
        syn_feats = [features(c) for c in syn]
        with torch.no_grad():
            partitions = [ref_partitions(cloud, m, n2) for cloud in real]
            nu_full = [ref_uniformity(cloud) for cloud in real]
            nu_parts = [[ref_uniformity(cloud[p]) for p in parts] for cloud, parts in zip(real, partitions)]
            weights = ref_partition_weights(nu_full, nu_parts, penalty)
            part_feats = [[features(cloud[parts[s]]) for cloud, parts in zip(real, partitions)] for s in range(m)]
        for s in range(m):
            total = total + weights[s] * ref_mmd(part_feats[s], syn_feats)
    return total / 10


# -- the losses on hand-made tensors ----------------------------------------------------------------------------


def hand_made(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_(True)


def test_multi_bandwidth_mmd_equals_the_formula_in_value_and_gradient():
    x, y = hand_made(4, 6, seed=1), hand_made(3, 6, seed=2, scale=1.5)
    assert_same_value_and_gradients(multi_bandwidth_mmd(x, y), ref_mmd(list(x), list(y)), [x, y])


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
@pytest.mark.parametrize("sort", [True, False])
@pytest.mark.parametrize("ppc", [1, 3])
def test_sadm_class_loss_equals_the_formula_for_every_switch(kernel, sort, ppc):
    """(0.2 L_alpha + 0.001 L_beta) x PPC, L_alpha linear (code) or Gaussian MMD (paper), sorting on or off."""
    real, syn = hand_made(4, 5, 7, seed=3), hand_made(ppc, 5, 7, seed=4, scale=2.0)
    cfg = SADMMethod.make_config({"alpha_kernel": kernel, "sort": sort})
    loss = sadm_class_loss(real, syn, cfg, ppc)
    assert_same_value_and_gradients(loss, ref_sadm_class_loss(real, syn, ppc, sort, kernel), [real, syn])


def test_sadm_l_alpha_and_l_beta_both_count_with_their_own_weights():
    """Each weight scales its own term: a loss with lambda2 = 0 is lambda1 L_alpha x PPC alone, and so on."""
    real, syn = hand_made(4, 5, 7, seed=5), hand_made(2, 5, 7, seed=6, scale=2.0)
    only_alpha = sadm_class_loss(real, syn, SADMMethod.make_config({"lambda_beta": 0.0}), 2)
    only_beta = sadm_class_loss(real, syn, SADMMethod.make_config({"lambda_alpha": 0.0}), 2)
    s_real = [ref_sorted_channels(real[b]) for b in range(4)]
    s_syn = [ref_sorted_channels(syn[p]) for p in range(2)]
    l_alpha = sum(((sum(x[:, r] for x in s_real) / 4 - sum(x[:, r] for x in s_syn) / 2) ** 2).sum()
                  for r in range(7)) / 7
    l_beta = ref_mmd([ref_max_over_points(real[b]) for b in range(4)], [ref_max_over_points(syn[p]) for p in range(2)])
    assert_close(only_alpha, SADM_LAMBDA1 * l_alpha * 2, 1e-9, "L_alpha term")
    assert_close(only_beta, SADM_LAMBDA2 * l_beta * 2, 1e-9, "L_beta term")


def test_dm_class_loss_equals_the_formula():
    real, syn = hand_made(5, 9, seed=7), hand_made(2, 9, seed=8)
    mean_real = sum(real[b] for b in range(5)) / 5
    mean_syn = sum(syn[p] for p in range(2)) / 2
    reference = sum((mean_real[c] - mean_syn[c]) ** 2 for c in range(9))
    assert_same_value_and_gradients(dm_class_loss(real, syn), reference, [real, syn])


def test_dc_layerwise_distance_equals_the_formula():
    """Conv (3-D), linear (2-D) and bias (1-D) gradients; the 1-D one must not count."""
    real = [hand_made(4, 3, 1, seed=9), hand_made(4, seed=10), hand_made(5, 4, seed=11)]
    syn = [hand_made(4, 3, 1, seed=12), hand_made(4, seed=13), hand_made(5, 4, seed=14)]
    real = [g.detach() for g in real]
    assert_same_value_and_gradients(gradient_distance(real, syn), ref_layerwise_distance(real, syn),
                                    [syn[0], syn[2]])
    (bias_grad,) = torch.autograd.grad(gradient_distance(real, syn), syn[1], allow_unused=True)
    assert bias_grad is None or float(bias_grad.abs().max()) == 0


@pytest.mark.parametrize("penalty", [True, False])
def test_3ddp_partition_weights_equal_the_formula(penalty):
    g = torch.Generator().manual_seed(15)
    nu_full = 0.3 + 0.02 * torch.rand(5, generator=g, dtype=torch.float64)
    nu_parts = 0.3 + 0.05 * torch.rand(5, 4, generator=g, dtype=torch.float64)
    got = partition_weights(nu_full, nu_parts, penalty)
    expected = ref_partition_weights(nu_full.tolist(), nu_parts.tolist(), penalty)
    assert_close(got, expected, 1e-6, "partition weights")  # float32 constants without the penalty
    if penalty:  # the example is one where the penalty matters: the weights are not equal
        assert max(expected) - min(expected) > 0.05


def test_3ddp_uniformity_and_partitions_equal_the_formula():
    clouds = torch.rand(2, 40, 3, generator=torch.Generator().manual_seed(16), dtype=torch.float64)
    assert_close(uniformity(clouds), [ref_uniformity(c) for c in clouds], 1e-9, "uniformity")
    small = clouds[:, :10]  # fewer points than 16 neighbours: all of them
    assert_close(uniformity(small), [ref_uniformity(c) for c in small], 1e-9, "uniformity, 10 points")
    got = fps_partition_indices(clouds.float(), 3, 12)
    for b in range(2):
        assert got[b].tolist() == ref_partitions(clouds[b].float(), 3, 12)


# -- the methods' matching losses under a network, against the formula --------------------------------------------


def real_batches_f64(method, ctx, per_class, seed):
    gen = torch.Generator().manual_seed(seed)
    return [ctx.train.class_batch(k, per_class, gen).double() for k in range(ctx.num_classes)]


def test_dm_matching_loss_pairs_class_k_with_class_k(float64):
    method = DMMethod(DMMethod.make_config({"real_batch": 4, "warmup_per_class": 4, "init": "noise"}))
    ctx = tiny_ctx(ppc=2)
    points, labels, _ = method.initialise(ctx)
    state = method.setup(ctx, points.double(), labels)
    reals = real_batches_f64(method, ctx, 4, seed=1)
    torch.manual_seed(0)
    net = method.warmed_net(ctx, torch.cat(reals))
    loss = method.matching_loss(ctx, state, net, reals)
    reference = 0.0
    with reading(net, FEATURES):  # DM reads no point-wise features; the reference takes their max by hand
        for k, real in enumerate(reals):
            fr = [ref_max_over_points(f) for f in net(real).point_features]
            fs = [ref_max_over_points(f) for f in net(state.points[2 * k : 2 * k + 2]).point_features]
            reference = reference + ((sum(fr) / len(fr) - sum(fs) / len(fs)) ** 2).sum()
    assert_same_value_and_gradients(loss, reference, [state.points])


def test_dm_real_side_by_chunks_equals_one_forward_over_the_batch(monkeypatch):
    from ddbench.methods import dm as dm_module

    monkeypatch.setattr(dm_module, "REAL_CLOUDS_PER_CHUNK", 2)  # 5 clouds: two full chunks and a remainder
    torch.manual_seed(0)
    net = PointNet(PointNet.Config(dropout=0.0), 4)
    net.warm_up_batchnorm(torch.randn(8, 32, 3), needs=DMMethod.needs)
    clouds = torch.randn(5, 32, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), reading(net, FEATURES):
        expected = torch.stack([ref_max_over_points(f) for f in net(clouds).point_features])
    assert_close(dm_module.real_global_features(net, clouds), expected, 1e-5, "global features")


def test_sadm_matching_loss_rotates_and_pairs_class_k_with_class_k(float64):
    """The network sees every cloud rotated by Rx Ry Rz of its angles; class k's clouds meet class k's batch; the
    PPC factor applies. Gradients reach points and all three angles."""
    method = SADMMethod(SADMMethod.make_config({"real_batch": 4, "init": "noise"}))
    ctx = tiny_ctx(ppc=2)
    points, labels, _ = method.initialise(ctx)
    state = method.setup(ctx, points.double(), labels)
    with torch.no_grad():
        for a, value in zip(state.angles, (0.4, -0.7, 1.1)):
            a.copy_(value * torch.linspace(-1, 1, len(a)))
    reals = real_batches_f64(method, ctx, 4, seed=2)
    torch.manual_seed(0)
    net = method.warmed_net(ctx, torch.cat(reals))
    loss = method.matching_loss(ctx, state, net, reals)
    reference = 0.0
    for k, real in enumerate(reals):
        rotated = []
        for i in range(2 * k, 2 * k + 2):
            r = ref_rotation(state.angles[0][i], state.angles[1][i], state.angles[2][i])
            rotated.append(torch.stack([r @ p for p in state.points[i]]))
        f_syn = net(torch.stack(rotated)).point_features
        with torch.no_grad():
            f_real = net(real).point_features
        reference = reference + ref_sadm_class_loss(f_real, f_syn, 2, fast_sort=True)
    assert_same_value_and_gradients(loss, reference, [state.points, *state.angles], grad_rtol=1e-5)


def test_dc_matching_loss_pairs_class_k_with_class_k(float64):
    method = DCMethod(DCMethod.make_config({"real_batch": 4, "warmup_per_class": 4, "outer_loop": 1,
                                            "inner_loop": 0, "init": "noise"}))
    ctx = tiny_ctx(ppc=2)
    points, labels, _ = method.initialise(ctx)
    state = method.setup(ctx, points.double(), labels)
    reals = real_batches_f64(method, ctx, 4, seed=3)
    torch.manual_seed(0)
    net = method.warmed_net(ctx, torch.cat(reals), frozen=False).eval()  # eval: no dropout, repeatable
    loss = method.matching_loss(ctx, state, net, reals)
    reference = ref_gradient_matching(net, state.points, 2, reals)
    assert_same_value_and_gradients(loss, reference, [state.points], grad_rtol=1e-5)


@pytest.mark.parametrize("penalty", [True, False])
def test_3ddp_matching_loss_equals_the_formula(penalty, float64):
    method = DDP3DMethod(DDP3DMethod.make_config({"real_batch": 2, "anchor_points": 6, "morphs": 2,
                                                  "uniformity_penalty": penalty}))
    ctx = tiny_ctx(ppc=1)
    points, labels, _ = method.initialise(ctx)
    state = method.setup(ctx, points.double(), labels)
    reals = real_batches_f64(method, ctx, 2, seed=4)
    torch.manual_seed(0)
    net = method.warmed_net(ctx, torch.cat(reals))
    loss = method.matching_loss(ctx, state, net, reals)
    reference = ref_3ddp_loss(net, state.anchors, state.logits, 1, reals, penalty)
    assert_same_value_and_gradients(loss, reference, [state.anchors, state.logits], grad_rtol=1e-5)


def dd3d_ctx(ppc=1):
    train = make_cloudset(num_classes=3, per_class=6, points=32, seed=0)
    return DistillContext(train, ppc, 0, CPU, backbone=BackboneFactory.of(PointNetIN, {"width": 64}))


def test_dd3d_objective_is_gradient_matching_of_its_generated_clouds(float64):
    """DD3D's loss is DC's gradient matching of the generator's clouds (class k against class k's batch);
    gradients reach every generator parameter that shapes the clouds."""
    cfg = {"real_batch": 3, "warmup_per_class": 2, "train_points": 16, "hidden": 16, "outer_loop": 1,
           "inner_loop": 0}
    method = DD3DMethod(DD3DMethod.make_config(cfg))
    ctx = dd3d_ctx(ppc=1)
    state = method.setup(ctx, torch.zeros(3, 32, 3), torch.arange(3))
    reals = [r.double() for r in method.real_batches(ctx, 3, torch.Generator().manual_seed(5))]
    torch.manual_seed(0)
    net = method.fresh_net(ctx, frozen=False)
    loss = method.matching_loss(ctx, state, net, reals)
    clouds = method.synthetic_clouds(state, torch.Generator().manual_seed(0))
    reference = ref_gradient_matching(net, clouds, 1, reals)
    params = [p for p in method.learnable_tensors(state) if p.requires_grad]
    assert_close(loss, reference, 1e-7, "value")
    got = torch.autograd.grad(loss, params, retain_graph=True)
    want = torch.autograd.grad(reference, params)
    for g, w in zip(got, want):
        assert_close(g, w, 1e-5, "generator gradient")
    assert sum(float(w.abs().sum()) for w in want) > 0


def test_dd3d_lr_is_multiplied_by_a_tenth_at_half_of_the_iterations():
    cfg = {"iterations": 6, "real_batch": 2, "warmup_per_class": 2, "train_points": 16, "eval_points": 16,
           "hidden": 8, "outer_loop": 1, "inner_loop": 0, "lr": 2e-3}
    method = DD3DMethod(DD3DMethod.make_config(cfg))
    used = []
    original = method.iteration

    def iteration(ctx, state, gen, it):
        used.append(state.optimisers[0].param_groups[0]["lr"])
        return original(ctx, state, gen, it)

    method.iteration = iteration
    method.distill(dd3d_ctx())
    assert used == pytest.approx([2e-3] * 3 + [2e-4] * 3)


# -- the frozen-BN warm-up -----------------------------------------------------------------------------------


def test_the_methods_warm_fresh_networks_up_as_the_specification_says():
    """One forward pass in train mode on the warm-up batch, then BN (and only BN) in eval: every BN's running
    statistics are 0.9 x (mean 0, var 1) + 0.1 x the statistics of its input on that batch; the folded frozen
    network computes the same features as the unfolded one. The head, which a method that reads no logits never
    uses, is skipped and holds NaN statistics."""
    method = DMMethod(DMMethod.make_config({"real_batch": 4, "warmup_per_class": 4}))
    ctx = tiny_ctx()
    batch = torch.cat(method.real_batches(ctx, 4, torch.Generator().manual_seed(7)))
    torch.manual_seed(11)
    reference = ctx.build_backbone()
    inputs = {}

    def keep_input(name):
        def hook(module, args, output):
            inputs[name] = args[0].detach()  # returns None: the output is left as it is

        return hook

    hooks = [m.register_forward_hook(keep_input(name))
             for name, m in reference.named_modules() if isinstance(m, torch.nn.BatchNorm1d)]
    reference.train()
    with torch.no_grad():
        reference(batch)
    for h in hooks:
        h.remove()
    torch.manual_seed(11)
    warmed = method.warmed_net(ctx, batch, frozen=False)
    bns = {name: m for name, m in warmed.named_modules() if isinstance(m, torch.nn.BatchNorm1d)}
    assert len(bns) == len(inputs) == 10  # T-Net 3 + 2, trunk 3, head 2
    for name, bn in bns.items():
        x = inputs[name]
        dims = (0, 2) if x.dim() == 3 else (0,)
        assert not bn.training
        if name.startswith("head.") and "logits" not in method.needs:
            # DM reads no logits: PointNet skips its head (docs/backbones.md#the-frozen-batchnorm-warm-up-of-pointnet)
            assert torch.isnan(bn.running_mean).all() and torch.isnan(bn.running_var).all()
            continue
        assert_close(bn.running_mean, 0.1 * x.mean(dims), 1e-4, "running mean")
        assert_close(bn.running_var, 0.9 + 0.1 * x.var(dims, unbiased=True), 1e-4, "running var")
    assert all(m.training for m in warmed.modules() if isinstance(m, torch.nn.Dropout))
    torch.manual_seed(11)
    frozen = method.warmed_net(ctx, batch)
    probe = torch.randn(3, 32, 3, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        # what the method reads (DM: the global feature, folded with the max-pool), then every point-wise feature
        assert_close(frozen(probe).global_feature, warmed(probe).global_feature, 1e-4, "folded global features")
        with reading(frozen, FEATURES), reading(warmed, FEATURES):
            assert_close(frozen(probe).point_features, warmed(probe).point_features, 1e-4, "folded features")


# -- class correspondence --------------------------------------------------------------------------------------

#: four clearly different shapes of the built-in dataset (ellipsoid, box, torus, lamp), 8 training clouds of 32
#: points each; the overlapping families (cylinder/capsule, cone/pyramid, table/chair) are left out so that a
#: classifier can tell the classes apart at 32 points
CORRESPONDENCE_CLASSES = (0, 1, 4, 9)


@pytest.fixture(scope="module")
def four_shapes() -> PointCloudSet:
    full = Shapes(ShapesConfig(points=32, train_per_class=8)).load("train")
    idx = torch.cat([full.indices_of_class(k) for k in CORRESPONDENCE_CLASSES])
    labels = torch.arange(len(CORRESPONDENCE_CLASSES)).repeat_interleave(8)
    return PointCloudSet(full.points[idx], labels, [full.class_names[k] for k in CORRESPONDENCE_CLASSES], "shapes4")


@pytest.fixture(scope="module")
def judge(four_shapes):
    """A classifier trained on the real clouds: log p(class | cloud) says which real class a cloud resembles."""
    torch.manual_seed(123)
    net = PointNetIN(PointNetINConfig(width=128), num_classes=4)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        for idx in torch.randperm(len(four_shapes), generator=gen).split(8):
            opt.zero_grad()
            F.cross_entropy(net(four_shapes.points[idx]).logits, four_shapes.labels[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        assert (net(four_shapes.points).logits.argmax(1) == four_shapes.labels).all()
    return net


CORRESPONDENCE = {
    "dm": (DMMethod, PointNet, {"init": "noise", "real_batch": 8, "warmup_per_class": 4, "iterations": 10}),
    "sadm": (SADMMethod, PointNet, {"init": "noise", "real_batch": 4, "iterations": 10}),
    "dc": (DCMethod, PointNet, {"init": "noise", "real_batch": 4, "warmup_per_class": 4, "outer_loop": 1,
                                "inner_loop": 0, "iterations": 10}),
    "dd3d": (DD3DMethod, PointNetIN, {"real_batch": 4, "warmup_per_class": 2, "train_points": 32,
                                      "eval_points": 32, "hidden": 128, "outer_loop": 2, "inner_loop": 1,
                                      "iterations": 20}),
    "3ddp": (DDP3DMethod, PointNet, {"real_batch": 2, "anchor_points": 8, "morphs": 2, "lr_anchors": 10.0,
                                     "iterations": 10}),
}


def distil_from_noise(name: str, train: PointCloudSet) -> PointCloudSet:
    """The method's synthetic set, distilled on ``train`` from a start that does not depend on the labels (noise;
    DD3D: its generator's initialisation)."""
    cls, backbone, cfg = CORRESPONDENCE[name]
    method = cls(cls.make_config(cfg))
    if name == "3ddp":  # 3DDP starts from real clouds; give it the same noise anchors in both runs instead
        m, _, _ = method.sizes("")
        noise = normalize_unit_sphere(torch.randn(4 * m, 32, 3, generator=torch.Generator().manual_seed(0)))
        method.initialise = lambda ctx: (noise, torch.arange(4).repeat_interleave(m), {"init": "noise"})
    synth = method.distill(DistillContext(train, 1, 0, CPU, backbone=BackboneFactory.of(backbone)))
    return PointCloudSet(synth.points, synth.labels, train.class_names)


def judged(judge, synth: PointCloudSet) -> torch.Tensor:
    """(K, K): mean log p(j | synthetic clouds of class k)."""
    with torch.no_grad():
        logp = F.log_softmax(judge(synth.points).logits, dim=1)
    return torch.stack([logp[synth.labels == k].mean(0) for k in range(4)])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CORRESPONDENCE))
def test_each_class_moves_toward_its_own_real_clouds(name, four_shapes, judge):
    """Distil twice from the same start: on the real labels, and on labels shifted by one class (the clouds of
    class k-1 then carry label k). In the first run class k's synthetic clouds must end up more like real class k
    than in the second, and in the second more like real class k-1 (the clouds they were matched with) than in
    the first. Any difference comes from what each class was matched against."""
    shifted = PointCloudSet(four_shapes.points, (four_shapes.labels + 1) % 4, four_shapes.class_names, "shifted")
    own = judged(judge, distil_from_noise(name, four_shapes))
    other = judged(judge, distil_from_noise(name, shifted))
    for k in range(4):
        assert own[k, k] > other[k, k], (name, k, own.tolist(), other.tolist())
        assert other[k, (k - 1) % 4] > own[k, (k - 1) % 4], (name, k, own.tolist(), other.tolist())


# -- learning through the runner's code path ---------------------------------------------------------------------

RUNNER_CONFIGS = {
    "dm": {"init": "noise", "real_batch": 8, "warmup_per_class": 4},
    "sadm": {"init": "noise", "real_batch": 4},
    "dc": {"init": "noise", "real_batch": 4, "warmup_per_class": 4, "outer_loop": 1, "inner_loop": 0},
    "dd3d": {"real_batch": 4, "warmup_per_class": 2, "train_points": 32, "eval_points": 32, "hidden": 32,
             "outer_loop": 2, "inner_loop": 1},
    "3ddp": {"real_batch": 2, "anchor_points": 8, "morphs": 2, "lr_anchors": 10.0},
}
RUNNER_ITERATIONS = {"dm": 10, "sadm": 10, "dc": 6, "dd3d": 15, "3ddp": 10}
#: the held-out loss must end below this fraction of where it started. Measured over draw seeds 0-2: DM 0.33-0.40,
#: SADM 0.21-0.25, 3DDP 0.85-0.88, DD3D 0.91-0.95, DC 0.978-0.987 (gradient matching through PointNet's max-pool is
#: jagged in the coordinates: see tests/test_matching_methods.py)
RUNNER_RATIO = {"dm": 0.6, "sadm": 0.5, "3ddp": 0.95, "dd3d": 0.98, "dc": 0.995}


def heldout_matching_loss(method, ctx: DistillContext, test: PointCloudSet, state) -> float:
    """The method's matching loss for real batches of the TEST split under networks the distillation never drew
    (the global RNG is left as it was)."""
    held_out = dataclasses.replace(ctx, train=test)
    gradient_matching = isinstance(method, GradientMatchingMethod)
    rng = torch.get_rng_state()
    total = 0.0
    for seed in (901, 902, 903):
        torch.manual_seed(seed)
        reals = method.real_batches(held_out, method.config.real_batch, torch.Generator().manual_seed(seed))
        net = method.warmed_net(ctx, torch.cat(reals), frozen=not gradient_matching)
        if gradient_matching:
            net.eval()  # no dropout: the same network before and after
        total += float(method.matching_loss(ctx, state, net, reals).detach())
    torch.set_rng_state(rng)
    return total / 3


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNNER_CONFIGS))
def test_each_method_learns_through_the_runners_code_path(name, tmp_path):
    from ddbench.pipeline import build_experiment, plan_grid
    from ddbench.runner.cell import distill_context

    exp = build_experiment(None, {
        "datasets": ["shapes"], "dataset_config": {"shapes": {"points": 32, "train_per_class": 6, "test_per_class": 4}},
        "methods": [name], "ppc": [1], "iterations": RUNNER_ITERATIONS[name], "device": "cpu",
        "results": str(tmp_path / "runs"), "method_config": {name: RUNNER_CONFIGS[name]},
    })
    (cell,) = plan_grid(exp)
    dataset = cell.dataset.build(None, tmp_path / "cache")
    train, test = dataset.load("train"), dataset.load("test")
    ctx = distill_context(cell, train, CPU, tmp_path / "cache")
    method = cell.method.build()
    if name == "dd3d":
        assert cell.distill_backbone.name == "pointnet_in"
    seen, setup = {}, method.setup

    def capture(c, points, labels):
        state = seen["state"] = setup(c, points, labels)
        seen["before"] = heldout_matching_loss(method, c, test, state)
        return state

    method.setup = capture
    calls = []
    iteration = method.iteration
    method.iteration = lambda *args: calls.append(args[-1]) or iteration(*args)
    method.distill(ctx)
    after = heldout_matching_loss(method, ctx, test, seen["state"])
    assert calls == list(range(1, RUNNER_ITERATIONS[name] + 1))
    assert after < RUNNER_RATIO[name] * seen["before"], (name, seen["before"], after)


# -- protocols ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ProtocolRun:
    """What one evaluation net's training did, epoch by epoch (``epochs_done`` when each thing happened)."""

    result: object
    net: torch.nn.Module
    tests: list[int]  # epochs done at each test_net call
    optimisers: list[tuple[int, float]]  # (epochs done, lr) of each make_optimizer call
    epoch_lrs: list[float]  # the lr in effect during each epoch
    train_batches: list[tuple[int, int]]  # (epoch, clouds) of every training forward
    test: PointCloudSet


def protocol_run(cfg, monkeypatch, train=None, test=None) -> ProtocolRun:
    """Train one net under ``cfg``, watching test_net, make_optimizer and the network's training forwards."""
    from ddbench.evaluation import trainer
    from tests.helpers import network_of

    train = make_cloudset(per_class=4, seed=0) if train is None else train
    test = make_cloudset(per_class=3, seed=1) if test is None else test
    done, tests, made, opts, lrs, batches = [0], [], [], [], [], []
    real_test, real_make, real_build = trainer.test_net, trainer.make_optimizer, trainer.build_evaluation_net

    def counting_test(*args, **kw):
        tests.append(done[0])
        return real_test(*args, **kw)

    def counting_make(cfg_, params, lr):
        opts.append(real_make(cfg_, params, lr))
        made.append((done[0], lr))
        return opts[-1]

    def watched_build(*args, **kw):
        net = real_build(*args, **kw)
        net.register_forward_pre_hook(lambda mod, inp: batches.append((done[0], len(inp[0]))) if mod.training else None)
        return net

    monkeypatch.setattr(trainer, "test_net", counting_test)
    monkeypatch.setattr(trainer, "make_optimizer", counting_make)
    monkeypatch.setattr(trainer, "build_evaluation_net", watched_build)

    def progress(epoch, total):  # called once an epoch is over: the optimiser of that epoch is the latest one
        lrs.append(opts[-1].param_groups[0]["lr"])
        done[0] = epoch

    result, net = trainer.train_and_test(train.points, train.labels, test, cfg, 3, CPU, 3, progress,
                                         return_net=True, network=network_of(cfg))
    return ProtocolRun(result, net, tests, made, lrs, batches, test)


def accuracy_of(net, test: PointCloudSet) -> float:
    """Overall accuracy (percent) of ``net`` on ``test``, cloud by cloud."""
    net.eval()
    with torch.no_grad():
        correct = sum(int(net(test.points[i : i + 1]).logits.argmax()) == int(test.labels[i]) for i in range(len(test)))
    return 100.0 * correct / len(test)


def sadm_protocol(**values):
    from ddbench.evaluation.protocols import SADMProtocol

    return SADMProtocol.make_config({"batch_size": 4, **values})


def test_final_selection_tests_once_after_the_last_epoch_and_reports_that_net(monkeypatch):
    run = protocol_run(sadm_protocol(epochs=5, step_epoch=None), monkeypatch)
    assert run.tests == [5]
    assert run.result.oa == pytest.approx(accuracy_of(run.net, run.test))


def test_best_test_selection_tests_after_every_epoch(monkeypatch):
    run = protocol_run(sadm_protocol(epochs=4, step_epoch=None, selection="best_test"), monkeypatch)
    assert run.tests == [0, 1, 2, 3]


def test_sadm_protocol_recreates_the_optimiser_at_the_lr_step(monkeypatch):
    """The step (here from 1-based epoch 5 of 8) comes after 4 epochs, as a new optimiser (momentum reset) with
    lr x 0.1: 0.01 before, 0.001 from then on."""
    run = protocol_run(sadm_protocol(epochs=8, step_epoch=5), monkeypatch)
    assert [(d, round(lr, 12)) for d, lr in run.optimisers] == [(0, 0.01), (4, 0.001)]
    assert run.epoch_lrs == pytest.approx([0.01] * 4 + [0.001] * 4)


def test_without_recreation_the_step_only_changes_the_lr(monkeypatch):
    run = protocol_run(sadm_protocol(epochs=6, step_epoch=3, recreate_optimizer_at_step=False), monkeypatch)
    assert len(run.optimisers) == 1
    assert run.epoch_lrs == pytest.approx([0.01] * 2 + [0.001] * 4)


def test_dd3d_protocol_follows_the_cosine_schedule_with_one_optimiser(monkeypatch):
    from ddbench.evaluation.protocols import DD3DProtocol

    cfg = DD3DProtocol.make_config({"epochs": 5, "batch_size": 4})
    run = protocol_run(cfg, monkeypatch)
    assert len(run.optimisers) == 1
    # the cosine period: the epochs, or one less where the protocol reaches lr_min at the last epoch
    period = 4 if getattr(cfg, "cosine_reaches_min", "after_last") == "at_last" else 5
    expected = [1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + math.cos(math.pi * e / period)) for e in range(5)]
    assert run.epoch_lrs == pytest.approx(expected)


@pytest.mark.parametrize("epochs", [3, 7])
def test_every_epoch_trains_on_every_cloud_once(epochs, monkeypatch):
    run = protocol_run(sadm_protocol(epochs=epochs, step_epoch=None), monkeypatch,
                       train=make_cloudset(per_class=3, seed=0))
    per_epoch = {}
    for epoch, clouds in run.train_batches:
        per_epoch[epoch] = per_epoch.get(epoch, 0) + clouds
    assert per_epoch == {e: 9 for e in range(epochs)}


def spy_evaluation(monkeypatch):
    """Record the training clouds evaluate_synthetic hands to each evaluation net."""
    from ddbench.evaluation import evaluate

    seen, real = [], evaluate.train_and_test
    monkeypatch.setattr(evaluate, "train_and_test", lambda points, *a, **k: seen.append(points) or real(points, *a, **k))
    return seen


def ref_unit_sphere(cloud: torch.Tensor) -> torch.Tensor:
    """Centred on its centroid, scaled so that its farthest point lies at radius 1."""
    centred = cloud - sum(cloud[i] for i in range(len(cloud))) / len(cloud)
    return centred / max(float(p.norm()) for p in centred)


@pytest.mark.parametrize("renormalise", [True, False])
def test_renormalisation_of_a_scaled_synthetic_set(renormalise, monkeypatch):
    """Re-normalised to the unit sphere (the sadm protocol's default), a scaled copy of a set trains and scores
    exactly as the set; without re-normalisation the nets train on the scaled clouds and the result changes."""
    from ddbench.evaluation.evaluate import evaluate_synthetic
    from ddbench.evaluation.protocols import SADMProtocol
    from ddbench.synthetic.artifact import SyntheticSet
    from tests.helpers import network_of

    if renormalise:
        assert SADMProtocol.Config().renormalize_synthetic  # docs/specification.md#evaluation-protocols
    base, test = make_cloudset(per_class=3, seed=0), make_cloudset(per_class=2, seed=1)
    cfg = sadm_protocol(epochs=3, step_epoch=None, renormalize_synthetic=renormalise)
    seen = spy_evaluation(monkeypatch)
    results = []
    for scale in (1.0, 4.0):  # a power of two: scaling and re-normalising are exact in floating point
        synth = SyntheticSet(base.points * scale, base.labels, list(base.class_names))
        results.append(evaluate_synthetic(synth, test, cfg, [5], CPU, engine="sequential", network=network_of(cfg)))
    for scale, points in zip((1.0, 4.0), seen, strict=True):
        clouds = base.points * scale
        expected = torch.stack([ref_unit_sphere(c) for c in clouds]) if renormalise else clouds
        assert_close(points, expected, 1e-5, "training clouds")
    losses = [r["nets"][0]["final_train_loss"] for r in results]
    if renormalise:
        assert losses[0] == losses[1] and results[0]["oa_mean"] == results[1]["oa_mean"]
    else:
        assert losses[0] != losses[1]
