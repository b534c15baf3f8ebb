"""End-to-end train.py runs on a tiny fake CIFAR-10 (width-8 network, CPU)."""
import glob
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import parse_config
import train
from data_loader.loaders import Batch
from trainer.trainer import Trainer
from utils.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def only_run_dir(save_dir):
    runs = glob.glob(os.path.join(save_dir, "*", "*"))
    assert len(runs) == 1, runs
    return runs[0]


def tensorboard_tags(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(run_dir)
    events.Reload()
    return events, set(events.Tags()["scalars"])


def test_two_epoch_run_writes_a_complete_run_directory(tiny_run_args, tmp_path):
    assert train.main(tiny_run_args + ["--epochs", "2", "--percent", "0.4"]) == 0
    run_dir = only_run_dir(tmp_path / "saved")
    assert os.path.basename(os.path.dirname(run_dir)) == "SOP_cifar10"
    assert os.path.basename(run_dir).startswith("cifar10_sym40_")
    for name in ("config.json", "labels.npz", "metrics.jsonl", "train.log", "results.json",
                 "checkpoint-latest.pth", "model_best.pth"):
        assert os.path.isfile(os.path.join(run_dir, name)), name

    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["noise"]["rate"] == 0.4 and config["arch"]["args"]["width"] == 8

    labels = np.load(os.path.join(run_dir, "labels.npz"))
    changed = labels["noisy_labels"] != labels["clean_labels"]
    assert round(0.4 * 300) >= changed.sum() > 0.25 * 300   # sym: round(pN) redrawn, ~1/10 unchanged

    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("loss/train", "loss/train_ce", "loss/train_mse", "accuracy/train", "accuracy/test", "lr",
                "time/epoch_seconds", "time/train_images_per_s"):
        assert key in rows[0], key

    results = json.load(open(os.path.join(run_dir, "results.json")))
    assert results["last_test_accuracy"] == rows[-1]["accuracy/test"]
    assert results["best_test_accuracy"] == max(r["accuracy/test"] for r in rows)

    state = torch.load(os.path.join(run_dir, "checkpoint-latest.pth"), weights_only=True)
    assert state["epoch"] == 2 and state["config"] == config
    assert state["sop"]["u"].shape == (300, 1) and state["sop"]["v"].shape == (300, 10)
    for key in ("model", "optimizer", "lr_scheduler", "best", "rng"):
        assert key in state

    events, tags = tensorboard_tags(run_dir)
    assert {"loss/train", "accuracy/train", "accuracy/test", "lr"} <= tags
    assert [e.step for e in events.Scalars("accuracy/test")] == [1, 2]
    assert "noise/transition_true" in events.Tags()["images"]
    assert {"loss/train_consistency", "loss/train_balance"} <= tags     # SOP+ is the config default
    log = open(os.path.join(run_dir, "train.log")).read()
    assert "realised" in log and "img/s" in log and "best test accuracy" in log


def stop_after_first_epoch(monkeypatch):
    original = Trainer.train_epoch

    def train_epoch(self, epoch):
        result = original(self, epoch)
        if epoch == 1:
            self.request_stop(15)
        return result
    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


def test_resume_continues_exactly(tiny_run_args, tmp_path, monkeypatch):
    args = tiny_run_args + ["--epochs", "2"]
    assert train.main(args + ["-o", f"trainer.save_dir={tmp_path / 'straight'}"]) == 0
    straight = torch.load(os.path.join(only_run_dir(tmp_path / "straight"), "checkpoint-latest.pth"),
                          weights_only=True)

    with monkeypatch.context() as patch:
        stop_after_first_epoch(patch)
        assert train.main(args + ["-o", f"trainer.save_dir={tmp_path / 'split'}"]) == 143
    run_dir = only_run_dir(tmp_path / "split")
    assert torch.load(os.path.join(run_dir, "checkpoint-latest.pth"), weights_only=True)["epoch"] == 1
    assert train.main(["-r", os.path.join(run_dir, "checkpoint-latest.pth")]) == 0
    resumed = torch.load(os.path.join(run_dir, "checkpoint-latest.pth"), weights_only=True)

    assert resumed["epoch"] == 2
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert torch.equal(straight["sop"]["u"], resumed["sop"]["u"])
    assert torch.equal(straight["sop"]["v"], resumed["sop"]["v"])
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_cross_entropy_baseline_runs(tiny_run_args, tmp_path):
    assert train.main(tiny_run_args + ["--epochs", "1", "-o", "train_loss.type=cross_entropy"]) == 0
    state = torch.load(os.path.join(only_run_dir(tmp_path / "saved"), "checkpoint-latest.pth"), weights_only=True)
    assert state["sop"] is None


class EpochCounter:
    """A callback with only two of the optional hooks; on_epoch_end returns nothing."""

    def __init__(self):
        self.epochs, self.batch_rows = [], 0

    def on_batch(self, batch, logits):
        self.batch_rows += len(batch.index)

    def on_epoch_end(self, epoch, trainer):
        self.epochs.append(epoch)


def test_extra_callbacks_may_implement_only_some_hooks(tiny_run_args, tmp_path):
    counter = EpochCounter()
    assert train.main(tiny_run_args + ["--epochs", "2"], callbacks=[counter]) == 0
    assert counter.epochs == [1, 2]
    labels = np.load(os.path.join(only_run_dir(tmp_path / "saved"), "labels.npz"))
    per_epoch = len(labels["noisy_labels"])   # 300 = 4 batches of 64 + 44; every sample once per epoch
    assert counter.batch_rows == 2 * per_epoch


def test_log_gives_the_realised_noise_of_a_training_subset(tiny_run_args, tmp_path):
    assert train.main(tiny_run_args + ["--epochs", "1", "-o", "data_loader.train_subset=6"]) == 0
    run_dir = only_run_dir(tmp_path / "saved")
    labels = np.load(os.path.join(run_dir, "labels.npz"))
    index = labels["train_index"]
    whole = np.mean(labels["noisy_labels"] != labels["clean_labels"])
    subset = np.mean(labels["noisy_labels"][index] != labels["clean_labels"][index])
    assert len(index) == 60 and whole != subset
    assert f"realised {whole:.4f} ({subset:.4f} of the training images)" in open(os.path.join(run_dir, "train.log")).read()


def test_progress_bar_stays_off_when_output_is_not_a_terminal(cifar10_dir, tmp_path, capsys):
    args = ["-c", "config_cifar10.json", "--data_dir", cifar10_dir, "--bs", "64", "--epochs", "1",
            "-o", "arch.args.width=8", "-o", f"trainer.save_dir={tmp_path / 'saved'}",
            "-o", "data_loader.eval_batch_size=100", "-o", "trainer.progress_bar=true"]
    assert train.main(args) == 0
    out = capsys.readouterr()
    assert "epoch   1/1 |" in out.out + out.err and "it/s" not in out.err and "\r" not in out.err


def test_oracle_run_completes_without_sop_state(tiny_run_args, tmp_path):
    assert train.main(tiny_run_args + ["--epochs", "1", "-o", "train_loss.type=oracle_cross_entropy"]) == 0
    run_dir = only_run_dir(tmp_path / "saved")
    assert torch.load(os.path.join(run_dir, "checkpoint-latest.pth"), weights_only=True)["sop"] is None
    assert "loss oracle_cross_entropy" in open(os.path.join(run_dir, "train.log")).read()


def test_oracle_step_weights_the_batch_rows_by_their_training_set_index(tmp_path):
    """Rows 0 and 2 of the training set carry wrong labels; the batch holds rows 3, 2, 1, 0 in that order,
    so the keep mask must be read at batch.index (reading it by batch position would keep rows 3 and 1)."""
    config = parse_config.complete_config({"train_loss": {"type": "oracle_cross_entropy"}})
    given, clean = torch.tensor([1, 0, 1, 0]), torch.tensor([0, 0, 0, 0])
    data = SimpleNamespace(train_noisy=given, train_clean=clean, val_loader=None)
    model = torch.nn.Linear(3, 2)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), None, data, config, str(tmp_path),
                      None, None, torch.device("cpu"))
    index = torch.tensor([3, 2, 1, 0])
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    _, terms = trainer.train_step(Batch(index=index, x=x, y=given[index], x_strong=None, global_size=None))
    per_sample = torch.nn.functional.cross_entropy(model(x), given[index], reduction="none").detach()
    # kept: training rows 3 and 1 = batch positions 0 and 2; keep fraction 2 / 4
    assert terms["loss"].item() == pytest.approx(float(per_sample[0] + per_sample[2]) / (4 * 0.5))


