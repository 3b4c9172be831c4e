"""Fidelity to the released code of SADM, 3DDP, PCC and DD3D: each test fails if its fix is reverted.

The references (git mirrors, read line by line): SADM github.com/donguk071/SADM@036cb97, 3DDP
github.com/yimjae0/3DDP@b7d8dde, PCC github.com/XLechter/PointCondensation@a2f42a9, DD3D github.com/bdy9527/DD3D@a500ab4.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddbench.backbones.base import BackboneFactory
from ddbench.backbones.pointnet import PointNet
from ddbench.data.shapes import Shapes, ShapesConfig
from ddbench.evaluation import trainer
from ddbench.evaluation.protocols import DD3DProtocol, SADMProtocol
from ddbench.methods.base import DistillContext
from ddbench.methods.coreset import RandomMethod
from ddbench.methods.dc import DCMethod, PCCMethod
from ddbench.methods.ddp3d import DDP3DMethod, fps_partition_indices, hungarian_align
from ddbench.methods.sadm import SADMMethod
from ddbench.ops.backends import farthest_point_sample
from ddbench.ops.sampling import gather_points
from tests.conftest import make_cloudset
from tests.helpers import network_of

CPU = torch.device("cpu")


def shapes_ctx(points=64, per_class=8, ppc=1):
    train = Shapes(ShapesConfig(points=points, train_per_class=per_class)).load("train")
    return DistillContext(train, ppc, 0, CPU, dataset="shapes", backbone=BackboneFactory.of(PointNet),
                          initialiser=RandomMethod())


# -- 3DDP: Hungarian alignment on Euclidean distances (pc_ops.py:59-62: linear_sum_assignment(cdist(ref, tgt))) ----


def test_hungarian_alignment_minimises_euclidean_not_squared_distance():
    # a=(-1,0,0) and b=(0,h,0) against p=b and q=(1,0,0), with |a-b| = |b-q| = 1.05 and |a-q| = 2:
    # a->p, b->q costs 2.10 Euclidean (2.205 squared); a->q, b->p costs 2.00 Euclidean (4.00 squared)
    h = math.sqrt(1.05**2 - 1)
    reference = np.array([[-1.0, 0, 0], [0, h, 0]])
    cloud = np.array([[0, h, 0], [1.0, 0, 0]])
    assert hungarian_align(reference, cloud).tolist() == [1, 0]  # Euclidean: the crossing assignment
    squared_choice = [0, 1]  # what a squared-distance cost (ddbench's 3ddp v1) picks
    assert hungarian_align(reference, cloud).tolist() != squared_choice


# -- 3DDP: FPS partitions (scripts/train.py:219-235) --------------------------------------------------------------


def reference_partitions(clouds: torch.Tensor, parts: int, size: int) -> torch.Tensor:
    """The code's partitions: FPS-order the whole cloud from its first point, cut off ``size`` points, FPS-order the
    rest (still in FPS order, so starting at the point the previous FPS would have picked next), and so on."""
    order = farthest_point_sample(clouds, clouds.shape[1])
    out = []
    for _ in range(parts):
        out.append(order[:, :size])
        order = order[:, size:]
        if order.shape[1]:
            order = order.gather(1, farthest_point_sample(gather_points(clouds, order), order.shape[1]))
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("size", [20, 25])
def test_fps_partitions_restart_where_the_reference_restarts(size):
    clouds = torch.randn(3, 100, 3, generator=torch.Generator().manual_seed(0))
    got = fps_partition_indices(clouds, 4, size)
    assert torch.equal(got, reference_partitions(clouds, 4, size))
    # partition 2 starts at the (size+1)-th point of the whole cloud's FPS order, not at the lowest remaining index
    full = farthest_point_sample(clouds, 100)
    assert torch.equal(got[:, 1, 0], full[:, size])


# -- SADM and 3DDP: the BN warm-up is its own draw (SADM main.py:267-278 then 289; 3DDP train.py:203-210 then 218) --


def _capture_warmup(method, monkeypatch):
    seen = {}
    real_warmed = type(method).warmed_net

    def spy(self, ctx, warmup, frozen=True):
        seen["warmup"] = warmup.clone()
        return real_warmed(self, ctx, warmup, frozen)

    monkeypatch.setattr(type(method), "warmed_net", spy)
    return seen


@pytest.mark.parametrize("cls, config", [
    (SADMMethod, {"iterations": 1, "real_batch": 3, "warmup_per_class": 2}),
    (DDP3DMethod, {"iterations": 1, "real_batch": 3, "warmup_per_class": 2, "anchor_points": 12, "morphs": 3}),
], ids=["sadm", "3ddp"])
def test_bn_warmup_batch_is_a_separate_draw_before_the_matching_batch(cls, config, monkeypatch):
    c = shapes_ctx()
    method = cls(cls.make_config(config))
    state = method.setup(c, *method.initialise(c)[:2])
    seen = _capture_warmup(method, monkeypatch)
    gen = torch.Generator().manual_seed(4)
    torch.manual_seed(0)
    method.iteration(c, state, gen, 0)
    replay = torch.Generator().manual_seed(4)
    warm = torch.cat(method.real_batches(c, 2, replay))  # drawn first, warmup_per_class per class
    matching = torch.cat(method.real_batches(c, 3, replay))  # then the matching batch
    assert seen["warmup"].shape[0] == 2 * c.num_classes
    assert torch.equal(seen["warmup"], warm)
    assert not torch.equal(seen["warmup"], matching[: len(warm)])
    assert torch.equal(gen.get_state(), replay.get_state())  # nothing else drawn from the iteration's generator


# -- the sadm protocol: the released evaluate_synset (utils.py:331-370) -------------------------------------------


def test_sadm_protocol_trains_501_epochs_and_recreates_the_optimiser_after_epoch_251(monkeypatch):
    cfg = SADMProtocol.Config()
    assert (cfg.epochs, cfg.step_epoch, cfg.recreate_optimizer_at_step) == (501, 253, True)
    assert SADMProtocol.version == "2"
    # range(Epoch + 1) with Epoch = 500; lr x0.1 after 0-based epoch 251 (lr_schedule = [Epoch // 2 + 1])
    assert trainer.lr_for_epoch(cfg, 251) == 0.01 and trainer.lr_for_epoch(cfg, 252) == pytest.approx(0.001)
    made, epochs_done = [], []
    real_make = trainer.make_optimizer
    monkeypatch.setattr(trainer, "make_optimizer",
                        lambda c, params, lr: made.append((len(epochs_done), lr)) or real_make(c, params, lr))
    train, test = make_cloudset(per_class=1, points=8), make_cloudset(per_class=1, points=8, seed=1)
    net_cfg = SADMProtocol.make_config({"backbone_config": {"input_transform": False, "dropout": 0.0}})
    res = trainer.train_and_test(train.points, train.labels, test, net_cfg, 1996, CPU, 3,
                                 progress=lambda e, E: epochs_done.append(e), network=network_of(net_cfg))
    assert len(epochs_done) == 501 and res.epochs == 501 and res.selected_epoch == 501
    assert made[0] == (0, 0.01) and made[1][0] == 252 and made[1][1] == pytest.approx(0.001) and len(made) == 2


@pytest.mark.parametrize("n", [10, 30, 100])
def test_shared_batch_order_is_the_dataloader_order_of_the_reference(n):
    g = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(n)), batch_size=8,
                                         shuffle=True, num_workers=0, generator=g)
    expected = [[b[0].tolist() for b in loader] for _ in range(40)]
    gen = torch.Generator().manual_seed(0)
    got = [[b.tolist() for b in trainer.loader_epoch_batches(n, 8, gen)] for _ in range(40)]
    assert got == expected


def test_a_last_batch_of_one_cloud_is_merged_the_declared_departure():
    batches = trainer.loader_epoch_batches(17, 8, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [8, 9]  # the DataLoader's [8, 8, 1] would fail in train-mode BatchNorm
    assert any("one cloud is merged" in d.what for d in SADMProtocol.departures)


def test_every_net_trains_in_the_one_shared_order(monkeypatch):
    cfg = SADMProtocol.make_config({"epochs": 3, "step_epoch": None,
                                    "backbone_config": {"input_transform": False, "dropout": 0.0}})
    assert (SADMProtocol.Config().data_order, SADMProtocol.Config().order_seed) == ("shared", 0)
    orders: dict[int, list] = {}
    real = trainer.order_batches
    train, test = make_cloudset(per_class=4, points=8), make_cloudset(per_class=1, points=8, seed=1)
    def spy(c, n, g, seed):
        batches = real(c, n, g)
        orders[seed].append([b.tolist() for b in batches])
        return batches

    for seed in (1996, 1997):
        orders[seed] = []
        monkeypatch.setattr(trainer, "order_batches", lambda c, n, g, s=seed: spy(c, n, g, s))
        trainer.train_and_test(train.points, train.labels, test, cfg, seed, CPU, 3, network=network_of(cfg))
    gen = torch.Generator().manual_seed(0)
    expected = [[b.tolist() for b in trainer.loader_epoch_batches(12, 8, gen)] for _ in range(3)]
    assert orders[1996] == orders[1997] == expected


# -- the dd3d protocol: re-normalised synthetic clouds (gm_inr.py:216), Table 8 ---------------------------------


def test_dd3d_protocol_renormalises_so_a_scaled_synthetic_set_trains_the_same():
    train, test = make_cloudset(per_class=3, points=32), make_cloudset(per_class=2, points=32, seed=1)
    cfg = DD3DProtocol.make_config({"epochs": 3, "batch_size": 4})
    assert cfg.renormalize_synthetic and cfg.renormalize_margin == 1e-4 and DD3DProtocol.version == "2"

    def final_loss(config, scale):
        points = trainer.prepare_synthetic_points(train.points * scale, config)
        return trainer.train_and_test(points, train.labels, test, config, 7, CPU, 3,
                                      network=network_of(config)).final_train_loss

    assert final_loss(cfg, 3.0) == pytest.approx(final_loss(cfg, 1.0), rel=1e-3)
    raw = DD3DProtocol.make_config({"epochs": 3, "batch_size": 4, "renormalize_synthetic": False})
    assert final_loss(raw, 3.0) != pytest.approx(final_loss(raw, 1.0), rel=1e-3)  # what v1 did
    scaled = train.points * 3
    r = (scaled - scaled.mean(dim=1, keepdim=True)).norm(dim=-1).amax(dim=1)
    radius = trainer.prepare_synthetic_points(scaled, cfg).norm(dim=-1).amax(dim=1)
    assert torch.allclose(radius, r / (r + 1e-4), atol=1e-6)  # provider.normalize_data: divide by radius + 1e-4


def test_dd3d_protocol_schedule_and_table8_switch():
    cfg = DD3DProtocol.Config()
    assert (cfg.epochs, cfg.batch_size, cfg.schedule, cfg.validation) == (201, 256, "cosine", "code")
    assert trainer.lr_for_epoch(cfg, 0) == pytest.approx(1e-3) and trainer.lr_for_epoch(cfg, 200) == pytest.approx(1e-4)
    t8 = DD3DProtocol.make_config({"validation": "table8"})
    assert (t8.batch_size, t8.schedule, t8.step_epoch, t8.recreate_optimizer_at_step, t8.epochs) == (
        8, "step", 101, False, 201)
    assert trainer.lr_for_epoch(t8, 99) == 1e-3 and trainer.lr_for_epoch(t8, 100) == pytest.approx(1e-4)
    assert DD3DProtocol.make_config({"validation": "table8", "batch_size": 16}).batch_size == 16  # explicit wins


def test_dd3d_wrapper_fixes_only_the_sign_when_the_test_set_is_in_its_pca_frame():
    cfg = DD3DProtocol.make_config({"canonicalise": "pca"})
    served = make_cloudset(per_class=1, points=16)
    assert trainer.canonical_frame(cfg, served) == "pca"
    served.meta["setting"] = "rotated-pca"
    assert trainer.canonical_frame(cfg, served) == "given"  # DD3D's InvariantWrapper: sign only (CINR.py:252-253)
    net = trainer.build_evaluation_net(cfg, 3, network_of(cfg), trainer.canonical_frame(cfg, served))
    assert net.canonicaliser.frame == "given" and net.canonicaliser.sign == "sin"


# -- PCC: the paper's reading by default, the released DM script as a switch --------------------------------------


def test_pcc_default_is_dc_from_herding_and_the_released_script_is_a_switch():
    cfg = PCCMethod.Config()
    assert (cfg.matching, cfg.init, cfg.lr_points) == ("gradient", "herding", 0.01)
    dm = PCCMethod.make_config({"matching": "distribution"})
    assert (dm.iterations, dm.init, dm.lr_points, dm.momentum, dm.real_batch) == (6000, "random", 1e-4, 0.9, 256)
    assert PCCMethod.make_config({"matching": "distribution", "lr_points": 0.5}).lr_points == 0.5
    c = shapes_ctx(points=32, per_class=4)
    method = PCCMethod(PCCMethod.make_config({"matching": "distribution", "init": "random", "real_batch": 2,
                                              "warmup_per_class": 2, "iterations": 1}))
    state = method.setup(c, *method.initialise(c)[:2])
    before = state.points.detach().clone()
    torch.manual_seed(0)
    assert math.isfinite(method.iteration(c, state, torch.Generator().manual_seed(0), 0))
    assert not torch.equal(before, state.points.detach())


# -- declared references: the revisions read ----------------------------------------------------------------------


@pytest.mark.parametrize("component, revision", [
    (SADMMethod, "036cb97e1a1d15e590b92b004824451dffdcbf82"),
    (SADMProtocol, "036cb97e1a1d15e590b92b004824451dffdcbf82"),
    (DDP3DMethod, "b7d8ddecd86c63f84953ab04cbdf8414040c5986"),
    (DCMethod, "a2f42a91d34a74e7a9058b7328f8c18481f240d7"),
    (PCCMethod, "a2f42a91d34a74e7a9058b7328f8c18481f240d7"),
    (DD3DProtocol, "a500ab4bf84dbbb49b73093d5137b7217caca3e5"),
])
def test_references_name_the_revision_read(component, revision):
    assert component.reference is not None and component.reference.revision == revision
    for d in component.departures:
        assert d.what and d.reference and d.ours
        assert not d.when or set(d.when) <= set(component.Config.model_fields)
