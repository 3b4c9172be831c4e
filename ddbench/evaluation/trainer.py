"""Training evaluation nets on a synthetic set and testing them on the real test set.

The loop is the released SADM evaluation's (``evaluate_synset``, github.com/donguk071/SADM@036cb97 utils.py:331-370)
under the ``sadm`` protocol, DD3D's (github.com/bdy9527/DD3D@a500ab4 utils.py:302-354) under ``dd3d``: per epoch,
the lr and optimiser of that epoch (a step re-creates the optimiser when the protocol says so, SADM utils.py:351-353),
then one pass over the set in the protocol's batch order; the test set is scored in eval mode after the last epoch
(or after every epoch for ``best_test``). Random streams of a net (docs/protocols.md#seeds-and-the--of-a-number):
``torch.manual_seed(seed)`` before the network is built (its initialisation, then its dropout masks);
:func:`order_generator` for the batch order; a generator seeded ``seed + 7919`` for augmentation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from ddbench.backbones.base import Backbone, BackboneFactory, reading
from ddbench.data.cloudset import PointCloudSet, epoch_batches
from ddbench.data.transforms import jitter, normalize_unit_sphere, perturb_rotation, random_scale
from ddbench.errors import TrainingDivergedError
from ddbench.evaluation.protocols import ProtocolConfig

Progress = Callable[[int, int], None]


@dataclass
class NetResult:
    """One evaluation net: its seed and its test accuracies (percent)."""

    seed: int
    oa: float
    macc: float
    per_class_acc: list[float]
    final_train_loss: float
    epochs: int
    seconds: float
    selected_epoch: int  # the epoch whose accuracy is reported (== epochs for final-epoch selection)
    test_curve: list[float] = field(default_factory=list)  # OA after every epoch (best_test selection only)

    def to_dict(self) -> dict:
        return asdict(self)


class Canonicalised(torch.nn.Module):
    """A backbone behind PCA canonicalisation (the dd3d protocol's sign-fixing wrapper)."""

    def __init__(self, backbone: Backbone, sign: str, frame: str = "pca"):
        super().__init__()
        from ddbench.ops.canonical import Canonicaliser

        self.canonicaliser = Canonicaliser(sign, frame=frame)
        self.backbone = backbone

    def forward(self, points: torch.Tensor):
        return self.backbone(self.canonicaliser(points))


def canonical_frame(cfg: ProtocolConfig, test: PointCloudSet | None = None) -> str:
    """The frame the canonicalising wrapper uses: the protocol's, or for ``auto`` ``given`` (sign only, DD3D's
    InvariantWrapper, CINR.py:252-253) when the test set is served PCA-canonicalised, else ``pca``."""
    if cfg.canonical_frame != "auto":
        return cfg.canonical_frame
    served = test is not None and "pca" in str(getattr(test, "meta", {}).get("setting", ""))
    return "given" if served else "pca"


def build_evaluation_net(cfg: ProtocolConfig, num_classes: int, network: BackboneFactory,
                         frame: str = "pca") -> torch.nn.Module:
    """A fresh evaluation net: ``network`` (the protocol's backbone with its config, resolved by the pipeline)
    behind the protocol's canonicalisation, if any, in ``frame`` (:func:`canonical_frame`)."""
    if network.name != cfg.backbone:
        raise ValueError(f"the evaluation network {network.name!r} is not the protocol's backbone {cfg.backbone!r}")
    net = network(num_classes)
    if cfg.canonicalise == "none":
        return net
    return Canonicalised(net, "sin" if cfg.canonicalise == "pca" else "learned", frame)


def lr_for_epoch(cfg: ProtocolConfig, epoch: int) -> float:
    """Learning rate of 0-based ``epoch``."""
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        if cfg.step_epoch is not None and epoch + 1 >= cfg.step_epoch:
            return cfg.lr * cfg.step_gamma
        return cfg.lr
    period = max(1, cfg.epochs - 1) if cfg.cosine_reaches_min == "at_last" else cfg.epochs
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * epoch / period))


def make_optimizer(cfg: ProtocolConfig, params, lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)


def schedule_step(cfg: ProtocolConfig, opt: torch.optim.Optimizer, net: torch.nn.Module, epoch: int, lr: float):
    """The optimiser and lr for 0-based ``epoch``: a step re-creates the optimiser when the protocol says so."""
    new_lr = lr_for_epoch(cfg, epoch)
    if new_lr != lr:
        if cfg.schedule == "step" and cfg.recreate_optimizer_at_step:
            opt = make_optimizer(cfg, net.parameters(), new_lr)
        else:
            for group in opt.param_groups:
                group["lr"] = new_lr
    return opt, new_lr


def order_generator(cfg: ProtocolConfig, seed: int) -> torch.Generator:
    """The generator a net's batch order is drawn from: seeded ``order_seed`` for every net (``shared``, the SADM
    code's ``g.manual_seed(0)``, utils.py:341-342) or with the net's own seed (``per_net``)."""
    return torch.Generator().manual_seed(cfg.order_seed if cfg.data_order == "shared" else seed)


def loader_epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of the index batches of ``DataLoader(dataset_of_n, batch_size, shuffle=True, generator=g)``, drawing
    from ``g`` exactly as that loader does (torch 2.x): the iterator's base seed (one int64,
    ``_BaseDataLoaderIter.__init__``), ``RandomSampler``'s permutation, and the sampler's trailing
    ``randperm(n)[:n % n]``, drawn when the exhausted sampler is asked for one more batch. A last batch of one
    cloud is merged into the previous one, as in :func:`epoch_batches`."""
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    perm = torch.randperm(n, generator=generator)
    torch.randperm(n, generator=generator)
    batches = list(perm.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        last = batches.pop()
        batches[-1] = torch.cat([batches[-1], last])
    return batches


def order_batches(cfg: ProtocolConfig, n: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The index batches of one epoch in the protocol's batch order."""
    if cfg.data_order == "shared":
        return loader_epoch_batches(n, cfg.batch_size, generator)
    return epoch_batches(n, cfg.batch_size, generator)


