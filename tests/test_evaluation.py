"""Evaluation protocols and the training of evaluation nets."""

from __future__ import annotations

import pytest
import torch

from ddbench.errors import ConfigError, DataError, TrainingDivergedError
from ddbench.evaluation.evaluate import evaluate_synthetic, summarise
from ddbench.evaluation.protocols import DD3DProtocol, SADMProtocol
from ddbench.evaluation.trainer import epoch_batches, lr_for_epoch, train_and_test
from ddbench.synthetic.artifact import SyntheticSet
from tests.conftest import make_cloudset
from tests.helpers import network_of

CPU = torch.device("cpu")


def test_sadm_protocol_reference_values():
    cfg = SADMProtocol.Config()
    assert (cfg.backbone, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay) == ("pointnet", "sgd", 0.01, 0.9, 5e-4)
    # v2: the released loop's range(500 + 1) epochs, lr step after its 0-based epoch 251 (1-based 253)
    assert (cfg.epochs, cfg.step_epoch, cfg.batch_size, cfg.num_nets) == (501, 253, 8, 10)
    assert cfg.selection == "final" and cfg.augmentation == "none" and cfg.renormalize_synthetic
    assert cfg.net_seeds(0) == list(range(1996, 2006))
    assert cfg.net_seeds(2, 3) == [3996, 3997, 3998]


def test_dd3d_protocol_reference_values_and_no_test_selection_by_default():
    cfg = DD3DProtocol.Config()
    assert (cfg.backbone, cfg.optimizer, cfg.lr, cfg.weight_decay) == ("pointnet_in", "adam", 1e-3, 5e-4)
    # v2: the released loop's range(200 + 1) epochs
    assert (cfg.epochs, cfg.schedule, cfg.lr_min, cfg.batch_size, cfg.augmentation) == (201, "cosine", 1e-4, 256, "dd3d")
    assert cfg.selection == "final"


def test_step_schedule_and_epoch_override():
    cfg = SADMProtocol.Config()
    # v2, as the released loop: lr 0.01 for 252 epochs (0-based 0..251), then 0.001 from 1-based epoch 253
    assert lr_for_epoch(cfg, 0) == 0.01 and lr_for_epoch(cfg, 251) == 0.01
    assert lr_for_epoch(cfg, 252) == pytest.approx(0.001)
    short = cfg.with_epochs(50)
    assert short.epochs == 50 and short.step_epoch == 26
    assert lr_for_epoch(short, 24) == 0.01 and lr_for_epoch(short, 25) == pytest.approx(0.001)


def test_cosine_schedule_endpoints():
    cfg = DD3DProtocol.Config()
    assert lr_for_epoch(cfg, 0) == pytest.approx(1e-3)
    assert lr_for_epoch(cfg, 100) == pytest.approx((1e-3 + 1e-4) / 2)
    assert lr_for_epoch(cfg, 199) == pytest.approx(1e-4, rel=1e-2)


def test_invalid_protocol_config_is_clear():
    with pytest.raises(ConfigError, match="step_epoch"):
        SADMProtocol.make_config({"epochs": 10, "step_epoch": 50})


def test_singleton_last_batch_is_merged():
    g = torch.Generator().manual_seed(0)
    assert [len(b) for b in epoch_batches(9, 8, g)] == [9]
    assert [len(b) for b in epoch_batches(10, 8, g)] == [8, 2]
    assert sorted(torch.cat(epoch_batches(17, 8, g)).tolist()) == list(range(17))


def tiny_protocol(**kw):
    values = {"epochs": 15, "step_epoch": 11, "batch_size": 4, "lr": 0.01, **kw}
    return SADMProtocol.make_config(values)


def test_training_learns_a_separable_problem_and_is_reproducible():
    train, test = make_cloudset(per_class=4, seed=0), make_cloudset(per_class=6, seed=1)
    cfg = tiny_protocol()
    a = train_and_test(train.points, train.labels, test, cfg, 7, CPU, 3, network=network_of(cfg))
    b = train_and_test(train.points, train.labels, test, cfg, 7, CPU, 3, network=network_of(cfg))
    assert a.oa > 80 and a.macc > 80
    assert a.oa == b.oa and a.final_train_loss == b.final_train_loss
    assert a.selected_epoch == 15 and len(a.per_class_acc) == 3


def test_divergence_is_reported():
    train, test = make_cloudset(per_class=4), make_cloudset(per_class=2, seed=1)
    cfg = tiny_protocol(lr=1e30, momentum=0.0)
    with pytest.raises(TrainingDivergedError, match="non-finite loss"):
        train_and_test(train.points * 1e20, train.labels, test, cfg, 0, CPU, 3, network=network_of(cfg))


def test_nan_synthetic_set_is_refused():
    test = make_cloudset(per_class=2)
    synth = SyntheticSet(torch.zeros(3, 8, 3), torch.tensor([0, 1, 2]), list(test.class_names))
    synth.points[0, 0, 0] = float("inf")
    with pytest.raises(TrainingDivergedError, match="NaN or infinite"):
        evaluate_synthetic(synth, test, tiny_protocol(), [0], CPU, network=network_of(tiny_protocol()))


