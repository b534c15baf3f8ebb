"""benchmarks/heldout_detection.py: test-set noise drawn like the run's, and its table on tiny runs."""
import glob
import json
import os

import numpy as np
import pytest

import train
from benchmarks import heldout_detection as hd


def test_draw_like_follows_each_class_row():
    permute = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)
    labels = np.array([0, 1, 2, 2, 0])
    assert hd.draw_like(permute, labels, np.random.default_rng(0)).tolist() == [1, 2, 0, 0, 1]
    # class 1 never occurred in the run: its zero row keeps the label
    absent = np.array([[0.5, 0, 0.5], [0, 0, 0], [0, 0, 1]])
    drawn = hd.draw_like(absent, np.repeat([0, 1, 2], 20_000), np.random.default_rng(1))
    assert set(drawn[:20_000]) == {0, 2} and abs((drawn[:20_000] == 2).mean() - 0.5) < 0.01
    assert (drawn[20_000:40_000] == 1).all() and (drawn[40_000:] == 2).all()


def test_draw_like_gives_symmetric_noise_its_rate():
    rate, classes = 0.5, 10   # a label redrawn uniformly from all classes: wrong with rate * 9/10
    sym = np.full((classes, classes), rate / classes) + np.eye(classes) * (1 - rate)
    labels = np.arange(50_000) % classes
    drawn = hd.draw_like(sym, labels, np.random.default_rng(2))
    assert abs((drawn != labels).mean() - 0.45) < 0.01
    assert np.bincount(drawn[labels == 3], minlength=classes).argmax() == 3


def test_table_of_a_noisy_and_a_clean_run(tiny_run_args, tmp_path, capsys):
    noisy_args = tiny_run_args + ["--epochs", "2", "-o", "data_loader.train_subset=30", "--name", "noisy"]
    clean_args = noisy_args[:-1] + ["clean", "-o", "noise.type=clean"]
    assert train.main(noisy_args) == 0 and train.main(clean_args) == 0
    (noisy_dir,) = glob.glob(str(tmp_path / "saved" / "noisy" / "*"))
    (clean_dir,) = glob.glob(str(tmp_path / "saved" / "clean" / "*"))

    row = hd.measure(noisy_dir, draws=3)
    summary = json.load(open(os.path.join(noisy_dir, "label_issues.json")))
    results = json.load(open(os.path.join(noisy_dir, "results.json")))
    labels = np.load(os.path.join(noisy_dir, "labels.npz"))
    index = labels["train_index"]
    # the exported score's AUROC and the test accuracy are the run's own
    assert row["train_auroc_exported"] == pytest.approx(summary["auroc"]) and row["score"] == "loss_avg"
    assert row["test_accuracy"] == pytest.approx(results["last_test_accuracy"])
    assert row["realised"] == pytest.approx((labels["noisy_labels"][index] != labels["clean_labels"][index]).mean())
    assert 0 <= row["heldout_auroc"] <= 1 and row["draws"] == 3

    capsys.readouterr()
    assert hd.main([clean_dir]) == 2
    assert "all correct; give --noise-of" in capsys.readouterr().err
    out = tmp_path / "table.md"
    assert hd.main([clean_dir, "--noise-of", noisy_dir, "--draws", "2", "--out", str(out)]) == 0
    clean_row = out.read_text().splitlines()[2]
    assert clean_row.startswith(f"| {os.path.join(clean_dir, 'checkpoint-latest.pth')} | 2 |")
    assert clean_row.endswith("(2 draws) | — | — |")
    assert hd.main([clean_dir, "--noise-of", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err
