"""Coreset rules on hand-made examples, and the coreset methods."""

from __future__ import annotations

import pytest
import torch

from ddbench.errors import ConfigError
from ddbench.methods.base import DistillContext
from ddbench.methods.coreset import (
    HerdingMethod,
    KCenterMethod,
    RandomMethod,
    WholeMethod,
    herding_select,
    kcenter_select,
)
from tests.helpers import backbone_factory

CPU = torch.device("cpu")


def test_herding_uses_the_argmin_rule():
    # 1-D features; class mean = 2.0
    f = torch.tensor([[0.0], [2.1], [4.0], [1.0], [3.0]])
    # t=1: closest to 2.0 is 2.1 (index 1)
    # t=2: (2.1 + x)/2 closest to 2 -> x = 1.9 ideal; candidates 0,4,1,3 -> |1.05-2|,|3.05-2|,|1.55-2|,|2.55-2| -> index 3 (1.0)
    # t=3: (3.1 + x)/3 -> ideal x = 2.9 -> index 4 (3.0)
    assert herding_select(f, 3) == [1, 3, 4]


def test_herding_is_not_the_argmax_rule():
    f = torch.tensor([[0.0], [2.1], [4.0], [1.0], [3.0]])
    assert herding_select(f, 1) != [0] and herding_select(f, 1) != [2]  # argmax would pick an extreme


def test_kcenter_first_pick_equals_herding_and_then_farthest():
    f = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [0.0, 9.0], [0.6, 0.5]])
    first = herding_select(f, 1)[0]
    picks = kcenter_select(f, 3)
    assert picks[0] == first
    # then the farthest from the first centre, then farthest from both
    d_first = ((f - f[first]) ** 2).sum(1)
    assert picks[1] == int(d_first.argmax())
    nearest = torch.minimum(d_first, ((f - f[picks[1]]) ** 2).sum(1))
    nearest[picks[:2]] = -1
    assert picks[2] == int(nearest.argmax())


def test_rules_never_repeat_a_cloud():
    f = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    for rule in (herding_select, kcenter_select):
        picks = rule(f, 20)
        assert sorted(picks) == list(range(20))


def test_random_method_per_class_and_seeded(toy_set):
    ctx = DistillContext(toy_set, ppc=2, seed=3, device=CPU)
    a, b = RandomMethod().distill(ctx), RandomMethod().distill(ctx)
    assert a.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert a.info["selected_indices"] == b.info["selected_indices"]
    c = RandomMethod().distill(DistillContext(toy_set, ppc=2, seed=4, device=CPU))
    assert c.info["selected_indices"] != a.info["selected_indices"]
    idx = torch.tensor(a.info["selected_indices"])
    assert torch.equal(a.points, toy_set.points[idx])


def test_ppc_larger_than_a_class_is_a_clear_error(toy_set):
    with pytest.raises(ConfigError, match="only 5 training clouds, fewer than ppc=6"):
        RandomMethod().distill(DistillContext(toy_set, ppc=6, seed=0, device=CPU))


def test_herding_and_kcenter_record_their_embedding_and_agree_at_ppc1(toy_set, tmp_path):
    cfg = {"embedding": "random"}
    ctx = DistillContext(toy_set, ppc=1, seed=0, device=CPU, cache_dir=tmp_path, backbone=backbone_factory())
    h = HerdingMethod(HerdingMethod.make_config(cfg)).distill(ctx)
    k = KCenterMethod(KCenterMethod.make_config(cfg)).distill(ctx)
    assert h.info["selected_indices"] == k.info["selected_indices"]
    assert h.info["embedding_net"]["backbone"] == "pointnet"
    assert h.info["embedding_net"]["embedding"] == "random"
    assert h.info["rule"] == "herding_select" and k.info["rule"] == "kcenter_select"


def test_trained_embedding_is_cached_and_reused(toy_set, tmp_path):
    cfg = HerdingMethod.make_config({"embedding_epochs": 1, "embedding_batch_size": 4})
    ctx = DistillContext(toy_set, ppc=2, seed=0, device=CPU, cache_dir=tmp_path, backbone=backbone_factory())
    first = HerdingMethod(cfg).distill(ctx)
    second = KCenterMethod(KCenterMethod.make_config(cfg.model_dump())).distill(ctx)
    assert first.info["embedding_net"]["cached"] is False
    assert second.info["embedding_net"]["cached"] is True
    assert first.info["embedding_net"]["cache_key"] == second.info["embedding_net"]["cache_key"]
    assert "train_accuracy" in first.info["embedding_net"]


def test_whole_returns_every_training_cloud(toy_set):
    w = WholeMethod().distill(DistillContext(toy_set, ppc=None, seed=0, device=CPU))
    assert torch.equal(w.points, toy_set.points) and torch.equal(w.labels, toy_set.labels)
    capped = WholeMethod(WholeMethod.make_config({"max_per_class": 2})).distill(
        DistillContext(toy_set, ppc=None, seed=0, device=CPU))
    assert capped.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_embedding_coresets_without_a_backbone_say_which_to_give(toy_set):
    with pytest.raises(ConfigError, match="needs a distillation backbone"):
        HerdingMethod().distill(DistillContext(toy_set, ppc=1, seed=0, device=CPU))