def test_class_mismatch_is_refused():
    test = make_cloudset(per_class=2)
    synth = SyntheticSet(torch.randn(2, 8, 3), torch.tensor([0, 1]), ["x", "y"])
    with pytest.raises(DataError, match="classes"):
        evaluate_synthetic(synth, test, tiny_protocol(), [0], CPU, network=network_of(tiny_protocol()))


def test_best_test_selection_is_recorded():
    train, test = make_cloudset(per_class=3), make_cloudset(per_class=3, seed=2)
    cfg = tiny_protocol(selection="best_test", epochs=6, step_epoch=None)
    r = train_and_test(train.points, train.labels, test, cfg, 0, CPU, 3, network=network_of(cfg))
    assert len(r.test_curve) == 6 and r.oa == max(r.test_curve)
    assert r.selected_epoch == r.test_curve.index(max(r.test_curve)) + 1


def test_dd3d_protocol_trains_with_augmentation():
    train, test = make_cloudset(per_class=3), make_cloudset(per_class=2, seed=3)
    cfg = DD3DProtocol.make_config({"epochs": 3, "batch_size": 4})
    r = train_and_test(train.points, train.labels, test, cfg, 0, CPU, 3, network=network_of(cfg))
    assert 0 <= r.oa <= 100 and r.epochs == 3


def test_evaluate_synthetic_summary_uses_protocol_ddof():
    train, test = make_cloudset(per_class=3), make_cloudset(per_class=2, seed=4)
    synth = SyntheticSet(train.points, train.labels, list(train.class_names))
    res = evaluate_synthetic(synth, test, tiny_protocol(epochs=2, step_epoch=None), [1, 2, 3], CPU, network=network_of(tiny_protocol(epochs=2, step_epoch=None)))
    oas = torch.tensor([n["oa"] for n in res["nets"]], dtype=torch.float64)
    assert res["num_nets"] == 3 and [n["seed"] for n in res["nets"]] == [1, 2, 3]
    assert res["oa_mean"] == pytest.approx(float(oas.mean()))
    assert res["oa_std"] == pytest.approx(float(oas.std(unbiased=False)))
    assert res["ddof"] == 0 and res["selection"] == "final"


def test_summarise_ddof_one():
    from ddbench.evaluation.trainer import NetResult

    nets = [NetResult(i, oa, oa, [], 0.0, 1, 0.0, 1) for i, oa in enumerate([10.0, 20.0])]
    assert summarise(nets, 1)["oa_std"] == pytest.approx(7.0710678)
    assert summarise(nets, 0)["oa_std"] == pytest.approx(5.0)


class _Stop(Exception):
    pass


def _stop_at_net(index):
    def progress(i, n, e, E):
        if i == index:
            raise _Stop

    return progress


@pytest.mark.parametrize("engine", ["sequential", "ensemble"])
def test_interrupted_evaluation_resumes_from_the_first_unfinished_net(tmp_path, engine):
    train, test = make_cloudset(per_class=3), make_cloudset(per_class=2, seed=4)
    synth = SyntheticSet(train.points, train.labels, list(train.class_names))
    cfg = tiny_protocol(epochs=3, step_epoch=None)
    kw = {"engine": engine, "ensemble_size": 1}
    full = evaluate_synthetic(synth, test, cfg, [1, 2, 3], CPU, **kw, network=network_of(cfg))
    progress_file = tmp_path / "cell.eval.json"
    with pytest.raises(_Stop):
        evaluate_synthetic(synth, test, cfg, [1, 2, 3], CPU, _stop_at_net(2), progress_file=progress_file, **kw, network=network_of(cfg))
    assert progress_file.exists()  # nets 1 and 2 are saved
    trained = []
    resumed = evaluate_synthetic(synth, test, cfg, [1, 2, 3], CPU, lambda i, n, e, E: trained.append(i),
                                 progress_file=progress_file, **kw, network=network_of(cfg))
    assert set(trained) == {2}  # only the third net trains again
    assert resumed["resumed_nets"] == [1, 2]
    assert [n["oa"] for n in resumed["nets"]] == [n["oa"] for n in full["nets"]]
    assert [n["final_train_loss"] for n in resumed["nets"]] == [n["final_train_loss"] for n in full["nets"]]
    assert not progress_file.exists()  # done: the per-net progress is folded into the result


def test_saved_nets_of_another_synthetic_set_are_not_reused(tmp_path):
    train, test = make_cloudset(per_class=3), make_cloudset(per_class=2, seed=4)
    cfg = tiny_protocol(epochs=2, step_epoch=None)
    progress_file = tmp_path / "cell.eval.json"
    first = SyntheticSet(train.points, train.labels, list(train.class_names))
    with pytest.raises(_Stop):
        evaluate_synthetic(first, test, cfg, [1, 2], CPU, _stop_at_net(1), progress_file=progress_file, network=network_of(cfg))
    other = SyntheticSet(train.points + 0.01, train.labels, list(train.class_names))
    trained = []
    res = evaluate_synthetic(other, test, cfg, [1, 2], CPU, lambda i, n, e, E: trained.append(i),
                             progress_file=progress_file, network=network_of(cfg))
    assert set(trained) == {0, 1} and "resumed_nets" not in res
    progress_file.write_text("{not json")  # a torn file is not a result either
    res = evaluate_synthetic(other, test, cfg, [1, 2], CPU, progress_file=progress_file, network=network_of(cfg))
    assert res["num_nets"] == 2 and "resumed_nets" not in res