def diverged(cfg: ProtocolConfig, seed: int, epoch: int) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"evaluation net (seed {seed}) got a non-finite loss at epoch {epoch + 1}; lower the "
        f"protocol lr ({cfg.lr}) or check the synthetic set for extreme coordinates"
    )


def augment(cfg: ProtocolConfig, points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if cfg.augmentation == "none":
        return points
    # dd3d: scale U[0.8, 1.25], jitter N(0, 0.01) clipped 0.05, rotation N(0, 0.06) clipped 0.18 per axis
    points = random_scale(points, 0.8, 1.25, generator=generator)
    points = jitter(points, 0.01, 0.05, generator=generator)
    return perturb_rotation(points, 0.06, 0.18, generator=generator)


@torch.no_grad()
def test_net(net: torch.nn.Module, test: PointCloudSet, batch_size: int, device: torch.device) -> tuple[float, float, list[float]]:
    """(OA, mAcc, per-class accuracy), in percent, of ``net`` in eval mode on ``test``. Only the logits are
    read, so a backbone may skip the rest (PointNet's folded last layer:
    docs/backbones.md#frozen-batchnorm-and-max-pool)."""
    net.eval()
    preds = []
    with reading(net, frozenset({"logits"})):
        for lo in range(0, len(test), batch_size):
            batch = test.points[lo : lo + batch_size].to(device)
            preds.append(net(batch).logits.argmax(-1).cpu())
    return accuracies(torch.cat(preds), test)


def accuracies(pred: torch.Tensor, test: PointCloudSet) -> tuple[float, float, list[float]]:
    """(OA, mAcc, per-class accuracy), in percent, of predicted labels ``pred`` on ``test``."""
    correct = (pred == test.labels).float()
    per_class = []
    for k in range(test.num_classes):
        mask = test.labels == k
        per_class.append(float(correct[mask].mean() * 100) if mask.any() else float("nan"))
    present = [a for a in per_class if not math.isnan(a)]
    return float(correct.mean() * 100), float(sum(present) / len(present)), per_class


def train_and_test(
    train_points: torch.Tensor,
    train_labels: torch.Tensor,
    test: PointCloudSet,
    cfg: ProtocolConfig,
    seed: int,
    device: torch.device,
    num_classes: int,
    progress: Progress | None = None,
    return_net: bool = False,
    *,
    network: BackboneFactory,
):
    """Train one evaluation net (built by ``network``) with ``seed`` under protocol ``cfg`` and test it; return
    its :class:`NetResult` (and the trained net if ``return_net``)."""
    start = time.perf_counter()
    torch.manual_seed(seed)  # initialisation and dropout masks
    net = build_evaluation_net(cfg, num_classes, network, canonical_frame(cfg, test)).to(device)
    data_gen = order_generator(cfg, seed)
    aug_gen = torch.Generator().manual_seed(seed + 7_919)
    points, labels = train_points.to(device), train_labels.to(device)
    lr = lr_for_epoch(cfg, 0)
    opt = make_optimizer(cfg, net.parameters(), lr)
    loss_value = float("nan")
    curve: list[float] = []
    best = (-1.0, 0.0, [], 0)
    for epoch in range(cfg.epochs):
        opt, lr = schedule_step(cfg, opt, net, epoch, lr)
        net.train()
        total, count = 0.0, 0
        for idx in order_batches(cfg, len(points), data_gen):
            batch = augment(cfg, points[idx.to(device)], aug_gen)
            loss = F.cross_entropy(net(batch).logits, labels[idx.to(device)])
            if not torch.isfinite(loss):
                raise diverged(cfg, seed, epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        loss_value = total / max(count, 1)
        if cfg.selection == "best_test":
            oa, macc, per_class = test_net(net, test, cfg.test_batch_size, device)
            curve.append(oa)
            if oa > best[0]:
                best = (oa, macc, per_class, epoch + 1)
        if progress is not None:
            progress(epoch + 1, cfg.epochs)
    if cfg.selection == "best_test":
        oa, macc, per_class, selected = best
    else:
        oa, macc, per_class = test_net(net, test, cfg.test_batch_size, device)
        selected = cfg.epochs
    result = NetResult(
        seed=seed, oa=oa, macc=macc, per_class_acc=per_class, final_train_loss=loss_value,
        epochs=cfg.epochs, seconds=time.perf_counter() - start, selected_epoch=selected, test_curve=curve,
    )
    return (result, net) if return_net else result


def prepare_synthetic_points(points: torch.Tensor, cfg: ProtocolConfig) -> torch.Tensor:
    """The synthetic clouds as the nets train on them: re-normalised to the unit sphere when the protocol says so
    (SADM utils.py:333 ``pc_normalize_batch``; DD3D gm_inr.py:216 ``provider.normalize_data``, which divides by the
    radius plus 1e-4: ``renormalize_margin``)."""
    if not torch.isfinite(points).all():
        raise TrainingDivergedError(
            "the synthetic set contains NaN or infinite coordinates; the distillation diverged (lower its lr)"
        )
    if not cfg.renormalize_synthetic:
        return points
    if cfg.renormalize_margin == 0:
        return normalize_unit_sphere(points)
    centred = points - points.mean(dim=1, keepdim=True)
    radius = centred.norm(dim=-1).amax(dim=1, keepdim=True).unsqueeze(-1)
    return centred / (radius + cfg.renormalize_margin)
