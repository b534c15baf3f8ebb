"""The noise-monitor callback: per-epoch metrics, tensorboard output, the CSV export, evaluate.py."""
import csv
import glob
import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import evaluate
import train
from data_loader.loaders import Batch
from model.label_issues import estimated_noise_rate
from trainer.noise_monitor import CSV_NAME, NoiseMonitor, averaged_probs, export_label_issues


def fake_data(clean):
    given = torch.tensor([0, 1, 1, 0])
    return SimpleNamespace(train_noisy=given, train_clean=clean, num_train=4, num_classes=2,
                           train_index=np.array([7, 5, 3, 1]), class_names=["a", "b"],
                           images_u8=np.zeros((4, 32, 32, 3), np.uint8), train_files=None)


def test_cross_entropy_run_reports_small_loss_detection_from_the_training_logits():
    data = fake_data(clean=torch.tensor([1, 1, 0, 0]))          # samples 0 and 2 are mislabelled
    monitor = NoiseMonitor(data)
    # p(given) = sigmoid of the logit gap: sample 0 -> 0.1, 1 -> 0.9, 2 -> 0.3 (ties nothing), 3 -> 0.8
    gap = torch.log(torch.tensor([0.1, 0.9, 0.3, 0.8]) / torch.tensor([0.9, 0.1, 0.7, 0.2]))
    logits = torch.zeros(4, 2)
    logits[torch.arange(4), data.train_noisy] = gap
    monitor.on_batch(Batch(torch.tensor([2, 0]), None, None, None), logits[[2, 0]])
    monitor.on_batch(Batch(torch.tensor([3, 1]), None, None, None), logits[[3, 1]])
    resumed = NoiseMonitor(data)      # as after a stop mid-epoch
    resumed.load_state_dict(monitor.state_dict())
    assert torch.equal(resumed.logits, logits)
    result = resumed.on_epoch_end(1, SimpleNamespace(sop=None, metrics=None, epochs=10))
    # scores 1 - p(given) = 0.9, 0.1, 0.7, 0.2: both noisy samples rank first, both flagged
    assert result["noise/auroc"] == 1.0 and result["noise_candidates/auroc_loss"] == 1.0
    assert (result["noise/precision"], result["noise/recall"], result["noise/f1"]) == (1.0, 1.0, 1.0)
    # mean score 0.475 below the rejected group's weight 0.5 ({0.7, 0.9}): round(1.9) = 2 of 4
    assert result["noise/estimated_rate"] == 0.5
    assert result["noise/rate_mean_score"] == pytest.approx(0.475)
    assert result["noise/rate_rejected_group"] == pytest.approx(0.5)
    assert result["noise/realised_rate"] == 0.5
    assert result["noise/suggested_accuracy"] == 1.0           # suggested 1 and 0 are the clean labels
    assert "noise_candidates/auroc_u2" not in result
    assert resumed.summary_parts(result) == ["noise auroc 1.000 f1 1.000"]


