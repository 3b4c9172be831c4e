"""How far one distillation update moves the points, per method, on a real training set.

    python benchmarks/calibrate_step_sizes.py --data-root ../shared/data

docs/specification.md leaves DM's and DC's learning rates on coordinates open ("lr 1 in the image reference; tune for
points"). Tuning them on test accuracy would be selection on the test set, so ddbench matches step sizes instead:
the mean per-point displacement of one update at a method's lr, compared with SADM's at its reference lr 10. The
measurement uses only the training set (random PPC 1 initialisation, three fresh networks). Prints the mean and
largest gradient norm per point and the lr that gives SADM's mean step.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from components import distill_context

from ddbench.methods.dc import DCMethod
from ddbench.methods.dm import DMMethod
from ddbench.methods.initialisation import initial_clouds
from ddbench.methods.sadm import SADMMethod
from ddbench.pipeline import open_dataset


def gradient_norms(method, ctx, points, labels, real_batch, seeds, trained_net=False):
    means, maxes = [], []
    for s in seeds:
        state = method.setup(ctx, points, labels)
        torch.manual_seed(s)
        gen = torch.Generator().manual_seed(s)
        reals = method.real_batches(ctx, real_batch, gen)
        net = method.warmed_net(ctx, torch.cat(reals), frozen=not trained_net)
        loss = method.matching_loss(ctx, state, net, reals)
        g = torch.autograd.grad(loss, state.points)[0].norm(dim=-1)
        means.append(float(g.mean()))
        maxes.append(float(g.max()))
    return float(np.mean(means)), float(np.mean(maxes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="modelnet10")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    train = open_dataset(args.dataset, data_root=args.data_root).load("train")
    ctx = distill_context(train, 1, torch.device("cpu"), "")
    points, labels, _ = initial_clouds(ctx, "random")
    seeds = (1, 2, 3)
    ref_mean, ref_max = gradient_norms(SADMMethod(), ctx, points, labels, 8, seeds)
    ref_lr = SADMMethod.Config().lr_points
    print(f"sadm (lr {ref_lr}): mean step {ref_lr * ref_mean:.2e}, largest {ref_lr * ref_max:.2e}")
    rows = [("dm", DMMethod(DMMethod.make_config({"real_batch": 8})), 8, seeds, False),
            ("dc", DCMethod(DCMethod.make_config({"real_batch": 16, "warmup_per_class": 8})), 16, seeds[:1], True)]
    for name, method, rb, s, dc in rows:
        mean, largest = gradient_norms(method, ctx, points, labels, rb, s, trained_net=dc)
        lr = method.config.lr_points
        print(f"{name} (lr {lr}): mean step {lr * mean:.2e}, largest {lr * largest:.2e}; "
              f"lr giving sadm's mean step: {ref_lr * ref_mean / mean:.3g}")


if __name__ == "__main__":
    main()
