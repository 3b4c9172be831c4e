"""Part-segmentation scores (ddbench.evaluation.seg_metrics), checked on hand-computed examples and against a
brute-force computation with python sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddbench.errors import DataError
from ddbench.evaluation.seg_metrics import (
    SegmentationMetrics,
    restrict_to_category,
    segmentation_metrics,
    shape_ious,
    unrestricted_predictions,
)

#: a toy part table: category 0 ("mug") owns parts 0, 1; category 1 ("lamp") owns parts 2, 3, 4
PARTS = [[0, 1], [2, 3, 4]]
NAMES = ["mug", "lamp"]

#: ShapeNetPart's table as DD3D's utils.py writes it (seg_num, index_start): 16 categories, 50 parts
SEG_NUM = [4, 2, 2, 4, 4, 3, 3, 2, 4, 2, 6, 2, 3, 3, 3, 3]
INDEX_START = [0, 4, 6, 8, 12, 16, 19, 22, 24, 28, 30, 36, 38, 41, 44, 47]
SHAPENET_PARTS = [list(range(s, s + n)) for s, n in zip(INDEX_START, SEG_NUM)]


def test_a_perfect_prediction_scores_100():
    target = np.array([[0, 0, 1, 1], [2, 3, 4, 4], [1, 1, 1, 1]])
    cats = np.array([0, 1, 0])
    m = segmentation_metrics(target.copy(), target, cats, PARTS, NAMES)
    assert m.point_oa == 100.0 and m.instance_miou == 100.0 and m.class_miou == 100.0
    assert m.per_category == {"mug": 100.0, "lamp": 100.0}
    assert m.shapes == 3


def test_a_part_in_neither_prediction_nor_label_counts_one():
    # mug shape, all points part 0, predicted part 0: part 0 IoU 4/4 = 1; part 1 absent from both -> 1; mean 1
    # lamp shape, parts 2, 3 only, predicted exactly: parts 2, 3 IoU 1; part 4 absent from both -> 1; mean 1
    target = np.array([[0, 0, 0, 0], [2, 2, 3, 3]])
    cats = np.array([0, 1])
    assert shape_ious(target.copy(), target, cats, PARTS).tolist() == [1.0, 1.0]


def test_a_part_predicted_but_not_in_the_label_counts_zero():
    # label [0 0 0 0], prediction [0 0 0 1]
    # part 0: intersection {0,1,2} = 3, union {0,1,2,3} = 4 -> 3/4
    # part 1: intersection {} = 0, union {3} = 1 -> 0
    # shape IoU = (3/4 + 0) / 2 = 3/8; only the mug's parts count (not the lamp's parts 2, 3, 4)
    ious = shape_ious(np.array([[0, 0, 0, 1]]), np.array([[0, 0, 0, 0]]), np.array([0]), PARTS)
    assert ious.tolist() == [0.375]


def test_a_part_labelled_but_never_predicted_counts_zero():
    # lamp, label [2 2 3 4], prediction [2 2 3 3]
    # part 2: 2/2 = 1; part 3: intersection {2} = 1, union {2,3} = 2 -> 1/2; part 4: 0 / |{3}| = 0
    # shape IoU = (1 + 1/2 + 0) / 3 = 1/2
    ious = shape_ious(np.array([[2, 2, 3, 3]]), np.array([[2, 2, 3, 4]]), np.array([1]), PARTS)
    assert ious == pytest.approx([0.5])


def hand_example():
    """Three mugs and one lamp, four points each; the IoUs are worked out in the comments."""
    target = np.array([
        [0, 0, 1, 1],  # A: mug, predicted exactly -> parts 0, 1 IoU 1 -> shape 1; 4 points right
        [0, 0, 1, 1],  # B: mug, pred [0 0 0 1]: part 0 2/3, part 1 1/2 -> shape 7/12; 3 points right
        [0, 0, 0, 0],  # C: mug, pred [1 1 1 1]: part 0 0/4, part 1 0/4 -> shape 0; 0 points right
        [2, 3, 4, 4],  # D: lamp, predicted exactly -> shape 1; 4 points right
    ])
    pred = np.array([[0, 0, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1], [2, 3, 4, 4]])
    return pred, target, np.array([0, 0, 0, 1])


def test_instance_and_class_miou_differ_when_categories_have_different_shape_counts():
    pred, target, cats = hand_example()
    assert shape_ious(pred, target, cats, PARTS) == pytest.approx([1, 7 / 12, 0, 1])
    m = segmentation_metrics(pred, target, cats, PARTS, NAMES)
    # instance: (1 + 7/12 + 0 + 1) / 4 = 31/48
    assert m.instance_miou == pytest.approx(100 * 31 / 48)
    # mug: (1 + 7/12 + 0) / 3 = 19/36; lamp: 1; class: (19/36 + 1) / 2 = 55/72
    assert m.per_category == pytest.approx({"mug": 100 * 19 / 36, "lamp": 100.0})
    assert m.class_miou == pytest.approx(100 * 55 / 72)
    assert m.shapes == 4


def test_point_accuracy_counts_all_points_of_all_shapes():
    pred, target, cats = hand_example()
    # 4 + 3 + 0 + 4 = 11 right of 16 points
    assert segmentation_metrics(pred, target, cats, PARTS, NAMES).point_oa == pytest.approx(100 * 11 / 16)
    # unequal difficulty: shape 1 has 1 of 2 right, shape 2 has 2 of 2 -> 3/4 of the points
    m = segmentation_metrics(np.array([[0, 1], [2, 3]]), np.array([[0, 0], [2, 3]]), np.array([0, 1]), PARTS, NAMES)
    assert m.point_oa == pytest.approx(75.0)


def test_categories_without_test_shapes_are_left_out():
    parts, names = [[0, 1], [2, 3, 4], [5]], ["mug", "lamp", "cap"]
    pred, target, cats = hand_example()
    m = segmentation_metrics(pred, target, cats, parts, names)
    assert set(m.per_category) == {"mug", "lamp"}
    assert m.class_miou == pytest.approx(100 * 55 / 72)  # the absent "cap" does not pull it down


def test_to_dict_holds_every_score():
    pred, target, cats = hand_example()
    d = segmentation_metrics(pred, target, cats, PARTS, NAMES).to_dict()
    assert set(d) == {"point_oa", "instance_miou", "class_miou", "per_category", "shapes"}
    assert d["shapes"] == 4 and d["per_category"]["lamp"] == 100.0
    assert isinstance(SegmentationMetrics(**d), SegmentationMetrics)


def test_torch_inputs_give_the_same_scores():
    pred, target, cats = hand_example()
    a = segmentation_metrics(pred, target, cats, PARTS, NAMES)
    b = segmentation_metrics(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(cats), PARTS, NAMES)
    assert a == b


def test_restriction_never_chooses_another_categorys_part():
    logits = torch.full((2, 2, 5), -1.0)
    # mug shape (parts 0, 1): point 0 is highest on the lamp's part 2 -> the mug's best part, 1, is chosen
    logits[0, 0] = torch.tensor([0.1, 0.5, 9.0, 0.0, 0.0])
    logits[0, 1] = torch.tensor([3.0, 1.0, 0.0, 0.0, 2.0])  # own part 0 is highest anyway -> 0
    # lamp shape (parts 2, 3, 4): highest on the mug's parts 0, 1 -> the lamp's best, part 4
    logits[1, 0] = torch.tensor([9.0, 8.0, 0.2, 0.1, 0.3])
    logits[1, 1] = torch.tensor([0.0, 0.0, 0.0, 5.0, 0.0])  # -> 3
    cats = torch.tensor([0, 1])
    pred = restrict_to_category(logits, cats, PARTS)
    assert pred.dtype == torch.int64
    assert pred.tolist() == [[1, 0], [4, 3]]
    assert unrestricted_predictions(logits).tolist() == [[2, 0], [0, 3]]


def brute_force_shape_iou(pred_row, target_row, parts) -> float:
    """The shape IoU from sets of point indices, one part at a time."""
    ious = []
    for p in parts:
        predicted = {i for i, v in enumerate(pred_row) if v == p}
        labelled = {i for i, v in enumerate(target_row) if v == p}
        union = predicted | labelled
        ious.append(len(predicted & labelled) / len(union) if union else 1.0)
    return sum(ious) / len(ious)


def test_shape_ious_match_a_brute_force_count_on_random_data():
    rng = np.random.default_rng(0)
    shapes, points = 80, 12
    cats = rng.integers(0, 16, size=shapes)
    # labels from a random subset of the category's parts, so that some parts are absent from a shape
    subsets = [rng.choice(SHAPENET_PARTS[c], size=rng.integers(1, len(SHAPENET_PARTS[c]) + 1), replace=False)
               for c in cats]
    target = np.stack([rng.choice(s, size=points) for s in subsets])
    # predictions: the label, a random part of the own category, or any of the 50 parts
    own = np.stack([rng.choice(SHAPENET_PARTS[c], size=points) for c in cats])
    draw = rng.random((shapes, points))
    pred = np.where(draw < 0.5, target, np.where(draw < 0.85, own, rng.integers(0, 50, size=(shapes, points))))
    expected = [brute_force_shape_iou(pred[b].tolist(), target[b].tolist(), SHAPENET_PARTS[cats[b]])
                for b in range(shapes)]
    got = shape_ious(pred, target, cats, SHAPENET_PARTS)
    assert got.dtype == np.float64 and got.shape == (shapes,)
    assert got == pytest.approx(expected, abs=1e-12)
    # the data exercise the absent-part rule: some part of some shape is in neither prediction nor label
    assert any(p not in pred[b] and p not in target[b] for b in range(shapes) for p in SHAPENET_PARTS[cats[b]])


def test_restriction_matches_a_brute_force_argmax_on_random_logits():
    torch.manual_seed(1)
    cats = torch.randint(0, 16, (5,))
    logits = torch.randn(5, 7, 50)
    pred = restrict_to_category(logits, cats, SHAPENET_PARTS)
    for b in range(5):
        parts = SHAPENET_PARTS[int(cats[b])]
        for n in range(7):
            assert int(pred[b, n]) == max(parts, key=lambda p, b=b, n=n: float(logits[b, n, p]))


@pytest.mark.parametrize("call, message", [
    (lambda: shape_ious(np.zeros((2, 4), int), np.zeros((2, 5), int), np.zeros(2, int), PARTS), "shape"),
    (lambda: shape_ious(np.zeros((2, 4), int), np.zeros((2, 4), int), np.zeros(3, int), PARTS), "one id per shape"),
    (lambda: shape_ious(np.zeros((2, 4), int), np.zeros((2, 4), int), np.array([0, 2]), PARTS), "category ids"),
    (lambda: shape_ious(np.zeros((2, 4), int), np.zeros((2, 4), int), np.array([-1, 0]), PARTS), "category ids"),
    (lambda: shape_ious(np.zeros((0, 4), int), np.zeros((0, 4), int), np.zeros(0, int), PARTS), "nothing to score"),
    (lambda: shape_ious(np.zeros((2, 4)), np.zeros((2, 4), int), np.zeros(2, int), PARTS), "integer"),
    (lambda: segmentation_metrics(np.zeros((1, 4), int), np.zeros((1, 4), int), np.zeros(1, int), PARTS, ["mug"]),
     "names"),
    (lambda: restrict_to_category(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), PARTS), "(B, N, P)"),
    (lambda: restrict_to_category(torch.zeros(2, 4, 3), torch.zeros(2, dtype=torch.long), PARTS), "part ids"),
    (lambda: restrict_to_category(torch.zeros(2, 4, 5), torch.tensor([0, 5]), PARTS), "category ids"),
])
def test_bad_inputs_give_a_one_line_data_error(call, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        call()
    assert "\n" not in str(info.value)
