"""Best epochs of a run: the best test accuracy (the paper's protocol) and the epoch that the
configured monitor picks for model_best.pth, with the summary that goes to results.json."""
import math


def monitor_key(setting, has_val):
    """"auto": validation accuracy when there is a validation split, else test accuracy."""
    if setting == "off":
        return None
    if setting == "auto":
        return "val_accuracy" if has_val else "test_accuracy"
    return setting.split()[1]


class BestEpochs:
    def __init__(self, monitor_setting, has_val):
        self.monitor = monitor_key(monitor_setting, has_val)
        self.state = {"test_accuracy": -1.0, "test_epoch": 0, "monitor": -math.inf, "monitor_epoch": 0,
                      "test_at_monitor": None}

    def update(self, epoch, result):
        """Take in one epoch's metrics; True when the monitored value improved (save model_best)."""
        test = result.get("accuracy/test")
        if test is not None and test > self.state["test_accuracy"]:
            self.state.update(test_accuracy=test, test_epoch=epoch)
        value = result.get("accuracy/val" if self.monitor == "val_accuracy" else "accuracy/test")
        if self.monitor is None or value is None or value <= self.state["monitor"]:
            return False
        self.state.update(monitor=value, monitor_epoch=epoch, test_at_monitor=test)
        return True

    def state_dict(self):
        return dict(self.state)

    def load_state_dict(self, state):
        self.state = dict(state)

    def summary(self, last_test_accuracy):
        summary = {"last_test_accuracy": last_test_accuracy,
                   "best_test_accuracy": self.state["test_accuracy"], "best_test_epoch": self.state["test_epoch"],
                   "monitor": self.monitor, "best_monitor_epoch": self.state["monitor_epoch"]}
        if self.monitor == "val_accuracy":
            summary["test_accuracy_at_best_val"] = self.state["test_at_monitor"]
        return summary

    def summary_line(self, last_test_accuracy):
        line = (f"last test accuracy {last_test_accuracy:.4f} | best test accuracy "
                f"{self.state['test_accuracy']:.4f} at epoch {self.state['test_epoch']} (paper protocol)")
        if self.monitor == "val_accuracy":
            line += (f" | test accuracy at best val epoch {self.state['monitor_epoch']}: "
                     f"{self.state['test_at_monitor']:.4f}")
        return line
