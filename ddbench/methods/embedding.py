"""Embeddings of real clouds for the coreset rules (herding, k-center).

The embedding is the global feature (max-pooled, 1024-d for PointNet) of a network, which is recorded with the
result:

- ``trained`` (default): the network trained on the whole training set (SGD lr 0.01, momentum 0.9, wd 5e-4,
  cosine schedule, batch 32), the usual choice of the coreset baselines in the distillation literature. The
  features are cached per (training set content, backbone, config, seed), so herding and k-center at every
  PPC share one training run.
- ``random``: a freshly initialised network after the warm-up of docs/specification.md#frozen-bn-warm-up (cheap, no training).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from ddbench.backbones.base import BackboneFactory
from ddbench.backbones.tasks import Task
from ddbench.backbones.utils import bn_warmup
from ddbench.config import ComponentConfig
from ddbench.data.cloudset import PointCloudSet, epoch_batches
from ddbench.errors import TrainingDivergedError
from ddbench.io import atomic_path, stable_hash

CLASSIFICATION = Task()


class EmbeddingConfig(ComponentConfig):
    embedding: Literal["trained", "random"] = Field(
        "trained", description="features of a net trained on the whole training set, or of a random net"
    )
    embedding_epochs: int = Field(10, gt=0, description="training epochs of the embedding net")
    embedding_batch_size: int = Field(32, gt=1)
    embedding_lr: float = Field(0.01, gt=0)
    embedding_seed: int | None = Field(None, description="seed of the embedding net (None: the cell's seed)")
    normalize_features: bool = Field(False, description="L2-normalise features before the coreset rule")


def content_hash(tensor: torch.Tensor) -> str:
    """Short sha256 of a tensor's bytes (identifies a training set by content, not by path)."""
    return hashlib.sha256(np.ascontiguousarray(tensor.cpu().numpy()).tobytes()).hexdigest()[:16]


@torch.no_grad()
def global_features(net, points: torch.Tensor, device: torch.device, batch: int = 128, labels=None,
                    task: Task = CLASSIFICATION) -> torch.Tensor:
    """The global feature of every cloud (a segmentation net also sees each cloud's category, ``labels``)."""
    net.eval()
    out = []
    for lo in range(0, len(points), batch):
        y = labels[lo : lo + batch].to(device) if labels is not None else None
        out.append(task.global_feature(net, points[lo : lo + batch].to(device), y).cpu())
    return torch.cat(out)


def _train_embedding_net(net, train: PointCloudSet, cfg: EmbeddingConfig, seed: int, device, report,
                         task: Task = CLASSIFICATION) -> float:
    """Train the embedding net on the task's targets (cloud labels, or per-point parts); its last train accuracy."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.embedding_lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.embedding_epochs)
    points, labels = train.points, train.labels
    targets = train.point_labels if task.per_point else labels
    acc = 0.0
    for epoch in range(cfg.embedding_epochs):
        net.train()
        correct = 0
        for idx in epoch_batches(len(points), cfg.embedding_batch_size, gen):
            out = task.logits(net, points[idx].to(device), labels[idx].to(device))
            y = targets[idx].to(device)
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"embedding net diverged at epoch {epoch + 1}; lower embedding_lr ({cfg.embedding_lr})"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            correct += int((out.argmax(-1) == y).sum())
        sched.step()
        acc = 100.0 * correct / targets.numel()
        report(epoch + 1, cfg.embedding_epochs, f"embedding net epoch {epoch + 1} (train acc {acc:.1f}%)")
    return acc


def _random_net_features(train: PointCloudSet, backbone: BackboneFactory, seed: int, device, task: Task):
    """Global features of a freshly initialised net after the frozen-BN warm-up on 8 clouds per class."""
    torch.manual_seed(seed)
    net = task.build_net(backbone, train.num_classes).to(device)
    gen = torch.Generator().manual_seed(seed)
    warm_idx = torch.cat([train.class_batch_indices(k, 8, gen) for k in range(train.num_classes)])
    categories = (train.labels[warm_idx].to(device),) if task.per_point else ()
    bn_warmup(net, train.points[warm_idx].to(device), *categories)
    return global_features(net, train.points, device, labels=train.labels, task=task)


def compute_embeddings(
    train: PointCloudSet,
    cfg: EmbeddingConfig,
    backbone: BackboneFactory,
    seed: int,
    device: torch.device,
    cache_dir: Path | None,
    report=lambda done, total, desc: None,
    task: Task = CLASSIFICATION,
) -> tuple[torch.Tensor, dict]:
    """Features (M, C) of every training cloud and a record of the network that produced them (for a
    segmentation task: the segmentation net's max-pooled feature, the net trained on the part labels)."""
    seed = cfg.embedding_seed if cfg.embedding_seed is not None else seed
    record = {
        "embedding": cfg.embedding,
        "backbone": backbone.name,
        "backbone_config": backbone.config_dict(),
        "feature": "global_feature",
        "seed": seed,
        "normalize_features": cfg.normalize_features,
        **({"task": task.name} if task.per_point else {}),
    }
    start = time.perf_counter()
    if cfg.embedding == "random":
        feats = _random_net_features(train, backbone, seed, device, task)
        record["warmup"] = "frozen BN warm-up, 8 clouds per class"
    else:
        record.update(epochs=cfg.embedding_epochs, batch_size=cfg.embedding_batch_size, lr=cfg.embedding_lr,
                      optimizer="sgd momentum 0.9 wd 5e-4, cosine")
        key = {"train": content_hash(train.points), "labels": content_hash(train.labels), **record}
        path = cache_dir / "embeddings" / f"{stable_hash(key, 16)}.pt" if cache_dir is not None else None
        cached = None
        if path is not None and path.exists():
            try:
                cached = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - unreadable cache entries are recomputed
                cached = None
        if cached is not None and cached.get("key") == stable_hash(key, 32):
            feats, record["train_accuracy"] = cached["features"], cached["train_accuracy"]
            record["cached"] = True
        else:
            torch.manual_seed(seed)
            net = task.build_net(backbone, train.num_classes).to(device)
            acc = _train_embedding_net(net, train, cfg, seed, device, report, task)
            feats = global_features(net, train.points, device, labels=train.labels, task=task)
            record["train_accuracy"] = acc
            record["cached"] = False
            if path is not None:
                with atomic_path(path) as tmp:
                    torch.save({"key": stable_hash(key, 32), "features": feats, "train_accuracy": acc}, tmp)
        record["cache_key"] = stable_hash(key, 16)
    if cfg.normalize_features:
        feats = F.normalize(feats, dim=1)
    record["seconds"] = time.perf_counter() - start
    return feats, record