def test_oracle_run_without_a_correct_label_exits_2_and_leaves_no_run_directory(tiny_run_args, tmp_path,
                                                                               monkeypatch, capsys):
    from data_loader import build
    real = build.noisy_labels_for

    def every_label_wrong(config, cifar):
        _, clean = real(config, cifar)
        return (clean + 1) % 10, clean
    monkeypatch.setattr(build, "noisy_labels_for", every_label_wrong)
    assert train.main(tiny_run_args + ["--epochs", "1", "-o", "train_loss.type=oracle_cross_entropy"]) == 2
    assert "no training label is correct" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "saved") or not glob.glob(str(tmp_path / "saved" / "*" / "*"))


def test_oracle_without_a_correct_label_is_a_config_error(tmp_path):
    config = parse_config.complete_config({"train_loss": {"type": "oracle_cross_entropy"}})
    data = SimpleNamespace(train_noisy=torch.tensor([1, 0]), train_clean=torch.tensor([0, 1]), val_loader=None)
    with pytest.raises(ConfigError, match="no training label is correct"):
        Trainer(torch.nn.Linear(2, 2), None, None, data, config, str(tmp_path), None, None, torch.device("cpu"))


@pytest.mark.parametrize("extra, fragment", [
    (["-o", "trainer.epochs=-1"], "trainer.epochs"),
    (["--percent", "1.5"], "noise.rate"),
    (["-o", "bogus.key=1"], "bogus.key"),
    (["-o", "arch.type=Nope"], "arch.type"),
])
def test_bad_input_exits_2_with_one_line_and_no_run_directory(tiny_run_args, tmp_path, extra, fragment):
    result = subprocess.run([sys.executable, "train.py", *tiny_run_args, *extra], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and fragment in result.stderr and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "saved")


