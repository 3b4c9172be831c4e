"""The part-segmentation task end to end (docs/segmentation.md): the task axis and its one-line errors, the
dd3d_seg protocol (its reference settings, and that it learns), every segmentation method in the grid on the
built-in data with artifacts that `ddbench eval` scores without the method's code, DD3D's part labels from noise,
the segmentation losses against independent computations, and the DD3D Table 2 layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddbench.backbones.base import BackboneFactory
from ddbench.backbones.pointnet_seg import PointNetSeg
from ddbench.backbones.tasks import SegmentationTask
from ddbench.cells.record import load_record
from ddbench.errors import ConfigError, DataError
from ddbench.evaluation.seg_metrics import segmentation_metrics
from ddbench.evaluation.segmentation import DD3DSegProtocol, train_segmentation_net
from ddbench.evaluation.trainer import lr_for_epoch
from ddbench.methods.dd3d_seg import RELEASED_PROPORTIONS, parts_from_noise
from ddbench.methods.segmentation import RealSegBatch, _ce, seg_matching_loss
from ddbench.pipeline import ExperimentConfig, plan_grid, run_grid
from ddbench.pipeline.run import EvalRequest, evaluate_one
from ddbench.synthetic.artifact import load_artifact

TINY = {"points": 64, "train_per_class": 4, "test_per_class": 2}
#: every segmentation method at the smallest budget that still runs each part of its loop
FAST_METHODS = {
    "herding": {"embedding_epochs": 1}, "kcenter": {"embedding_epochs": 1},
    "dc": {"iterations": 1, "outer_loop": 2, "inner_loop": 1, "real_batch": 2, "warmup_per_class": 2},
    "dd3d": {"iterations": 1, "outer_loop": 2, "inner_loop": 1, "real_batch": 2, "warmup_per_class": 2,
             "train_points": 64, "eval_points": 64},
}


def seg_experiment(tmp_path, **values) -> ExperimentConfig:
    base = {"task": "segmentation", "datasets": ["shapes"], "methods": ["random"], "ppc": [1], "eval_nets": 1,
            "epochs": 2, "device": "cpu", "results": str(tmp_path / "runs"),
            "dataset_config": {"shapes": dict(TINY)}, "method_config": FAST_METHODS}
    return ExperimentConfig.model_validate({**base, **values})


def shapes_task(points=64, per_class=4):
    from ddbench.data.shapes import Shapes

    data = Shapes(Shapes.Config(points=points, train_per_class=per_class, test_per_class=max(2, per_class // 2)))
    return data, SegmentationTask.for_dataset(data)


# -- the task axis ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values, needle", [
    ({"methods": ["dm"]}, "method dm does not support task segmentation; methods that do:"),
    ({"eval_backbones": ["pointnet"]}, "backbone pointnet does not support task segmentation"),
    ({"protocol": "sadm"}, "protocol sadm does not support task segmentation"),
    ({"task": "detection"}, "unknown task 'detection'"),
])
def test_an_unsupported_combination_is_a_one_line_error_before_the_grid(tmp_path, values, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        plan_grid(seg_experiment(tmp_path, **values))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "runs").exists()


def test_a_dataset_without_part_labels_is_refused(tmp_path, modelnet10_root):
    with pytest.raises(ConfigError, match="dataset modelnet10 does not support task segmentation; datasets that do: "
                                          "shapenetpart, shapes"):
        plan_grid(seg_experiment(tmp_path, datasets=["modelnet10"], data_root=str(modelnet10_root)))


def test_the_task_picks_its_protocol_networks_and_enters_the_cell_id(tmp_path):
    (cell,) = plan_grid(seg_experiment(tmp_path, methods=["herding"]))
    assert (cell.spec.task, cell.spec.protocol, cell.spec.eval_backbone, cell.spec.distill_backbone) == \
        ("segmentation", "dd3d_seg", "pointnet_seg", "pointnet_seg")
    assert cell.cell_id.startswith("segmentation__shapes__herding__ppc1")
    classification = plan_grid(ExperimentConfig(datasets=["shapes"], methods=["herding"],
                                                dataset_config={"shapes": dict(TINY)}))[0]
    assert "task" not in classification.spec.identity()  # classification ids are those of every earlier release
    assert classification.spec.protocol == "sadm"


# -- the protocol --------------------------------------------------------------------------------------------------


def test_the_dd3d_seg_protocol_is_the_released_evaluate_segment():
    cfg = DD3DSegProtocol.Config()
    assert (cfg.backbone, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch_size) == \
        ("pointnet_seg", "sgd", 1e-2, 0.9, 1e-2, 32)
    assert cfg.epochs == 1001 and cfg.augmentation == "none" and not cfg.renormalize_synthetic
    assert cfg.selection == "final"
    # CosineAnnealingLR(T_max=1000, eta_min=1e-3) stepped once per epoch over range(1001)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 1000, eta_min=1e-3)
    for epoch in range(1001):
        assert math.isclose(lr_for_epoch(cfg, epoch), opt.param_groups[0]["lr"], rel_tol=1e-9), epoch
        opt.step()
        sched.step()
    table8 = DD3DSegProtocol.make_config({"validation": "table8"})
    assert (table8.optimizer, table8.lr, table8.batch_size, table8.epochs) == ("adam", 1e-3, 8, 200)
    assert DD3DSegProtocol.make_config({"validation": "table8", "epochs": 50}).epochs == 50


def chance_instance_miou(test, task: SegmentationTask, draws: int = 5) -> float:
    """Instance mIoU of predictions drawn uniformly among each shape's category parts."""
    gen = torch.Generator().manual_seed(0)
    scores = []
    for _ in range(draws):
        pred = torch.empty_like(test.point_labels)
        for i, c in enumerate(test.labels.tolist()):
            parts = torch.tensor(task.category_parts[c])
            pred[i] = parts[torch.randint(len(parts), (test.points.shape[1],), generator=gen)]
        scores.append(segmentation_metrics(pred, test.point_labels, test.labels,
                                           [list(p) for p in task.category_parts], list(test.class_names)).instance_miou)
    return float(np.mean(scores))


