"""Training the evaluation nets of a cell as one batched ensemble (see :mod:`ddbench.evaluation.ensemble`).

The loop mirrors :func:`ddbench.evaluation.trainer.train_and_test` step for step: the same initialisation per
seed, the same batch-order generator per member (:func:`~ddbench.evaluation.trainer.order_generator`: under
``data_order = shared`` every member draws the same order, as every sequential net does) and augmentation
generator, the same schedule and optimiser re-creation, the same divergence check and the same selection rule.
Only the arithmetic is batched.
"""

from __future__ import annotations

import time

import torch

from ddbench.backbones.base import BackboneFactory
from ddbench.data.cloudset import PointCloudSet
from ddbench.evaluation.ensemble import build_ensemble, ensemble_cross_entropy
from ddbench.evaluation.protocols import ProtocolConfig
from ddbench.evaluation.trainer import (
    NetResult,
    Progress,
    accuracies,
    augment,
    build_evaluation_net,
    diverged,
    lr_for_epoch,
    make_optimizer,
    order_batches,
    order_generator,
    schedule_step,
)


def build_members(cfg: ProtocolConfig, seeds: list[int], num_classes: int,
                  network: BackboneFactory) -> tuple[list, list[torch.Generator]]:
    """The member nets, initialised exactly as the sequential trainer initialises them, and for each the
    generator holding the global RNG state right after its initialisation (where its dropout masks come from)."""
    nets, dropout_gens = [], []
    for seed in seeds:
        torch.manual_seed(seed)
        nets.append(build_evaluation_net(cfg, num_classes, network))
        gen = torch.Generator()
        gen.set_state(torch.get_rng_state())
        dropout_gens.append(gen)
    return nets, dropout_gens


@torch.no_grad()
def test_ensemble(ensemble: torch.nn.Module, test: PointCloudSet, batch_size: int, device: torch.device):
    """Per member (OA, mAcc, per-class accuracy) on ``test``, in eval mode. The test batch is split so that
    members x clouds stays within ``batch_size`` clouds' worth of activations."""
    ensemble.eval()
    E = len(ensemble.members)
    step = max(1, batch_size // E)
    preds = []
    for lo in range(0, len(test), step):
        batch = test.points[lo : lo + step].to(device)
        preds.append(ensemble(batch.unsqueeze(0).expand(E, *batch.shape)).argmax(-1).cpu())
    pred = torch.cat(preds, dim=1)  # (E, n_test)
    return [accuracies(p, test) for p in pred]


def train_ensemble_epoch(ensemble, opt, points, labels, cfg: ProtocolConfig, seeds: list[int], epoch: int,
                         data_gens: list[torch.Generator], aug_gens: list[torch.Generator],
                         device: torch.device) -> torch.Tensor:
    """One epoch of every member, step by step as the sequential loop does; returns each member's mean loss."""
    ensemble.train()
    total, count = torch.zeros(len(seeds)), 0
    for step_idx in zip(*(order_batches(cfg, len(points), g) for g in data_gens), strict=True):
        batch = torch.stack([augment(cfg, points[i.to(device)], g) for i, g in zip(step_idx, aug_gens, strict=True)])
        batch_labels = torch.stack([labels[i.to(device)] for i in step_idx])
        member_loss = ensemble_cross_entropy(ensemble(batch), batch_labels)
        finite = torch.isfinite(member_loss.detach())
        if not bool(finite.all()):
            raise diverged(cfg, seeds[int((~finite).nonzero()[0])], epoch)
        opt.zero_grad(set_to_none=True)
        member_loss.sum().backward()
        opt.step()
        total += member_loss.detach().cpu() * len(step_idx[0])
        count += len(step_idx[0])
    return total / max(count, 1)


def train_and_test_ensemble(
    train_points: torch.Tensor,
    train_labels: torch.Tensor,
    test: PointCloudSet,
    cfg: ProtocolConfig,
    seeds: list[int],
    device: torch.device,
    num_classes: int,
    progress: Progress | None = None,
    return_ensemble: bool = False,
    *,
    network: BackboneFactory,
):
    """Train one net per seed, all at once; return their :class:`NetResult` (and the ensemble if asked)."""
    start = time.perf_counter()
    nets, dropout_gens = build_members(cfg, seeds, num_classes, network)
    ensemble = build_ensemble(nets).to(device)
    if device.type != "cpu":  # masks come from per-member device generators seeded from the member's seed
        dropout_gens = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    ensemble.set_generators(dropout_gens)
    data_gens = [order_generator(cfg, s) for s in seeds]
    aug_gens = [torch.Generator().manual_seed(s + 7_919) for s in seeds]
    points, labels = train_points.to(device), train_labels.to(device)
    E = len(seeds)
    lr = lr_for_epoch(cfg, 0)
    opt = make_optimizer(cfg, ensemble.parameters(), lr)
    losses = torch.full((E,), float("nan"))
    curves: list[list[float]] = [[] for _ in seeds]
    best = [(-1.0, 0.0, [], 0) for _ in seeds]
    for epoch in range(cfg.epochs):
        opt, lr = schedule_step(cfg, opt, ensemble, epoch, lr)
        losses = train_ensemble_epoch(ensemble, opt, points, labels, cfg, seeds, epoch, data_gens, aug_gens, device)
        if cfg.selection == "best_test":
            for e, (oa, macc, per_class) in enumerate(test_ensemble(ensemble, test, cfg.test_batch_size, device)):
                curves[e].append(oa)
                if oa > best[e][0]:
                    best[e] = (oa, macc, per_class, epoch + 1)
        if progress is not None:
            progress(epoch + 1, cfg.epochs)
    if cfg.selection == "best_test":
        final = best
    else:
        final = [(*acc, cfg.epochs) for acc in test_ensemble(ensemble, test, cfg.test_batch_size, device)]
    seconds = (time.perf_counter() - start) / E  # the ensemble's wall time, shared equally
    results = [
        NetResult(seed=s, oa=oa, macc=macc, per_class_acc=pc, final_train_loss=float(losses[e]), epochs=cfg.epochs,
                  seconds=seconds, selected_epoch=sel, test_curve=curves[e])
        for e, (s, (oa, macc, pc, sel)) in enumerate(zip(seeds, final))
    ]
    return (results, ensemble) if return_ensemble else results
