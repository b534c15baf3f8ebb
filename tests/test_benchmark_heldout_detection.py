"""benchmarks/heldout_detection.py: test-set noise drawn like the run's, and its table on tiny runs."""
import glob
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import evaluate
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


def given_probs(labels, p_given, num_classes):
    """Rows giving each label the probability p_given and sharing the rest among the other classes."""
    p_given = np.broadcast_to(np.asarray(p_given, dtype=np.float64), (len(labels),))
    probs = np.repeat(((1 - p_given) / (num_classes - 1))[:, None], num_classes, axis=1)
    probs[np.arange(len(labels)), labels] = p_given
    return torch.tensor(probs)


@pytest.fixture
def fake_checkpoint(monkeypatch, tmp_path):
    """A checkpoint file whose predictions are given by hand: 8 training images of 4 classes, every
    second label moved to the next class (so half of each class is wrong), and 4,000 test images."""
    clean = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    given = np.array([0, 1, 1, 2, 2, 3, 3, 0])
    # p(given): clean ones 0.9, 0.8, 0.3, 0.6; wrong ones 0.2, 0.7, 0.1, 0.5
    train_probs = given_probs(given, [0.9, 0.2, 0.8, 0.7, 0.3, 0.1, 0.6, 0.5], 4)
    test_labels = np.arange(4000) % 4
    data = SimpleNamespace(train_clean=torch.tensor(clean), train_noisy=torch.tensor(given), num_classes=4)

    def install(test_probs):
        pred = evaluate.CheckpointPredictions(data, {"epoch": 7}, train_probs, None, test_probs,
                                              torch.tensor(test_labels))
        monkeypatch.setattr(evaluate, "checkpoint_predictions", lambda checkpoint, data_dir=None: pred)
        return str(path)

    path = tmp_path / "fake.pth"
    path.write_bytes(b"")
    install.test_labels = test_labels
    return install


def test_heldout_auroc_against_hand_built_predictions(fake_checkpoint):
    labels = fake_checkpoint.test_labels
    # a network sure of every true label: each wrong test label has p 0.1, each right one 0.7
    row = hd.measure(fake_checkpoint(given_probs(labels, 0.7, 4)), draws=3)
    assert row["heldout_auroc"] == 1.0 and row["heldout_auroc_sd"] == 0.0
    assert abs(row["heldout_realised"] - 0.5) < 0.03 and row["realised"] == 0.5 and row["epoch"] == 7
    # training set: 1 - p(given) is 0.1, 0.2, 0.7, 0.4 for the right labels and 0.8, 0.3, 0.9, 0.5 for
    # the wrong ones, which outrank 13 of the 16 (right, wrong) pairs
    assert row["train_auroc_one_pass"] == pytest.approx(13 / 16)
    assert row["score"] == "loss" and row["train_auroc_exported"] == pytest.approx(13 / 16)
    # a network with no opinion ties every label
    assert hd.measure(fake_checkpoint(torch.full((len(labels), 4), 0.25)))["heldout_auroc"] == 0.5


def test_noise_of_a_run_with_other_classes_is_refused(fake_checkpoint, tmp_path, capsys):
    checkpoint = fake_checkpoint(given_probs(fake_checkpoint.test_labels, 0.7, 4))
    labels = np.arange(30) % 3
    np.savez(tmp_path / "labels.npz", clean_labels=labels, noisy_labels=(labels + 1) % 3,
             train_index=np.arange(30), transition_matrix=np.zeros((3, 3)))
    assert hd.main([checkpoint, "--noise-of", str(tmp_path)]) == 2
    assert "its noise is over 3 classes, the run's data has 4" in capsys.readouterr().err


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
    assert hd.main([noisy_dir, "--noise-of", clean_dir]) == 2
    assert "all correct, so there is no noise to copy" in capsys.readouterr().err
    assert hd.main([noisy_dir, "--out", str(tmp_path / "missing" / "t.md")]) == 2
    assert capsys.readouterr().err == f"error: --out {tmp_path / 'missing' / 't.md'}: its directory does not exist\n"
