"""Scores of part segmentation (ShapeNetPart style): point accuracy, instance mIoU, class mIoU.

Every shape belongs to one category, and every category owns a set of global part ids (ShapeNetPart: 16
categories, 50 parts). A shape's IoU is the mean, over the parts of its category, of the part IoU
|pred == p and label == p| / |pred == p or label == p|; a part in neither the prediction nor the label counts
as 1, exactly as DD3D's released ``utils.py: calculate_shape_IoU`` computes it. Instance mIoU averages the shape
IoUs over all shapes; class mIoU first averages them within each category, then over the categories.
Values are in percent, like the papers. Pure torch/numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ddbench.errors import DataError


@dataclass
class SegmentationMetrics:
    """The scores of one segmentation test pass, in percent."""

    point_oa: float  # correctly labelled points over all points of all shapes
    instance_miou: float  # mean shape IoU over all shapes
    class_miou: float  # mean over the present categories of their mean shape IoU
    per_category: dict[str, float] = field(default_factory=dict)  # category name -> its mean shape IoU
    shapes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _as_numpy(values, what: str) -> np.ndarray:
    """``values`` (a tensor, an array or a list) as a numpy int64 array."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise DataError(f"{what} must hold integer ids, got dtype {array.dtype}; pass part or category ids")
    return array.astype(np.int64, copy=False)


def _check_categories(categories: np.ndarray, shapes: int, category_parts: list[list[int]]) -> None:
    """One category id in range per shape."""
    if categories.shape != (shapes,):
        raise DataError(f"categories must have shape ({shapes},), one id per shape, got {categories.shape}")
    if shapes and (categories.min() < 0 or categories.max() >= len(category_parts)):
        raise DataError(f"category ids must lie in [0, {len(category_parts)}), got "
                        f"{categories.min()}..{categories.max()}; check the category labels of the data")


def _check_labels(pred: np.ndarray, target: np.ndarray, categories: np.ndarray, category_parts) -> None:
    """Predictions and labels of the same (B, N) shape, at least one shape and one point, valid categories."""
    if pred.ndim != 2 or pred.shape != target.shape:
        raise DataError(f"predictions and labels must both have shape (B, N), got {pred.shape} and {target.shape}")
    if pred.shape[0] == 0 or pred.shape[1] == 0:
        raise DataError(f"nothing to score: {pred.shape[0]} shapes of {pred.shape[1]} points; "
                        "pass a non-empty test set")
    _check_categories(categories, pred.shape[0], category_parts)


def unrestricted_predictions(point_logits: torch.Tensor) -> torch.Tensor:
    """The part of highest logit among all parts, per point: (B, N, P) -> (B, N) int64 (DD3D's ``epoch_seg``)."""
    if point_logits.dim() != 3:
        raise DataError(f"point logits must have shape (B, N, P), got {tuple(point_logits.shape)}")
    return point_logits.argmax(dim=-1)


def restrict_to_category(point_logits: torch.Tensor, categories: torch.Tensor,
                         category_parts: list[list[int]]) -> torch.Tensor:
    """The part of highest logit among the parts of each shape's own category: (B, N, P) -> (B, N) int64.

    This is the standard practice on ShapeNetPart (the category is known at test time). DD3D's released
    ``utils.py: epoch_seg`` takes the argmax over all 50 parts instead (:func:`unrestricted_predictions`);
    ddbench offers that as a switch elsewhere."""
    if point_logits.dim() != 3:
        raise DataError(f"point logits must have shape (B, N, P), got {tuple(point_logits.shape)}")
    num_parts = point_logits.shape[-1]
    if any(p < 0 or p >= num_parts for parts in category_parts for p in parts):
        raise DataError(f"category_parts names part ids outside the {num_parts} logits; check the dataset's part table")
    cats = _as_numpy(categories, "categories")
    _check_categories(cats, point_logits.shape[0], category_parts)
    allowed = torch.zeros(len(category_parts), num_parts, dtype=torch.bool)
    for c, parts in enumerate(category_parts):
        allowed[c, list(parts)] = True
    mask = allowed.to(point_logits.device)[torch.as_tensor(cats, device=point_logits.device)]  # (B, P)
    masked = point_logits.masked_fill(~mask[:, None, :], float("-inf"))
    return masked.argmax(dim=-1)


def shape_ious(pred, target, categories, category_parts: list[list[int]]) -> np.ndarray:
    """Per shape, the mean IoU over the parts of its category; a part in neither prediction nor label counts 1.

    ``pred`` and ``target`` are (B, N) part ids, ``categories`` (B,) category ids; returns (B,) float64.
    Same rule as DD3D's released ``calculate_shape_IoU``."""
    pred, target = _as_numpy(pred, "predictions"), _as_numpy(target, "labels")
    cats = _as_numpy(categories, "categories")
    _check_labels(pred, target, cats, category_parts)
    out = np.zeros(pred.shape[0], dtype=np.float64)
    for c in np.unique(cats):
        rows = np.flatnonzero(cats == c)
        parts = np.asarray(category_parts[c], dtype=np.int64)[None, :, None]  # (1, P_c, 1)
        in_pred = pred[rows][:, None, :] == parts  # (S, P_c, N)
        in_target = target[rows][:, None, :] == parts
        inter = (in_pred & in_target).sum(axis=2)
        union = (in_pred | in_target).sum(axis=2)
        ious = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
        out[rows] = ious.mean(axis=1)
    return out


def segmentation_metrics(pred, target, categories, category_parts: list[list[int]],
                         category_names: list[str]) -> SegmentationMetrics:
    """Point accuracy, instance mIoU, class mIoU and the per-category mIoU (percent) of (B, N) predictions."""
    if len(category_names) != len(category_parts):
        raise DataError(f"{len(category_names)} category names for {len(category_parts)} categories; "
                        "pass one name per entry of category_parts")
    pred, target = _as_numpy(pred, "predictions"), _as_numpy(target, "labels")
    cats = _as_numpy(categories, "categories")
    ious = shape_ious(pred, target, cats, category_parts)
    per_category = {category_names[c]: 100.0 * float(ious[cats == c].mean()) for c in np.unique(cats)}
    return SegmentationMetrics(
        point_oa=100.0 * float((pred == target).mean()),
        instance_miou=100.0 * float(ious.mean()),
        class_miou=float(np.mean(list(per_category.values()))),
        per_category=per_category,
        shapes=int(pred.shape[0]),
    )