def test_without_clean_labels_only_the_estimate_and_the_export(tmp_path):
    data = fake_data(clean=None)
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    summary = export_label_issues(str(tmp_path / CSV_NAME), data, probs)
    # no average: score 1 - p_given = 0.1, 0.2, 0.6, 0.7; mean 0.4 (group {0.6, 0.7}: 0.5) -> 2 flagged
    assert "auroc" not in summary and summary["score"] == "loss" and summary["num_flagged"] == 2
    assert summary["estimated_rate"] == 0.5
    assert summary["rate_mean_score"] == pytest.approx(0.4) and summary["rate_rejected_group"] == pytest.approx(0.5)
    rows = list(csv.reader(open(tmp_path / CSV_NAME)))
    assert rows[0] == ["index", "given_label", "suggested_label", "score", "flag", "given_class", "suggested_class"]
    assert rows[1:3] == [["1", "0", "1", "0.700000", "1", "a", "b"], ["3", "1", "0", "0.600000", "1", "b", "a"]]
    assert [r[0] for r in rows[3:]] == ["5", "7"]


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_tiny_run_logs_detection_metrics_exports_the_csv_and_evaluate_reproduces_it(tiny_run_args, tmp_path):
    assert train.main(tiny_run_args + ["--epochs", "1", "-o", "data_loader.train_subset=20",
                                                 "--consist", "0", "--balance", "0"]) == 0
    run_dir = glob.glob(str(tmp_path / "saved" / "*" / "*"))[0]
    labels = np.load(os.path.join(run_dir, "labels.npz"))

    rows = read_csv(os.path.join(run_dir, CSV_NAME))
    assert list(rows[0]) == ["index", "given_label", "suggested_label", "score", "flag", "given_class",
                             "suggested_class"]
    assert sorted(int(r["index"]) for r in rows) == sorted(labels["train_index"].tolist())
    cifar10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert all(r["given_class"] == cifar10[int(r["given_label"])] and
               r["suggested_class"] == cifar10[int(r["suggested_label"])] for r in rows)
    assert json.load(open(os.path.join(run_dir, "label_issues.json")))["score"] == "loss_avg"
    assert all(int(r["given_label"]) == labels["noisy_labels"][int(r["index"])] for r in rows)
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    num_flagged = round(estimated_noise_rate(torch.tensor(scores)) * len(scores))   # from the written scores
    assert num_flagged == json.load(open(os.path.join(run_dir, "label_issues.json")))["num_flagged"]
    assert [r["flag"] for r in rows] == ["1"] * num_flagged + ["0"] * (len(rows) - num_flagged)

    metrics = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    for key in ("noise/auroc", "noise/precision", "noise/recall", "noise/f1", "noise/estimated_rate",
                "noise/realised_rate", "noise/suggested_accuracy", "noise/rate_mean_score",
                "noise_candidates/auroc_u2"):
        assert key in metrics[-1], key
    noisy = labels["noisy_labels"][labels["train_index"]] != labels["clean_labels"][labels["train_index"]]
    assert metrics[-1]["noise/realised_rate"] == pytest.approx(noisy.mean())
    last = metrics[-1]   # the flagged fraction is the smaller of the two logged estimates, in whole samples
    rate = min(last["noise/rate_mean_score"], last.get("noise/rate_rejected_group", 1.0))
    assert last["noise/estimated_rate"] == round(rate * len(noisy)) / len(noisy)
    assert "noise auroc" in open(os.path.join(run_dir, "train.log")).read()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(run_dir, size_guidance={"histograms": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"noise/auroc", "noise/f1", "noise/precision", "noise/recall"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("noise/auroc")] == [1]
    assert {"noise/u2/clean", "noise/u2/noisy", "noise/score/clean", "noise/score/noisy"} <= set(tags["histograms"])
    assert {"noise/transition_estimated_vs_true", "noise/most_suspect"} <= set(tags["images"])

    out = tmp_path / "again.csv"
    assert evaluate.main(["-r", os.path.join(run_dir, "checkpoint-latest.pth"), "--out", str(out)]) == 0
    assert read_csv(out) == rows                               # same final model, same clean pass
    summary = json.load(open(tmp_path / "again.json"))
    assert summary["epoch"] == 1 and summary["test_accuracy"] == metrics[-1]["accuracy/test"]
    assert not math.isnan(summary["auroc"])
    # by default next to the checkpoint, named after it: the run's own export stays as it was
    before = open(os.path.join(run_dir, CSV_NAME)).read()
    assert evaluate.main(["-r", os.path.join(run_dir, "model_best.pth")]) == 0
    assert read_csv(os.path.join(run_dir, "label_issues_model_best.csv"))[0].keys() == rows[0].keys()
    assert json.load(open(os.path.join(run_dir, "label_issues_model_best.json")))["epoch"] == 1
    assert open(os.path.join(run_dir, CSV_NAME)).read() == before


def test_evaluate_rejects_an_output_it_cannot_write(tiny_run_args, tmp_path, capsys):
    assert train.main(tiny_run_args + ["--epochs", "1", "-o", "data_loader.train_subset=20",
                                       "-o", "trainer.tensorboard=false"]) == 0
    (run_dir,) = glob.glob(str(tmp_path / "saved" / "*" / "*"))
    checkpoint = os.path.join(run_dir, "checkpoint-latest.pth")
    assert evaluate.main(["-r", checkpoint, "--out", str(tmp_path / "missing" / "x.csv")]) == 2
    assert capsys.readouterr().err.startswith("error: --out ")
    os.mkdir(tmp_path / "taken.csv")                                # a directory where the CSV should go
    assert evaluate.main(["-r", checkpoint, "--out", str(tmp_path / "taken.csv")]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot write {tmp_path / 'taken.csv'}")
    (tmp_path / "issues.json").write_text("kept")      # the summary would be written over the CSV
    assert evaluate.main(["-r", checkpoint, "--out", str(tmp_path / "issues.json")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --out {tmp_path / 'issues.json'}: the summary is written")
    assert (tmp_path / "issues.json").read_text() == "kept"
    for name in ("results.csv", "train.log"):   # a summary over results.json, a CSV over the log: refused
        before = {n: open(os.path.join(run_dir, n), "rb").read() for n in ("results.json", "train.log")}
        assert evaluate.main(["-r", checkpoint, "--out", os.path.join(run_dir, name)]) == 2
        assert "which is not a label-issue export" in capsys.readouterr().err
        assert {n: open(os.path.join(run_dir, n), "rb").read() for n in before} == before
    assert evaluate.main(["-r", checkpoint, "--out", os.path.join(run_dir, "label_issues.csv")]) == 0   # an export
    old_export = os.path.join(run_dir, "label_issues_checkpoint-latest.csv")      # before the class-name columns
    with open(old_export, "w") as f:
        f.write("index,given_label,suggested_label,score,flag\n3,1,2,0.9,1\n")
    assert evaluate.main(["-r", checkpoint]) == 0 and "given_class" in open(old_export).readline()


def test_evaluate_predicts_in_the_runs_precision_unless_told(tiny_run_args, tmp_path):
    assert train.main(tiny_run_args + ["--epochs", "1", "-o", "data_loader.train_subset=20",
                                       "-o", "trainer.amp=bf16", "-o", "trainer.tensorboard=false"]) == 0
    (run_dir,) = glob.glob(str(tmp_path / "saved" / "*" / "*"))
    checkpoint = os.path.join(run_dir, "checkpoint-latest.pth")
    rows = read_csv(os.path.join(run_dir, "label_issues.csv"))
    assert evaluate.main(["-r", checkpoint, "--out", str(tmp_path / "bf16.csv")]) == 0
    assert read_csv(tmp_path / "bf16.csv") == rows                 # bf16 autocast, as in training
    assert evaluate.main(["-r", checkpoint, "--out", str(tmp_path / "fp32.csv"), "--amp", "off"]) == 0
    fp32 = {r["index"]: float(r["score"]) for r in read_csv(tmp_path / "fp32.csv")}
    # the same model in another precision: bf16 rounding shows in the printed scores (by about 1e-5
    # here, as the clean pass is half of this one-epoch run's average)
    assert any(fp32[r["index"]] != float(r["score"]) for r in rows)


def test_evaluate_rejects_a_missing_checkpoint(tmp_path, capsys):
    assert evaluate.main(["-r", str(tmp_path / "nope.pth")]) == 2
    assert "nope.pth" in capsys.readouterr().err


def test_export_with_no_noisy_labels_writes_null_auroc(tmp_path):
    data = fake_data(clean=torch.tensor([0, 1, 1, 0]))           # every given label is right
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    summary = export_label_issues(str(tmp_path / CSV_NAME), data, probs)   # CE score 0.1, 0.2, 0.6, 0.7
    saved = json.load(open(tmp_path / "label_issues.json"))
    monitor = NoiseMonitor(data)
    monitor.on_batch(Batch(torch.arange(4), None, None, None), probs.log())
    result = monitor.on_epoch_end(1, SimpleNamespace(sop=None, metrics=None, epochs=10))
    assert math.isnan(result["noise/auroc"]) and monitor.summary_parts(result) == ["est. noise 0.500"]
    assert saved["auroc"] is None and summary["auroc"] is None and saved["realised_rate"] == 0.0
    # mean 0.4 (group {0.6, 0.7}: 0.5) -> round(1.6) = 2 of 4 flagged, both wrongly
    assert saved["num_flagged"] == 2 and saved["precision"] == 0.0


def test_without_a_rejected_group_the_rate_is_the_mean_score_and_the_group_is_not_reported(tmp_path):
    data = fake_data(clean=torch.tensor([1, 1, 0, 0]))
    probs = torch.full((4, 2), 0.5)     # an untrained network: every score 1/2, one cluster
    summary = export_label_issues(str(tmp_path / CSV_NAME), data, probs)
    assert json.load(open(tmp_path / "label_issues.json"))["rate_rejected_group"] is None
    assert summary["rate_mean_score"] == 0.5 and summary["num_flagged"] == 2
    monitor = NoiseMonitor(data)
    monitor.on_batch(Batch(torch.arange(4), None, None, None), probs.log())
    result = monitor.on_epoch_end(1, SimpleNamespace(sop=None, metrics=None, epochs=10))
    assert result["noise/rate_mean_score"] == 0.5 and "noise/rate_rejected_group" not in result


def test_epoch_averaged_scores_are_a_bias_corrected_moving_average_that_survives_resume():
    data = fake_data(clean=torch.tensor([1, 1, 0, 0]))
    monitor = NoiseMonitor(data)
    trainer = SimpleNamespace(sop=SimpleNamespace(u=torch.zeros(4, 1), v=torch.zeros(4, 2)), metrics=None, epochs=10)
    p_given = [torch.tensor([0.2, 0.6, 0.5, 0.9]), torch.tensor([0.6, 0.9, 0.1, 0.5])]   # epoch 1, epoch 2

    def feed(p):
        logits = torch.zeros(4, 2)
        logits[torch.arange(4), data.train_noisy] = torch.log(p / (1 - p))
        monitor.on_batch(Batch(torch.arange(4), None, None, None), logits)

    feed(p_given[0])
    first = monitor.on_epoch_end(1, trainer)
    # one epoch: the average is that epoch's p; samples 0 and 2 are noisy, 1 - p = 0.8, 0.4, 0.5, 0.1
    assert first["noise_candidates/auroc_loss_avg"] == 1.0
    resumed = NoiseMonitor(data)
    resumed.load_state_dict(monitor.state_dict())
    monitor = resumed
    feed(p_given[1])
    second = monitor.on_epoch_end(2, trainer)
    # (0.9 * 0.1 * p1 + 0.1 * p2) / (1 - 0.9^2) = (0.09 p1 + 0.1 p2) / 0.19
    average = (0.09 * p_given[0] + 0.1 * p_given[1]) / 0.19          # 0.4105, 0.7579, 0.2895, 0.6895
    stored = monitor.prob_ema / (1 - 0.9 ** monitor.epochs_averaged)
    torch.testing.assert_close(stored[torch.arange(4), data.train_noisy], average)
    # this epoch alone ranks sample 3 (p 0.5, clean) above sample 0 (p 0.6, noisy); the average does not
    assert second["noise_candidates/auroc_loss"] == 0.75
    assert second["noise_candidates/auroc_loss_avg"] == 1.0
    assert second["noise_candidates/auroc_sop_avg"] == 1.0               # u = 0: half of loss_avg, same ranking


def two_class_probs(p_given, given):
    probs = torch.stack([1 - p_given, p_given], dim=1)
    return torch.where(given.view(-1, 1) == 1, probs, probs.flip(1))


def test_runs_rank_by_the_averaged_loss_and_the_export_takes_the_clean_pass_into_the_average(tmp_path):
    data = fake_data(clean=torch.tensor([1, 1, 0, 0]))              # samples 0 and 2 are mislabelled
    monitor = NoiseMonitor(data)
    # u has grown for clean sample 1, as it does for clean images the network has not fitted
    u, v = torch.tensor([[0.0], [0.6], [0.0], [0.0]]), torch.zeros(4, 2)
    trainer = SimpleNamespace(sop=SimpleNamespace(u=u, v=v), metrics=None, epochs=10)
    epoch_1 = two_class_probs(torch.tensor([0.2, 0.6, 0.5, 0.9]), data.train_noisy)
    monitor.on_batch(Batch(torch.arange(4), None, None, None), epoch_1.log())
    monitor.on_epoch_end(1, trainer)
    clean_pass = two_class_probs(torch.tensor([0.6, 0.9, 0.1, 0.5]), data.train_noisy)
    assert averaged_probs(None, clean_pass) is None               # no history: nothing to average
    assert averaged_probs(NoiseMonitor(data).state_dict(), clean_pass) is None
    assert export_label_issues(str(tmp_path / "alone.csv"), data, clean_pass)["score"] == "loss"
    average = averaged_probs(monitor.state_dict(), clean_pass)
    # (0.9 * 0.1 * p1 + 0.1 * p2) / (1 - 0.9^2) on the given class: 0.4105, 0.7579, 0.2895, 0.6895
    torch.testing.assert_close(average[torch.arange(4), data.train_noisy],
                               torch.tensor([0.078, 0.144, 0.055, 0.131]) / 0.19)
    summary = export_label_issues(str(tmp_path / CSV_NAME), data, clean_pass, average)
    # the pass alone ranks clean sample 3 (1 - p = 0.5) above noisy sample 0 (0.4): AUROC 0.75; with
    # u^2, sop_avg = (0.36 + 0.2421) / 2 = 0.3011 ranks clean sample 1 above noisy sample 0 (0.2947)
    assert summary["score"] == "loss_avg" and summary["auroc"] == 1.0
    assert (summary["precision"], summary["recall"]) == (1.0, 1.0)
    rows = read_csv(tmp_path / CSV_NAME)
    # 1 - average = 0.5895, 0.2421, 0.7105, 0.3105; mean 0.4632 (group {0.59, 0.71}: 0.5) -> 2 flagged
    assert [(r["index"], r["given_label"], r["score"], r["flag"]) for r in rows] == [
        ("3", "1", "0.710526", "1"), ("7", "0", "0.589474", "1"), ("1", "0", "0.310526", "0"),
        ("5", "1", "0.242105", "0")]
    # suggestions follow the average: sample 0 (index 7) -> class 1, its clean label, where the
    # clean pass alone (p_given 0.6) would keep its wrong label 0
    assert [r["suggested_label"] for r in rows] == ["0", "1", "0", "1"]
    monitor.on_batch(Batch(torch.arange(4), None, None, None), clean_pass.log())
    result = monitor.on_epoch_end(2, trainer)                      # the same numbers as a training epoch
    assert result["noise/auroc"] == 1.0 and result["noise_candidates/auroc_sop_avg"] == 0.75
    assert result["noise_candidates/f1_loss_avg"] == result["noise/f1"]      # the run's own score and flags
    # this epoch alone: loss 0.4, 0.1, 0.9, 0.5 (AUROC 0.75); sop 0.2, 0.23, 0.45, 0.25 (AUROC 0.5)
    assert result["noise_candidates/auroc_loss"] == 0.75 and result["noise_candidates/auroc_sop"] == 0.5
