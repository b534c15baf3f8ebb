"""benchmarks/detection_scores.py: the score candidates by hand, and one tiny run end to end."""
import json

import numpy as np
import pytest

from benchmarks import detection_scores as ds


def test_ema_is_bias_corrected_hand_computed():
    # momentum 0.9 over [0.5, 1.0]: weights 0.09 and 0.1, normalised by 0.19
    assert ds.ema(np.array([0.5, 1.0]), 0.9) == pytest.approx((0.09 * 0.5 + 0.1 * 1.0) / 0.19)
    assert ds.ema(np.array([[0.3, 0.7]]), 0.98) == pytest.approx([0.3, 0.7])   # one epoch: itself


def test_candidate_scores_hand_computed():
    p_given = np.array([[0.5, 0.2], [1.0, 0.4]])      # (epochs, samples)
    p_rival = np.array([[0.3, 0.6], [0.0, 0.5]])
    scores = ds.candidate_scores(p_given, p_rival, given=np.array([0, 0]))
    assert scores["loss"] == pytest.approx([0.0, 0.6])
    assert scores["loss_mean_all"] == pytest.approx([0.25, 0.7])
    assert scores["margin_mean_all"] == pytest.approx([-0.6, 0.25])        # margins [0.2, -0.4], [1.0, -0.1]
    assert scores["loss_ema0.9"] == pytest.approx([1 - 0.145 / 0.19, 1 - 0.058 / 0.19])
    # both samples carry label 0: centring subtracts their mean
    centred = scores["loss_ema0.9_class_centred"]
    assert centred == pytest.approx(scores["loss_ema0.9"] - scores["loss_ema0.9"].mean())


def test_class_centred_uses_each_given_label_separately():
    out = ds.class_centred(np.array([1.0, 3.0, 10.0]), np.array([0, 0, 1]))
    assert out == pytest.approx([-1.0, 1.0, 0.0])


def test_report_epochs_default_every_ten_and_the_last():
    assert ds.report_epochs([], 35) == [10, 20, 30, 35]
    assert ds.report_epochs([5, 40], 40) == [5, 40] and ds.report_epochs([5], 40) == [5, 40]


def test_tiny_run_matches_the_trainers_own_candidates(cifar10_dir, tmp_path):
    out = tmp_path / "table.md"
    argv = ["--data-dir", cifar10_dir, "--subset", "6", "--epochs", "2", "--width", "8", "--eval-every", "2",
            "--batch-size", "32", "--work-dir", str(tmp_path / "runs"), "--out", str(out),
            "-o", "data_loader.eval_batch_size=100", "--methods", "sop", "--clean-pass", "--report", "1"]
    assert ds.main(argv) == 0
    (row,) = json.load(open(tmp_path / "table.json"))
    assert (row["setting"], row["method"]) == ("sym50", "sop") and list(row["reports"]) == ["1", "2"]
    run_metrics = sorted((tmp_path / "runs" / "sym50_sop").glob("*/metrics.jsonl"))[0]
    trainer_rows = [json.loads(line) for line in open(run_metrics)]
    for epoch, logged in zip(("1", "2"), trainer_rows, strict=True):
        report = row["reports"][epoch]
        # the trainer's loss_avg is the bias-corrected EMA with momentum 0.9 of the same logits
        assert report["loss_ema0.9"] == pytest.approx(logged["noise_candidates/auroc_loss_avg"], abs=1e-9)
        assert report["loss"] == pytest.approx(logged["noise_candidates/auroc_loss"], abs=1e-9)
        assert report["u2"] == pytest.approx(logged["noise_candidates/auroc_u2"], abs=1e-9)
        assert 0 <= report["fits clean labels"] <= 1 and 0 <= report["clean_loss"] <= 1
    table = out.read_text()
    assert "**50% symmetric, SOP**" in table and "| score | epoch 1 | epoch 2 |" in table
    assert f"| loss_ema0.9 | {row['reports']['1']['loss_ema0.9']:.3f} |" in table


def test_parallel_jobs_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        ds.main(["--jobs", "2"])
    assert exit_info.value.code == 2 and "one after another" in capsys.readouterr().err


def test_u2_is_clamped_like_the_trainers_and_also_reported_unclamped():
    recorder = ds.EpochRecorder(clean_pass=False)
    recorder.given, recorder.clean = np.array([0, 0, 0, 0]), np.array([0, 0, 1, 1])   # samples 2, 3 wrong
    recorder.epochs = [{"p_given": np.array([0.9, 0.8, 0.3, 0.6]), "p_rival": np.array([0.1, 0.2, 0.7, 0.4]),
                        "u2": np.array([0.5, 2.0, 3.0, 0.2])}]
    report = recorder.report(1)
    # unclamped: 3.0 beats 0.5 and 2.0, 0.2 beats neither -> 2 of 4 pairs
    assert report["u2_unclamped"] == pytest.approx(0.5)
    # clamped to [0.5, 1, 1, 0.2]: 1 beats 0.5 and ties 1 (half a pair) -> 1.5 of 4
    assert report["u2"] == pytest.approx(0.375)
    assert report["fits clean labels"] == 1.0 and report["fits wrong labels"] == 0.5


def test_report_epochs_outside_the_run_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        ds.main(["--epochs", "5", "--report", "3,9"])
    assert exit_info.value.code == 2 and "1..5" in capsys.readouterr().err


def test_a_failed_run_is_a_section_and_the_table_is_still_written(cifar10_dir, tmp_path):
    out = tmp_path / "table.md"
    argv = ["--data-dir", cifar10_dir, "--epochs", "2", "--work-dir", str(tmp_path / "runs"), "--out", str(out),
            "-o", "arch.args.width=-3", "--methods", "ce"]
    assert ds.main(argv) == 1
    (row,) = json.load(open(tmp_path / "table.json"))
    assert row == {"setting": "sym50", "method": "ce", "error": "train.py exit 2"}
    assert "**50% symmetric, cross-entropy**: train.py exit 2, nothing recorded" in out.read_text()