def test_the_segmentation_protocol_learns_on_the_built_in_data():
    data, task = shapes_task(points=128, per_class=8)
    train, test = data.load("train"), data.load("test")
    cfg = DD3DSegProtocol.make_config({"epochs": 30})
    net = BackboneFactory.of(PointNetSeg)
    result = train_segmentation_net(train.points, train.point_labels, train.labels, test, cfg, 1996,
                                    torch.device("cpu"), task, net)
    chance = chance_instance_miou(test, task)
    assert result.instance_miou > chance + 15, (result.instance_miou, chance)
    assert result.oa > 70 and result.class_miou > chance + 15


class _Stop(Exception):
    pass


def test_an_interrupted_segmentation_evaluation_resumes_from_the_first_unfinished_net(tmp_path):
    from ddbench.evaluation.segmentation import evaluate_segmentation
    from ddbench.synthetic.artifact import SyntheticSet

    data, task = shapes_task(points=64, per_class=2)
    train, test = data.load("train"), data.load("test")
    synth = SyntheticSet(train.points, train.labels, list(train.class_names), extras={"point_labels": train.point_labels})
    cfg = DD3DSegProtocol.make_config({"epochs": 2})
    net = BackboneFactory.of(PointNetSeg)

    def run(progress=None, synth=synth):
        return evaluate_segmentation(synth, test, cfg, [1, 2, 3], torch.device("cpu"), progress, network=net, task=task,
                                     progress_file=progress_file)

    def stop_at(index):
        def progress(i, n, e, E):
            if i == index:
                raise _Stop
        return progress

    full = evaluate_segmentation(synth, test, cfg, [1, 2, 3], torch.device("cpu"), network=net, task=task)
    progress_file = tmp_path / "cell.eval.json"
    with pytest.raises(_Stop):
        run(stop_at(2))
    assert progress_file.exists()  # nets 1 and 2 are saved
    trained = []
    resumed = run(lambda i, n, e, E: trained.append(i))
    assert set(trained) == {2} and resumed["resumed_nets"] == [1, 2]
    assert [n["instance_miou"] for n in resumed["nets"]] == [n["instance_miou"] for n in full["nets"]]
    assert resumed["instance_miou_mean"] == full["instance_miou_mean"]
    assert not progress_file.exists()
    with pytest.raises(_Stop):  # saved nets of other part labels are not reused
        run(stop_at(1))
    other = SyntheticSet(train.points, train.labels, list(train.class_names),
                         extras={"point_labels": train.point_labels.flip(1)})
    trained.clear()
    res = run(lambda i, n, e, E: trained.append(i), synth=other)
    assert set(trained) == {0, 1, 2} and "resumed_nets" not in res


