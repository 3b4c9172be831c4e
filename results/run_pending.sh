#!/usr/bin/env bash
# Run (or resume) every published experiment, most informative first. Finished cells are skipped, an interrupted
# distillation resumes from its checkpoint and an interrupted evaluation from its last finished net, so this can be
# stopped at any time and started again. From the repository root, with ../shared beside the checkout:
#   bash results/run_pending.sh                 # on the CPU the experiment files name
#   bash results/run_pending.sh --device cuda   # on a GPU (the device is recorded in every cell)
# Then: bash results/make_tables.sh
set -euo pipefail
data=(--data-root ../shared/data)
ddbench run --config results/modelnet10_sadm_matching/experiment.toml "${data[@]}" "$@"
ddbench run --config results/modelnet10_sadm_param/experiment.toml --methods dd3d --iterations 20 "${data[@]}" "$@"
ddbench run --config results/modelnet10_sadm_param/experiment.toml --methods 3ddp --iterations 300 "${data[@]}" "$@"
ddbench run --config results/modelnet10_sadm_baselines/experiment.toml "${data[@]}" "$@"
ddbench run --config results/modelnet10_sadm_coresets/experiment.toml --seeds 0 "${data[@]}" "$@"
ddbench run --config results/modelnet10_sadm_coresets/experiment.toml --seeds 1,2 --ppc 1 --methods random,herding "${data[@]}" "$@"
# the reference iteration budgets of 3DDP (2000) and DD3D (400): separate cells from the reduced runs above
ddbench run --config results/modelnet10_sadm_param/experiment.toml "${data[@]}" "$@"
ddbench run --config results/modelnet10_cross_arch/experiment.toml "${data[@]}" "$@"
