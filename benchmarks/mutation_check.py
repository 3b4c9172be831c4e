"""Mutation check: plausible bugs in the science, each of which the test suite must catch.

Every entry of :data:`MUTATIONS` is one patch (exact old text -> new text, in one file of the package; a few
patches need two edits of the same file) together with the tests that must fail under it. The script copies
``ddbench/``, ``tests/``, ``docs/`` and ``pyproject.toml`` to a temporary directory, runs the tests of every
mutation once unmutated (they must pass: a red baseline proves nothing), then applies the mutations one at a time
to that copy and runs ``pytest -x -q`` on their tests with ``PYTHONPATH`` pointing at the copy first (so test
subprocesses, such as the killed ``ddbench run`` of tests/test_resume_kill.py, run the mutated copy too). No
bytecode is written, so an edit of the same length within the same second can never be hidden by a stale ``.pyc``.

    python benchmarks/mutation_check.py                 # all of them (about 20 minutes on 2 cores)
    python benchmarks/mutation_check.py --list          # the mutations and their tests
    python benchmarks/mutation_check.py --check         # only check that every patch still applies
    python benchmarks/mutation_check.py --only sadm-no-ppc --only herding-argmax

It prints the score (caught / total) and every survivor, and exits non-zero if a mutation survives, if a patch no
longer applies (its old text is printed, so that it can be fixed), or if the baseline fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = ("ddbench", "tests", "docs", "pyproject.toml")
SCIENCE = "tests/test_science.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # relative to the repository root
    old: str | tuple[str, ...]  # exact text, found exactly once in the file (a tuple: several edits)
    new: str | tuple[str, ...]
    tests: tuple[str, ...]  # pytest node ids (a file, a test, or a parametrised test)
    description: str

    def edits(self) -> list[tuple[str, str]]:
        olds = (self.old,) if isinstance(self.old, str) else self.old
        news = (self.new,) if isinstance(self.new, str) else self.new
        assert len(olds) == len(news), self.name
        return list(zip(olds, news))


def science(*tests: str) -> tuple[str, ...]:
    return tuple(f"{SCIENCE}::{t}" for t in tests)


MUTATIONS: list[Mutation] = [
    # -- SADM: each loss term and weight, the switches, the pairing, the rotation ---------------------------------
    Mutation("sadm-weights-swapped-no-ppc", "ddbench/methods/sadm.py",
             "return (cfg.lambda_alpha * l_alpha + cfg.lambda_beta * l_beta) * ppc",
             "return cfg.lambda_beta * l_alpha + cfg.lambda_alpha * l_beta",
             science("test_sadm_class_loss_equals_the_formula_for_every_switch"),
             "SADM's two loss weights swapped and the x PPC factor dropped (the issue's bug)"),
    Mutation("sadm-no-ppc", "ddbench/methods/sadm.py",
             "return (cfg.lambda_alpha * l_alpha + cfg.lambda_beta * l_beta) * ppc",
             "return cfg.lambda_alpha * l_alpha + cfg.lambda_beta * l_beta",
             science("test_sadm_class_loss_equals_the_formula_for_every_switch"), "SADM without the x PPC factor"),
    Mutation("sadm-lambda1", "ddbench/methods/sadm.py",
             "lambda_alpha: float = Field(0.2,", "lambda_alpha: float = Field(0.02,",
             science("test_sadm_class_loss_equals_the_formula_for_every_switch"), "lambda1 = 0.02 instead of 0.2"),
    Mutation("sadm-lambda2", "ddbench/methods/sadm.py",
             "lambda_beta: float = Field(0.001,", "lambda_beta: float = Field(0.01,",
             science("test_sadm_class_loss_equals_the_formula_for_every_switch"), "lambda2 = 0.01 instead of 0.001"),
    Mutation("sadm-l-alpha-mean-over-channels", "ddbench/methods/sadm.py",
             "l_alpha = ((real.mean(0) - syn.mean(0)) ** 2).sum(0).mean()",
             "l_alpha = ((real.mean(0) - syn.mean(0)) ** 2).mean(0).mean()",
             science("test_sadm_class_loss_equals_the_formula_for_every_switch"),
             "L_alpha averaged over the channels instead of summed"),
    Mutation("sadm-l-beta-average-pooled", "ddbench/methods/sadm.py",
             "l_beta = multi_bandwidth_mmd(real_features.amax(2), syn_features.amax(2))",
             "l_beta = multi_bandwidth_mmd(real_features.mean(2), syn_features.mean(2))",
             science("test_sadm_class_loss_equals_the_formula_for_every_switch"),
             "L_beta on average-pooled instead of max-pooled features"),
    Mutation("sadm-sort-switch-ignored", "ddbench/methods/sadm.py",
             "syn = sort_pointwise(syn_features) if cfg.sort else syn_features",
             "syn = sort_pointwise(syn_features)",
             science("test_sadm_class_loss_equals_the_formula_for_every_switch"),
             "sort = false still sorts the synthetic features"),
    Mutation("sadm-kernel-switch-ignored", "ddbench/methods/sadm.py",
             'if cfg.alpha_kernel == "linear":', "if True:",
             science("test_sadm_class_loss_equals_the_formula_for_every_switch"),
             "alpha_kernel = gaussian still uses the linear kernel"),
    Mutation("sadm-lambda1-on-both-terms", "ddbench/methods/sadm.py",
             "(cfg.lambda_alpha * l_alpha + cfg.lambda_beta * l_beta)",
             "(cfg.lambda_alpha * l_alpha + cfg.lambda_alpha * l_beta)",
             science("test_sadm_l_alpha_and_l_beta_both_count_with_their_own_weights"),
             "L_beta weighted by lambda1 instead of lambda2"),
    Mutation("sadm-learn-points-switch-ignored", "ddbench/methods/sadm.py",
             ("pts = points.clone().requires_grad_(cfg.learn_points)", "        if cfg.learn_points:\n"),
             ("pts = points.clone().requires_grad_(True)", "        if True:\n"),
             ("tests/test_matching_methods.py::test_sadm_ablation_switches",),
             "learn_points = false still optimises the coordinates"),
    Mutation("sadm-pairs-class-0", "ddbench/methods/sadm.py",
             "rk = real_feats[lo : lo + len(reals[k])]", "rk = real_feats[: len(reals[k])]",
             science("test_sadm_matching_loss_rotates_and_pairs_class_k_with_class_k"),
             "SADM matches every class against class 0's real batch"),
    Mutation("rotation-order", "ddbench/ops/rotation.py",
             "return rx @ ry @ rz", "return rz @ ry @ rx",
             science("test_sadm_matching_loss_rotates_and_pairs_class_k_with_class_k"),
             "the Euler rotation composed as Rz Ry Rx instead of Rx Ry Rz"),
    # -- the multi-bandwidth MMD of SADM and 3DDP ------------------------------------------------------------------
    Mutation("sadm-iteration-reversed-batches", "ddbench/methods/sadm.py",
             "reals = self.real_batches(ctx, self.config.real_batch, gen)",
             "reals = self.real_batches(ctx, self.config.real_batch, gen)[::-1]",
             science("test_each_class_moves_toward_its_own_real_clouds[sadm]"),
             "SADM's iteration hands class k the batch of class K-1-k"),
    Mutation("sadm-chunked-step-ascends", "ddbench/methods/iterative.py",
             "            if opts:\n                loss.backward()", "            if opts:\n                (-loss).backward()",
             science("test_each_method_learns_through_the_runners_code_path[sadm]"),
             "the class-chunked step (SADM) climbs its loss"),
    Mutation("mmd-bandwidth-not-detached", "ddbench/methods/losses.py",
             ".detach().clamp_min(1e-12)", ".clamp_min(1e-12)",
             science("test_multi_bandwidth_mmd_equals_the_formula_in_value_and_gradient"),
             "the MMD bandwidth h receives gradients"),
    Mutation("mmd-cross-term-halved", "ddbench/methods/losses.py",
             "return k[:n, :n].mean() - 2 * k[:n, n:].mean() + k[n:, n:].mean()",
             "return k[:n, :n].mean() - k[:n, n:].mean() + k[n:, n:].mean()",
             science("test_multi_bandwidth_mmd_equals_the_formula_in_value_and_gradient"),
             "MMD^2 without the factor 2 on the cross term"),
    Mutation("mmd-scales", "ddbench/methods/losses.py",
             "MMD_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)", "MMD_SCALES = (0.5, 1.0, 2.0, 4.0, 8.0)",
             science("test_multi_bandwidth_mmd_equals_the_formula_in_value_and_gradient"), "other kernel bandwidths"),
    Mutation("mmd-distance-lower-block-dropped", "ddbench/methods/losses.py",
             "torch.cat([x_y.t(), y @ y.t()], 1)", "torch.cat([torch.zeros_like(x_y.t()), y @ y.t()], 1)",
             ("tests/test_matching_methods.py::"
              "test_two_sample_distances_equal_pairwise_differences_and_skip_the_real_side_gradient",
              *science("test_multi_bandwidth_mmd_equals_the_formula_in_value_and_gradient")),
             "the two-sample distance matrix loses its y-x block (the bandwidth h is then wrong)"),
    Mutation("rows-by-class-assumes-grouped", "ddbench/methods/iterative.py",
             "if len(labels) == len(rows) and torch.equal(labels, grouped):", "if len(labels) == len(rows):",
             ("tests/test_matching_methods.py::test_rows_by_class_equal_boolean_masks_in_value_and_gradient",),
             "per-class rows are cut as consecutive slices even when the labels are not grouped by class"),
    # -- DM --------------------------------------------------------------------------------------------------------
    Mutation("dm-pairs-class-0", "ddbench/methods/dm.py",
             "real_global_features(net, reals[k])", "real_global_features(net, reals[0])",
             science("test_dm_matching_loss_pairs_class_k_with_class_k"),
             "DM matches every class against class 0's real batch (the issue's bug)"),
    Mutation("dm-distance-not-squared", "ddbench/methods/dm.py",
             "return ((real_global.mean(0) - syn_global.mean(0)) ** 2).sum()",
             "return (real_global.mean(0) - syn_global.mean(0)).abs().sum()",
             science("test_dm_class_loss_equals_the_formula"), "DM's L1 instead of squared distance"),
    Mutation("dm-iteration-reversed-batches", "ddbench/methods/dm.py",
             "loss = self.matching_loss(ctx, state, net, self.real_batches(ctx, cfg.real_batch, gen))",
             "loss = self.matching_loss(ctx, state, net, self.real_batches(ctx, cfg.real_batch, gen)[::-1])",
             science("test_each_class_moves_toward_its_own_real_clouds[dm]"),
             "DM's iteration hands class k the batch of class K-1-k"),
    # -- DC's layer-wise distance and pairing, DD3D's objective -----------------------------------------------------
    Mutation("dm-iteration-ascends", "ddbench/methods/dm.py",
             "self.optimiser_step(state, loss)", "self.optimiser_step(state, -loss)",
             science("test_each_method_learns_through_the_runners_code_path[dm]"), "DM's iteration climbs its loss"),
    Mutation("dc-pairs-class-0", "ddbench/methods/gradient_matching.py",
             "real = reals[k]", "real = reals[0]",
             science("test_dc_matching_loss_pairs_class_k_with_class_k"),
             "DC matches every class against class 0's real batch"),
    Mutation("dc-synthetic-label-shifted", "ddbench/methods/gradient_matching.py",
             "y_syn = torch.full((len(syn),), k, device=syn.device)",
             "y_syn = torch.full((len(syn),), (k + 1) % len(reals), device=syn.device)",
             science("test_dc_matching_loss_pairs_class_k_with_class_k"),
             "DC's synthetic cross-entropy uses the next class's label"),
    Mutation("dc-biases-counted", "ddbench/methods/losses.py",
             "if gs is None or gr is None or gs.dim() == 1:", "if gs is None or gr is None:",
             science("test_dc_layerwise_distance_equals_the_formula"),
             "1-D tensors (biases, norm weights) enter the layer-wise distance"),
    Mutation("dc-whole-tensor-cosine", "ddbench/methods/losses.py",
             "gr2, gs2 = gr.reshape(gr.shape[0], -1), gs.reshape(gs.shape[0], -1)",
             "gr2, gs2 = gr.reshape(1, -1), gs.reshape(1, -1)",
             science("test_dc_layerwise_distance_equals_the_formula"),
             "one cosine per tensor instead of one per output channel"),
    Mutation("dd3d-objective-labels", "ddbench/methods/gradient_matching.py",
             "return gradient_matching_loss(net, clouds, state.labels, reals, classes)",
             "return gradient_matching_loss(net, clouds, state.labels.roll(1), reals, classes)",
             science("test_dd3d_objective_is_gradient_matching_of_its_generated_clouds"),
             "DD3D's objective pairs the generator's clouds with the wrong classes"),
    Mutation("dd3d-lr-step", "ddbench/methods/dd3d.py",
             "step_size=max(1, cfg.iterations // 2), gamma=0.1)", "step_size=max(1, cfg.iterations // 3), gamma=0.1)",
             science("test_dd3d_lr_is_multiplied_by_a_tenth_at_half_of_the_iterations"),
             "DD3D's lr x0.1 at a third instead of half of the iterations"),
    Mutation("dd3d-iteration-ascends", "ddbench/methods/dd3d.py",
             "            self.optimiser_step(state, loss)\n", "            self.optimiser_step(state, -loss)\n",
             science("test_each_method_learns_through_the_runners_code_path[dd3d]"),
             "DD3D's iteration climbs its loss"),
    Mutation("dc-iteration-ascends", "ddbench/methods/gradient_matching.py",
             "            self.optimiser_step(state, loss)\n", "            self.optimiser_step(state, -loss)\n",
             science("test_each_method_learns_through_the_runners_code_path[dc]"),
             "the gradient-matching iteration (DC) climbs its loss"),
    # -- 3DDP: weights, uniformity penalty, the loss, morphs, pairing -------------------------------------------------
    Mutation("dc-iteration-reversed-batches", "ddbench/methods/gradient_matching.py",
             "loss = gradient_matching_loss(net, clouds, state.labels, self.real_batches(ctx, cfg.real_batch, gen))",
             "loss = gradient_matching_loss(net, clouds, state.labels, self.real_batches(ctx, cfg.real_batch, gen)[::-1])",
             science("test_each_class_moves_toward_its_own_real_clouds[dc]"),
             "DC's iteration hands class k the batch of class K-1-k"),
    Mutation("dd3d-iteration-reversed-batches", "ddbench/methods/dd3d.py",
             "            reals = self.real_batches(ctx, cfg.real_batch, gen)\n",
             "            reals = self.real_batches(ctx, cfg.real_batch, gen)[::-1]\n",
             science("test_each_class_moves_toward_its_own_real_clouds[dd3d]"),
             "DD3D's iteration hands class k the batch of class K-1-k"),
    Mutation("3ddp-weights-without-0.8", "ddbench/methods/ddp3d.py",
             "return 0.8 * eta / eta.sum()", "return eta / eta.sum()",
             science("test_3ddp_partition_weights_equal_the_formula"), "partition weights eta / sum eta"),
    Mutation("3ddp-eta-sharpness", "ddbench/methods/ddp3d.py",
             "eta = torch.exp(-1000 * (", "eta = torch.exp(-100 * (",
             science("test_3ddp_partition_weights_equal_the_formula"), "eta = exp(-100 ...) instead of exp(-1000 ...)"),
    Mutation("3ddp-penalty-off-weights", "ddbench/methods/ddp3d.py",
             "return torch.full((m,), 0.8 / m)", "return torch.full((m,), 1.0 / m)",
             science("test_3ddp_partition_weights_equal_the_formula"), "without the penalty, weights 1/M not 0.8/M"),
    Mutation("3ddp-penalty-switch-ignored", "ddbench/methods/ddp3d.py",
             "    if not penalty:\n        return torch.full(", "    if False:\n        return torch.full(",
             science("test_3ddp_partition_weights_equal_the_formula", "test_3ddp_matching_loss_equals_the_formula"),
             "uniformity_penalty = false still weights by uniformity"),
    Mutation("3ddp-uniformity-neighbours", "ddbench/methods/ddp3d.py",
             "idx = knn(points, points, min(k, points.shape[1]))", "idx = knn(points, points, min(k - 4, points.shape[1]))",
             science("test_3ddp_uniformity_and_partitions_equal_the_formula"), "uniformity over 12 neighbours, not 16"),
    Mutation("3ddp-partitions-overlap", "ddbench/methods/ddp3d.py",
             "keep.scatter_(1, idx[:, :size], False)", "keep.scatter_(1, idx[:, :1], False)",
             science("test_3ddp_uniformity_and_partitions_equal_the_formula"),
             "a partition's points stay in the pool of the next partitions"),
    Mutation("3ddp-no-divide-by-10", "ddbench/methods/ddp3d.py",
             "return loss / 10", "return loss",
             science("test_3ddp_matching_loss_equals_the_formula"), "3DDP's loss not divided by 10"),
    Mutation("3ddp-signed-synthetic-features", "ddbench/methods/ddp3d.py",
             "syn_feats = sort_pointwise(net(syn).point_features.abs())",
             "syn_feats = sort_pointwise(net(syn).point_features)",
             science("test_3ddp_matching_loss_equals_the_formula"), "synthetic features not taken in absolute value"),
    Mutation("3ddp-morph-softmax-axis", "ddbench/methods/ddp3d.py",
             "return torch.softmax(state.logits, dim=-1)", "return torch.softmax(state.logits, dim=-2)",
             science("test_3ddp_matching_loss_equals_the_formula"), "morph weights normalised over morphs, not anchors"),
    Mutation("3ddp-pairs-first-class", "ddbench/methods/ddp3d.py",
             "for k, syn_k in zip(classes, rows_by_class(syn_feats, syn_labels, classes), strict=True):",
             "for k, syn_k in zip(classes, [syn_feats[syn_labels == classes[0]]] * len(classes), strict=True):",
             science("test_3ddp_matching_loss_equals_the_formula"),
             "3DDP matches every real batch against the first class's synthetic clouds"),
    Mutation("3ddp-iteration-reversed-batches", "ddbench/methods/ddp3d.py",
             "sides = self.cached_real_sides(ctx, indices, reals)",
             "sides = self.cached_real_sides(ctx, indices, reals)[::-1]",
             science("test_each_class_moves_toward_its_own_real_clouds[3ddp]"),
             "3DDP's iteration hands class k the batch of class K-1-k"),
    # -- coreset rules -------------------------------------------------------------------------------------------------
    Mutation("3ddp-chunked-step-ascends", "ddbench/methods/iterative.py",
             "            if opts:\n                loss.backward()", "            if opts:\n                (-loss).backward()",
             science("test_each_method_learns_through_the_runners_code_path[3ddp]"),
             "the class-chunked step (3DDP) climbs its loss"),
    Mutation("herding-argmax", "ddbench/methods/coreset.py",
             "i = int(dist.argmin())", "i = int(dist.argmax())",
             ("tests/test_coreset.py",), "herding takes the argmax (the public library's mistake)"),
    Mutation("kcenter-first-farthest", "ddbench/methods/coreset.py",
             "first = int(((feats - feats.mean(0)) ** 2).sum(1).argmin())",
             "first = int(((feats - feats.mean(0)) ** 2).sum(1).argmax())",
             ("tests/test_coreset.py",), "k-center starts from the cloud farthest from the mean"),
    Mutation("kcenter-nearest", "ddbench/methods/coreset.py",
             "i = int(nearest_masked.argmax())", "i = int(nearest_masked.argmin())",
             ("tests/test_coreset.py",), "k-center adds the nearest instead of the farthest cloud"),
    # -- evaluation protocols ----------------------------------------------------------------------------------------
    Mutation("epochs-one-short", "ddbench/evaluation/trainer.py",
             "for epoch in range(cfg.epochs):", "for epoch in range(cfg.epochs - 1):",
             science("test_every_epoch_trains_on_every_cloud_once"), "the last training epoch is skipped"),
    Mutation("lr-step-one-epoch-late", "ddbench/evaluation/trainer.py",
             "if cfg.step_epoch is not None and epoch + 1 >= cfg.step_epoch:",
             "if cfg.step_epoch is not None and epoch >= cfg.step_epoch:",
             science("test_sadm_protocol_recreates_the_optimiser_at_the_lr_step"), "the lr step one epoch late"),
    Mutation("optimiser-not-recreated", "ddbench/evaluation/trainer.py",
             "            opt = make_optimizer(cfg, net.parameters(), new_lr)\n",
             "            opt.param_groups[0]['lr'] = new_lr\n",
             science("test_sadm_protocol_recreates_the_optimiser_at_the_lr_step"),
             "the step keeps the optimiser (momentum) instead of re-creating it"),
    Mutation("step-always-recreates", "ddbench/evaluation/trainer.py",
             'if cfg.schedule == "step" and cfg.recreate_optimizer_at_step:', 'if cfg.schedule == "step":',
             science("test_without_recreation_the_step_only_changes_the_lr"),
             "recreate_optimizer_at_step = false still re-creates the optimiser"),
    Mutation("recreation-default-off", "ddbench/evaluation/protocols.py",
             "recreate_optimizer_at_step: bool = Field(\n        True,", "recreate_optimizer_at_step: bool = Field(\n        False,",
             science("test_sadm_protocol_recreates_the_optimiser_at_the_lr_step"),
             "the sadm protocol does not re-create the optimiser at the step"),
    Mutation("cosine-period", "ddbench/evaluation/trainer.py",
             "(1 + math.cos(math.pi * epoch / period))", "(1 + math.cos(math.pi * epoch / (2 * period)))",
             science("test_dd3d_protocol_follows_the_cosine_schedule_with_one_optimiser"),
             "the cosine schedule decays over twice the epochs"),
    Mutation("renormalisation-skipped", "ddbench/evaluation/trainer.py",
             "    if not cfg.renormalize_synthetic:\n", "    if True:\n",
             science("test_renormalisation_of_a_scaled_synthetic_set"),
             "the synthetic clouds are never re-normalised"),
    Mutation("renormalisation-default-off", "ddbench/evaluation/protocols.py",
             'renormalize_synthetic: bool = Field(True, description="re-normalise synthetic clouds to the unit sphere")',
             'renormalize_synthetic: bool = Field(False, description="re-normalise synthetic clouds to the unit sphere")',
             science("test_renormalisation_of_a_scaled_synthetic_set"),
             "the sadm protocol does not re-normalise the synthetic clouds"),
    Mutation("best-epoch-under-final", "ddbench/evaluation/trainer.py",
             ('        if cfg.selection == "best_test":\n            oa, macc, per_class = test_net(',
              '    if cfg.selection == "best_test":\n        oa, macc, per_class, selected = best'),
             ("        if True:\n            oa, macc, per_class = test_net(",
              "    if True:\n        oa, macc, per_class, selected = best"),
             science("test_final_selection_tests_once_after_the_last_epoch_and_reports_that_net"),
             "the best test epoch is reported under the default final selection (the issue's bug)"),
    # -- the frozen-BN warm-up -----------------------------------------------------------------------------------------
    Mutation("best-test-never-tested", "ddbench/evaluation/trainer.py",
             '        if cfg.selection == "best_test":\n            oa, macc, per_class = test_net(',
             "        if False:\n            oa, macc, per_class = test_net(",
             science("test_best_test_selection_tests_after_every_epoch"),
             "best_test selection never scores the epochs"),
    Mutation("bn-left-in-train-mode", "ddbench/backbones/utils.py",
             "        if isinstance(module, _BN):\n            module.eval()",
             "        if isinstance(module, _BN):\n            module.train()",
             science("test_the_methods_warm_fresh_networks_up_as_the_specification_says"),
             "BatchNorm stays in train mode after the warm-up"),
    Mutation("bn-warmup-pass-in-eval-mode", "ddbench/backbones/utils.py",
             "    net.train()\n    with torch.no_grad():\n        net(batch, *inputs)",
             "    net.eval()\n    with torch.no_grad():\n        net(batch, *inputs)",
             science("test_the_methods_warm_fresh_networks_up_as_the_specification_says"),
             "the warm-up pass runs in eval mode: running statistics never see the batch"),
    Mutation("warmed-net-without-warmup", "ddbench/methods/iterative.py",
             "        net.warm_up_batchnorm(warmup, needs=self.needs)\n", "        pass\n",
             science("test_the_methods_warm_fresh_networks_up_as_the_specification_says"),
             "methods' fresh networks skip the warm-up"),
    # -- atomic writes and resumption ----------------------------------------------------------------------------------
    Mutation("atomic-write-in-place", "ddbench/io.py",
             '        yield tmp\n        with open(tmp, "rb") as fh:\n            os.fsync(fh.fileno())\n'
             "        os.replace(tmp, path)",
             "        yield path",
             ("tests/test_resume_kill.py::test_an_atomic_write_killed_midway_keeps_the_old_file",),
             "atomic_path writes the file in place instead of a temporary file and a rename"),
    Mutation("resume-loses-the-data-generator", "ddbench/methods/iterative.py",
             'gen.set_state(saved["generator"])', "gen.manual_seed(ctx.seed)",
             ("tests/test_resume_kill.py::test_a_killed_distillation_resumes_to_the_uninterrupted_artifact[dc]",),
             "a resumed distillation restarts its real-batch generator instead of restoring it"),
    Mutation("resume-keeps-fresh-optimisers", "ddbench/methods/iterative.py",
             "                target.load_state_dict(value)", "                pass",
             ("tests/test_resume_kill.py::test_a_killed_distillation_resumes_to_the_uninterrupted_artifact[3ddp]",),
             "a resumed distillation does not restore its optimisers (momentum) and modules"),
    Mutation("resume-keeps-a-fresh-generator", "ddbench/methods/iterative.py",
             "                target.load_state_dict(value)", "                pass",
             ("tests/test_resume_kill.py::test_a_killed_distillation_resumes_to_the_uninterrupted_artifact[dd3d]",),
             "a resumed DD3D starts from a fresh generator, optimiser and lr schedule"),
    # -- the fused BatchNorm + max-pool of PointNet's evaluation training ---------------------------------------
    Mutation("fused-pool-slope-sign", "ddbench/backbones/fused_pool.py",
             "slope = -scale * grad_bn_weight * inv_std / count", "slope = scale * grad_bn_weight * inv_std / count",
             ("tests/test_fused_pool.py",), "the fused BN backward with the variance term's sign flipped"),
    Mutation("fused-pool-biased-running-var", "ddbench/backbones/fused_pool.py",
             "bn.running_var.lerp_(var * (count / max(count - 1, 1)), factor)", "bn.running_var.lerp_(var, factor)",
             ("tests/test_fused_pool.py",), "the fused BN tracks the biased instead of the unbiased variance"),
    Mutation("fused-pool-min-not-taken", "ddbench/backbones/fused_pool.py",
             "sign = torch.where(bn.weight.detach() >= 0, 1.0, -1.0)", "sign = torch.ones_like(bn.weight.detach())",
             ("tests/test_fused_pool.py",), "the fused pool takes the max where a negative BN weight needs the min"),
    Mutation("fused-pool-no-gram-term", "ddbench/backbones/fused_pool.py",
             "grad_weight = (slope.unsqueeze(1) * (weight @ gram) + ", "grad_weight = (0 * (weight @ gram) + ",
             ("tests/test_fused_pool.py",), "the fused backward drops the conv weight's gradient through the variance"),
    Mutation("fused-pool-maxima-to-wrong-cloud", "ddbench/backbones/fused_pool.py",
             "where = at + torch.arange(batch, device=at.device).unsqueeze(0) * (count // batch)",
             "where = at + 0 * torch.arange(batch, device=at.device).unsqueeze(0)",
             ("tests/test_fused_pool.py",), "the fused backward sends every cloud's maximum term to the first cloud"),
    Mutation("warm-up-statistics-uncentred", "ddbench/backbones/fused_pool.py",
             "    covariance = columns @ columns.t() / (batch * points)\n",
             "    covariance = (columns + x_mean.view(-1, 1)) @ (columns + x_mean.view(-1, 1)).t() / (batch * points)\n",
             ("tests/test_fused_pool.py",), "the statistics-only warm-up takes the raw second moment for the variance"),
    Mutation("warm-up-head-kept-silently", "ddbench/backbones/pointnet.py",
             "                module.running_mean.fill_(float(\"nan\"))\n", "                pass\n",
             ("tests/test_fused_pool.py",), "the skipped head keeps initial statistics instead of NaN"),
    Mutation("frozen-fold-statistics-swapped", "ddbench/backbones/fused_pool.py",
             "return _fold(conv, bn, bn.running_mean, bn.running_var)",
             "return _fold(conv, bn, bn.running_var, bn.running_mean)",
             ("tests/test_fused_pool.py",), "the folded frozen BN takes the running variance for the mean and back"),
    Mutation("warm-up-layer-running-statistics", "ddbench/backbones/fused_pool.py",
             "kernel, shift = _fold(conv, bn, mean, var)",
             "kernel, shift = _fold(conv, bn, bn.running_mean, bn.running_var)",
             ("tests/test_fused_pool.py",), "the warm-up layer normalises with the running statistics, not the batch's"),
    Mutation("warm-up-layer-relu-dropped", "ddbench/backbones/fused_pool.py",
             "return pooled.clamp_min_(0) if relu else pooled", "return pooled",
             ("tests/test_fused_pool.py",), "the warm-up layer forgets the T-Net's ReLU"),
    Mutation("argmax-last-occurrence", "ddbench/ops/argmax.py",
             "np.argmax(rows[lo:hi], axis=1, out=where[lo:hi])",
             "np.subtract(rows.shape[1] - 1, np.argmax(rows[lo:hi, ::-1], axis=1), out=where[lo:hi])",
             ("tests/test_argmax_ops.py",), "the CPU argmax returns the last of tied maxima, not the first"),
    Mutation("argmax-first-half-only", "ddbench/ops/argmax.py",
             "by_blocks(len(rows), block, threads, rows_per_block=-(-len(rows) // threads))",
             "by_blocks(len(rows) // 2, block, threads, rows_per_block=-(-len(rows) // threads))",
             ("tests/test_argmax_ops.py",), "the CPU argmax fills only the first half of its rows"),
    Mutation("argmax-values-from-the-first-point", "ddbench/ops/argmax.py",
             "return values.gather(-1, index.unsqueeze(-1)).squeeze(-1), index",
             "return values.gather(-1, index.unsqueeze(-1).clamp_max(0)).squeeze(-1), index",
             ("tests/test_argmax_ops.py",), "the CPU max reads every row's first point, not its maximum"),
    Mutation("frozen-fold-kernel-keeps-gradient", "ddbench/backbones/fused_pool.py",
             "return weight.detach().squeeze(-1), shift.detach()", "return weight.squeeze(-1), shift",
             ("tests/test_fused_pool.py",), "the folded kernel of a trained network stays a Parameter (slow matmul path)"),
    Mutation("frozen-fold-last-chunk-dropped", "ddbench/backbones/fused_pool.py",
             "    for lo in range(0, x.shape[0], chunk):\n        torch.amax(",
             "    for lo in range(0, x.shape[0] - chunk, chunk):\n        torch.amax(",
             ("tests/test_fused_pool.py",), "the frozen fused layer never reduces its last chunk of clouds"),
    Mutation("frozen-tnet-relu-dropped", "ddbench/backbones/pointnet.py",
             "self.convs[6:](hidden).amax(dim=2) if g is None else torch.relu(g)",
             "self.convs[6:](hidden).amax(dim=2) if g is None else g",
             ("tests/test_fused_pool.py",), "the T-Net's frozen fused layer forgets the ReLU between BN and max"),
    Mutation("dm-real-first-chunk-only", "ddbench/methods/dm.py",
             "for part in clouds.split(REAL_CLOUDS_PER_CHUNK)])", "for part in clouds.split(REAL_CLOUDS_PER_CHUNK)[:1]])",
             ("tests/test_science.py",), "DM's chunked real side keeps only its first chunk of clouds"),
    Mutation("frozen-points-gradient-to-first-point", "ddbench/backbones/fused_pool.py",
             "        at = (where + torch.arange(batch, device=where.device).unsqueeze(1) * points).reshape(-1)\n",
             "        at = (where * 0 + torch.arange(batch, device=where.device).unsqueeze(1) * points).reshape(-1)\n",
             ("tests/test_fused_pool.py",), "the frozen fused layer sends every maximum's gradient to each cloud's first point"),
    Mutation("frozen-points-ties-ignored", "ddbench/backbones/fused_pool.py",
             "    if bool(tied):\n        return None\n", "    if False:\n        return None\n",
             ("tests/test_fused_pool.py",), "tied maxima get the one-point gradient instead of amax's split"),
    Mutation("run-listings-not-stored", "ddbench/cli/app.py",
             "    _store_listings()\n    if failed:", "    if failed:",
             ("tests/test_cli.py",), "a run no longer stores the listings, so the first ddbench list rebuilds them"),
    Mutation("threaded-argsort-ascending", "ddbench/ops/sort.py",
             "        out[lo:hi] = np.argsort(-rows[lo:hi], axis=1)\n", "        out[lo:hi] = np.argsort(rows[lo:hi], axis=1)\n",
             ("tests/test_sort_ops.py",), "the threaded argsort sorts ascending"),
    Mutation("fused-pool-input-maxima-term-scaled", "ddbench/backbones/fused_pool.py",
             "(weight.unsqueeze(1) * at.unsqueeze(2)).reshape(-1, weight.shape[1]))",
             "(weight.unsqueeze(1) * at.unsqueeze(2) * 0.999).reshape(-1, weight.shape[1]))",
             ("tests/test_fused_pool.py",), "the fused backward's input gradient takes 0.999 of the maxima's terms"),
    Mutation("glibc-tuned-keeps-tcache", "ddbench/cli/allocator.py",
             ':glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0"', ':glibc.malloc.mxfast=0"',
             ("tests/test_allocator.py",), "glibc's tuning without tcache_count=0: freed large tensors are not reused"),
]


def make_copy(root: Path) -> Path:
    """A copy of what the tests need, without bytecode caches."""
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, root / name)
    return root


def patched(text: str, mutation: Mutation) -> tuple[str | None, str]:
    """(the mutated text or None, why not)."""
    for old, new in mutation.edits():
        count = text.count(old)
        if count != 1:
            where = "not found" if count == 0 else f"found {count} times"
            return None, f"old text {where} in {mutation.file}:\n---\n{old}\n---"
        text = text.replace(old, new)
    return text, ""


def check_applies(mutations: list[Mutation]) -> list[tuple[Mutation, str]]:
    problems = []
    for m in mutations:
        path = REPO / m.file
        if not path.exists():
            problems.append((m, f"{m.file} does not exist"))
            continue
        text, why = patched(path.read_text(), m)
        if text is None:
            problems.append((m, why))
        for test in m.tests:
            if not (REPO / test.split("::")[0]).exists():
                problems.append((m, f"test file of {test} does not exist"))
    return problems


def pytest(copy: Path, tests: list[str], timeout: float, stop_first: bool = True) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           *(["-x"] if stop_first else []), *tests]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        return proc.returncode, (proc.stdout + proc.stderr)[-3000:], time.perf_counter() - start
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        return -1, out[-3000:] + "\n(timed out)", time.perf_counter() - start


def failure_reason(output: str) -> str:
    """The failing test and its first error line, from pytest's -q output."""
    lines = output.splitlines()
    failed = next((ln for ln in lines if ln.startswith(("FAILED", "ERROR"))), "")
    error = next((ln.strip() for ln in lines if ln.startswith("E ")), "")
    return f"{failed[:160]}\n{'':16s}{error[:160]}" if error else failed[:160]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    parser.add_argument("--check", action="store_true", help="only check that every patch applies")
    parser.add_argument("--only", action="append", default=[], help="run only these mutations (repeatable)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the tests")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per pytest run")
    parser.add_argument("--verbose", action="store_true", help="print the failing test of every caught mutation")
    args = parser.parse_args(argv)

    mutations = [m for m in MUTATIONS if not args.only or m.name in args.only]
    unknown = set(args.only) - {m.name for m in MUTATIONS}
    if unknown:
        print(f"unknown mutations: {', '.join(sorted(unknown))}")
        return 2
    if args.list:
        for m in mutations:
            print(f"{m.name:34s} {m.file:40s} {m.description}\n{'':34s} tests: {' '.join(m.tests)}")
        print(f"{len(mutations)} mutations")
        return 0
    problems = check_applies(mutations)
    for m, why in problems:
        print(f"PATCH DOES NOT APPLY: {m.name}: {why}")
    if args.check or problems:
        print(f"{len(mutations) - len({m.name for m, _ in problems})}/{len(mutations)} patches apply")
        return 1 if problems else 0

    with tempfile.TemporaryDirectory(prefix="ddbench-mutants-") as tmp:
        copy = make_copy(Path(tmp))
        if not args.no_baseline:
            tests = sorted({t for m in mutations for t in m.tests})
            rc, out, seconds = pytest(copy, tests, args.timeout * 3, stop_first=False)
            print(f"baseline: {len(tests)} test selections, {'pass' if rc == 0 else 'FAIL'} ({seconds:.0f}s)")
            if rc != 0:
                print(out)
                print("the tests fail without any mutation: fix them before trusting this check")
                return 1
        caught, survivors, errors = 0, [], []
        for i, m in enumerate(mutations, 1):
            path = copy / m.file
            original = path.read_text()
            text, why = patched(original, m)
            path.write_text(text)
            try:
                rc, out, seconds = pytest(copy, list(m.tests), args.timeout)
            finally:
                path.write_text(original)
            if rc == 1:
                caught += 1
                verdict = "caught"
            elif rc == 0:
                survivors.append(m)
                verdict = "SURVIVED"
            else:
                errors.append((m, rc, out))
                verdict = f"ERROR (pytest exit {rc})"
            print(f"[{i:2d}/{len(mutations)}] {verdict:10s} {m.name} ({seconds:.0f}s)", flush=True)
            if verdict == "caught" and args.verbose:
                print(f"{'':16s}{failure_reason(out)}", flush=True)
        print(f"\nscore: {caught}/{len(mutations)} mutations caught")
        for m in survivors:
            print(f"SURVIVOR: {m.name} ({m.file}): {m.description}; tests {' '.join(m.tests)}")
        for m, rc, out in errors:
            print(f"ERROR: {m.name}: pytest exited {rc} (not a clean test failure):\n{out}")
        return 0 if caught == len(mutations) else 1


if __name__ == "__main__":
    sys.exit(main())