# -- methods in the grid, artifacts scored without the methods' code ---------------------------------------------


@pytest.fixture(scope="module")
def seg_grid(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seggrid")
    exp = seg_experiment(tmp, methods=["random", "herding", "kcenter", "dc", "dd3d", "whole"],
                         cache_dir=str(tmp / "cache"))
    summary = run_grid(exp)
    return exp, summary, {r.method: r for r in map(load_record, (tmp / "runs" / "cells").glob("*.json"))}


def test_every_segmentation_method_runs_in_the_grid(seg_grid):
    _, summary, records = seg_grid
    assert summary.failed == 0 and set(records) == {"random", "herding", "kcenter", "dc", "dd3d", "whole"}
    for record in records.values():
        assert record.status == "ok" and record.task == "segmentation" and record.protocol == "dd3d_seg"
        res = record.results
        assert {"instance_miou_mean", "class_miou_mean"} <= set(res.model_dump())
        assert 0 <= res.nets[0].instance_miou <= 100


def test_segmentation_artifacts_carry_part_labels_and_categories(seg_grid):
    exp, _, records = seg_grid
    data, task = shapes_task()
    train = data.load("train")
    for method, record in records.items():
        synth, manifest = load_artifact(f"{exp.results}/{record.artifact['path']}")
        parts = synth.extras["point_labels"]
        assert manifest["task"] == "segmentation" and parts.shape == synth.points.shape[:2]
        for cloud_parts, category in zip(parts, synth.labels.tolist()):
            assert set(cloud_parts.tolist()) <= set(task.category_parts[category]), method
        if method in ("random", "herding", "kcenter"):  # real clouds keep their own labels
            idx = torch.tensor(synth.info["selected_indices"])
            assert torch.equal(parts, train.point_labels[idx]) and torch.equal(synth.labels, train.labels[idx])


def test_ddbench_eval_scores_a_segmentation_artifact_as_the_grid_did(seg_grid):
    exp, _, records = seg_grid
    for method in ("kcenter", "dd3d"):
        record = records[method]
        path = f"{exp.results}/{record.artifact['path']}"
        out, _, _, protocol = evaluate_one(EvalRequest(path, eval_nets=1, epochs=2, device="cpu"))
        assert protocol.name == "dd3d_seg" and out["task"] == "segmentation"
        got, want = out["results"]["nets"][0], record.results.nets[0]
        assert (got["oa"], got["instance_miou"], got["class_miou"]) == (want.oa, want.instance_miou, want.class_miou)


def test_the_segmentation_table_has_dd3d_table_2s_layout(seg_grid):
    from ddbench.pipeline import make_tables

    exp, _, records = seg_grid
    csv = make_tables(exp.results, fmt="csv", layout="segmentation")
    header = csv.splitlines()[0].split(",")
    assert [h for h in header if h.endswith("_mean")] == ["cpc1_oa_mean", "cpc1_instance_miou_mean",
                                                          "cpc1_class_miou_mean"]
    lines = {line.split(",")[0]: line for line in csv.splitlines()[1:]}
    assert set(lines) == set(records)
    whole = records["whole"].results
    assert f"{round(whole.model_dump()['instance_miou_mean'], 4)}" in lines["whole"]
    default = make_tables(exp.results, fmt="markdown")  # the default layout shows segmentation cells in theirs
    assert "CPC 1 inst. mIoU" in default


# -- DD3D's part labels and the losses ------------------------------------------------------------------------------


def test_parts_from_noise_follows_the_category_intervals():
    proportions = ((0.25, 0.75), (0.5, 0.3, 0.2))
    category_parts = ((0, 1), (2, 3, 4))
    noise = torch.tensor([[0.1, 0.25, 0.26, 0.99], [0.49, 0.5, 0.79, 0.81]]).unsqueeze(-1)
    labels = torch.tensor([0, 1])
    got = parts_from_noise(noise, labels, proportions, category_parts)
    # category 0: (0, .25] -> part 0, (.25, 1) -> part 1; category 1: (0, .5] -> 2, (.5, .8] -> 3, (.8, 1) -> 4
    assert got.tolist() == [[0, 0, 1, 1], [2, 2, 3, 4]]
    assert len(RELEASED_PROPORTIONS) == 16
    assert all(abs(sum(p) - 1) < 1e-6 for p in RELEASED_PROPORTIONS)


def test_measured_proportions_are_the_training_sets_part_fractions():
    from ddbench.methods.base import DistillContext
    from ddbench.methods.dd3d_seg import measured_proportions

    data, task = shapes_task()
    train = data.load("train")
    ctx = DistillContext(train=train, ppc=1, seed=0, device=torch.device("cpu"), task=task)
    got = measured_proportions(ctx)
    for k, parts in enumerate(task.category_parts):
        clouds = train.point_labels[train.labels == k].numpy()
        want = [np.mean([(c == p).mean() for c in clouds]) for p in parts]
        assert np.allclose(got[k], np.array(want) / sum(want))


def test_the_segmentation_loss_is_the_mean_per_point_cross_entropy():
    _, task = shapes_task()
    torch.manual_seed(0)
    net = PointNetSeg(None, task.num_parts, task.num_categories)
    points, labels = torch.randn(3, 32, 3), torch.tensor([0, 4, 9])
    parts = torch.stack([torch.tensor(task.category_parts[c])[torch.randint(len(task.category_parts[c]), (32,))]
                         for c in labels.tolist()])
    logits = net(points, labels).point_logits.double().detach().numpy()
    log_softmax = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    want = -np.mean([log_softmax[b, n, parts[b, n]] for b in range(3) for n in range(32)])
    assert math.isclose(float(task.loss(net, points, labels, parts).detach()), want, rel_tol=1e-5)
    # the per-part matching's masked loss: only the points of that part count
    masked = torch.where(parts == parts[0, 0], parts, torch.full_like(parts, -1))
    keep = (masked >= 0).numpy()
    want_masked = -np.mean([log_softmax[b, n, parts[b, n]] for b in range(3) for n in range(32) if keep[b, n]])
    assert math.isclose(float(_ce(task, net, points, labels, masked).detach()), want_masked, rel_tol=1e-5)


def test_gradient_matching_matches_category_k_with_category_k():
    _, task = shapes_task()
    torch.manual_seed(0)
    net = PointNetSeg(None, task.num_parts, task.num_categories)
    labels = torch.tensor([0, 1, 2])
    syn = torch.randn(3, 16, 3)
    parts = torch.stack([torch.full((16,), task.category_parts[c][0]) for c in labels.tolist()])
    reals = [RealSegBatch(torch.randn(2, 16, 3), torch.full((2,), k), torch.full((2, 16), task.category_parts[k][1]))
             for k in range(3)]
    base = float(seg_matching_loss(net, task, syn, labels, parts, reals, classes=[1]).detach())
    other = syn.clone()
    other[0] += 1.0
    other[2] -= 1.0  # other categories' synthetic clouds do not enter category 1's term
    assert math.isclose(float(seg_matching_loss(net, task, other, labels, parts, reals, classes=[1]).detach()), base,
                        rel_tol=1e-6)
    mine = syn.clone()
    mine[1] = torch.randn(16, 3, generator=torch.Generator().manual_seed(5))
    assert float(seg_matching_loss(net, task, mine, labels, parts, reals, classes=[1]).detach()) != pytest.approx(base)
    swapped = [reals[0], reals[2], reals[1]]  # category 1 against category 2's real batch: another value
    assert float(seg_matching_loss(net, task, syn, labels, parts, swapped, classes=[1]).detach()) != pytest.approx(base)


def test_a_classification_artifact_is_refused_by_the_segmentation_protocol(tmp_path):
    from ddbench.evaluation.segmentation import check_segmentation_inputs
    from ddbench.synthetic.artifact import SyntheticSet

    data, _ = shapes_task()
    synth = SyntheticSet(torch.randn(10, 64, 3), torch.arange(10), list(data.class_names()))
    with pytest.raises(DataError, match="no per-point part labels; distil it with --task segmentation"):
        check_segmentation_inputs(synth, data.load("test"))


def test_the_shapenetpart_experiment_file_is_dd3d_table_2s_grid():
    from pathlib import Path

    from ddbench.pipeline import build_experiment, load_experiment_file
    from ddbench.pipeline.presets import preset_class

    path = Path(__file__).resolve().parents[1] / "results" / "shapenetpart_dd3d_table2" / "experiment.toml"
    exp = build_experiment(load_experiment_file(path), {})
    grid = preset_class("dd3d2025.table2").grid
    assert (exp.task, exp.protocol, exp.datasets, exp.ppc) == ("segmentation", "dd3d_seg", ["shapenetpart"], [1, 10])
    assert exp.methods == grid["methods"] and exp.dataset_config["shapenetpart"]["points"] == 2048