def test_missing_dataset_without_download_is_a_clear_error(tiny_run_args, tmp_path, capsys):
    code = train.main(tiny_run_args + ["--data_dir", str(tmp_path / "empty"), "-o", "data_loader.download=false"])
    assert code == 2
    assert "cifar-10-batches-py" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "saved")


def test_validation_split_selects_the_best_model_and_reports_test_at_best_val(tiny_run_args, tmp_path):
    args = tiny_run_args + ["--epochs", "2", "--consist", "0", "--balance", "0",
                            "-o", "data_loader.validation_split=0.2"]
    assert train.main(args) == 0
    run_dir = only_run_dir(tmp_path / "saved")
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    results = json.load(open(os.path.join(run_dir, "results.json")))
    best_val_epoch = max(rows, key=lambda r: r["accuracy/val"])["epoch"]   # first maximum wins
    assert results["monitor"] == "val_accuracy" and results["best_monitor_epoch"] == best_val_epoch
    assert results["test_accuracy_at_best_val"] == rows[best_val_epoch - 1]["accuracy/test"]
    best = torch.load(os.path.join(run_dir, "model_best.pth"), weights_only=True)
    assert best["epoch"] == best_val_epoch
    held_out = len(np.load(os.path.join(run_dir, "labels.npz"))["val_index"])
    assert 55 <= held_out <= 65 and state_size(run_dir) == 300 - held_out   # ~20% held out, per class


def state_size(run_dir):
    return torch.load(os.path.join(run_dir, "checkpoint-latest.pth"), weights_only=True)["sop"]["u"].shape[0]


def test_cifar100_asymmetric_run(tmp_path):
    from tests.cifar_fixtures import write_fake_cifar100
    write_fake_cifar100(str(tmp_path / "data"), n_train=400, n_test=100)
    argv = ["-c", "config_cifar100.json", "--data_dir", str(tmp_path / "data"), "--lr_u", "0.1", "--lr_v", "100",
            "--percent", "0.4", "--name", "CIFAR100", "--asym", "True", "--epochs", "1", "--bs", "100",
            "-o", "arch.args.width=8", "-o", f"trainer.save_dir={tmp_path / 'saved'}",
            "-o", "trainer.progress_bar=false"]
    assert train.main(argv) == 0
    run_dir = only_run_dir(tmp_path / "saved")
    assert os.path.basename(run_dir).startswith("cifar100_asym40_")
    labels = np.load(os.path.join(run_dir, "labels.npz"))
    flipped = labels["noisy_labels"] != labels["clean_labels"]
    assert np.all(labels["noisy_labels"][flipped] // 5 == labels["clean_labels"][flipped] // 5)
    assert state_size(run_dir) == 400


class FailsAtTheEnd:
    def on_fit_end(self, trainer):
        raise RuntimeError("a callback's end-of-run work failed")


def test_results_are_written_before_the_callbacks_end_of_run_work(tiny_run_args, tmp_path):
    with pytest.raises(RuntimeError, match="end-of-run work failed"):
        train.main(tiny_run_args + ["--epochs", "1"], callbacks=[FailsAtTheEnd()])
    results = json.load(open(os.path.join(only_run_dir(tmp_path / "saved"), "results.json")))
    assert results["best_test_epoch"] == 1 and 0 <= results["last_test_accuracy"] <= 1
