#!/usr/bin/env bash
# Run (or resume) the published experiments in the order issue 19 asks: the SADM-Table-1 cells with no number
# first, then more draws and nets, then PPC 10. Finished cells are skipped, an interrupted distillation resumes from
# its checkpoint (committed under results/*/checkpoints/) and an interrupted evaluation from its last finished net,
# so this can be stopped at any time and started again. From the repository root, with ../shared beside the checkout:
#   nice -n 19 env OMP_NUM_THREADS=1 bash results/run_pending.sh        # on this CPU, in the background
#   bash results/run_pending.sh --device cuda                           # on a GPU (the device is recorded)
# Then: bash results/make_tables.sh
set -euo pipefail
data=(--data-root ../shared/data)
# 1. DM at PPC 1 (no number yet), 3DDP at its 2000 iterations, DD3D at its 400 iterations
ddbench run --config results/modelnet10_sadm_baselines/experiment.toml --methods dm --ppc 1 "${data[@]}" "$@"
ddbench run --config results/modelnet10_sadm_param/experiment.toml --methods 3ddp "${data[@]}" "$@"
ddbench run --config results/modelnet10_sadm_param/experiment.toml --methods dd3d "${data[@]}" "$@"
# 2. k-center PPC 3; herding and k-center PPC 1 at draw seeds 1 and 2; then every published cell at 10 nets
ddbench run --config results/modelnet10_sadm_coresets/experiment.toml --seeds 0 --ppc 3 --methods kcenter "${data[@]}" "$@"
ddbench run --config results/modelnet10_sadm_coresets/experiment.toml --seeds 1,2 --ppc 1 --methods herding,kcenter "${data[@]}" "$@"
for exp in coresets matching param baselines; do
  ddbench run --config "results/modelnet10_sadm_$exp/experiment.toml" --eval-nets 10 "${data[@]}" "$@"
done
# 3. SADM and the coresets at PPC 10; PCC and DC at PPC 1
ddbench run --config results/modelnet10_sadm_matching/experiment.toml --ppc 10 "${data[@]}" "$@"
ddbench run --config results/modelnet10_sadm_coresets/experiment.toml --seeds 0 --ppc 10 "${data[@]}" "$@"
ddbench run --config results/modelnet10_sadm_baselines/experiment.toml --methods dc --ppc 1 "${data[@]}" "$@"
ddbench run --datasets modelnet10 --methods pcc --ppc 1 --eval-nets 5 --device cpu --results results/modelnet10_sadm_baselines "${data[@]}" "$@"
# the cross-architecture check needs a GPU (one DGCNN net at 500 epochs takes about a day on this CPU)
ddbench run --config results/modelnet10_cross_arch/experiment.toml "${data[@]}" "$@"
