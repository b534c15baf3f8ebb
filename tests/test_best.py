"""Best-epoch bookkeeping: the paper's best test epoch and the monitor behind model_best.pth."""
import math

import pytest

from trainer.best import BestEpochs, monitor_key


@pytest.mark.parametrize("setting, has_val, key", [
    ("auto", True, "val_accuracy"), ("auto", False, "test_accuracy"), ("off", True, None),
    ("max test_accuracy", True, "test_accuracy"), ("max val_accuracy", True, "val_accuracy")])
def test_monitor_key(setting, has_val, key):
    assert monitor_key(setting, has_val) == key


def test_validation_monitor_picks_its_own_epoch_and_reports_test_there():
    best = BestEpochs("auto", has_val=True)
    epochs = [{"accuracy/val": 0.5, "accuracy/test": 0.40},
              {"accuracy/val": 0.7, "accuracy/test": 0.45},
              {"accuracy/val": 0.7, "accuracy/test": 0.60},    # val ties: the first maximum stays
              {"accuracy/val": 0.6}]                            # no test pass this epoch
    assert [best.update(e, r) for e, r in enumerate(epochs, 1)] == [True, True, False, False]
    assert best.summary(0.58) == {"last_test_accuracy": 0.58, "best_test_accuracy": 0.60, "best_test_epoch": 3,
                                  "monitor": "val_accuracy", "best_monitor_epoch": 2,
                                  "test_accuracy_at_best_val": 0.45}
    assert best.summary_line(0.58) == ("last test accuracy 0.5800 | best test accuracy 0.6000 at epoch 3 "
                                       "(paper protocol) | test accuracy at best val epoch 2: 0.4500")


def test_off_never_improves_and_state_survives_a_round_trip():
    best = BestEpochs("off", has_val=False)
    assert not best.update(1, {"accuracy/test": 0.3}) and not best.update(2, {"accuracy/test": 0.2})
    resumed = BestEpochs("off", has_val=False)
    resumed.load_state_dict(best.state_dict())
    assert resumed.state == {"test_accuracy": 0.3, "test_epoch": 1, "monitor": -math.inf, "monitor_epoch": 0,
                             "test_at_monitor": None}
    assert "test_accuracy_at_best_val" not in resumed.summary(0.2)
