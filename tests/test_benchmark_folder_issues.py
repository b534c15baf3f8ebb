"""benchmarks/folder_issues.py: CIFAR-10 as an image folder, label issues scored blind."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks import folder_issues as fi
from data_loader.cifar import load_cifar


def test_score_export_reads_the_true_label_from_the_file_name():
    clean = np.array([0, 1, 1, 0, 2])                      # true labels of original indices 0..4
    rows = [  # ranked by score; indices 4 and 1 are mislabelled (given 0 and 2)
        {"path": "train/a/00004.png", "given_label": "0", "suggested_label": "2", "score": "0.9", "flag": "1"},
        {"path": "train/b/00003.png", "given_label": "0", "suggested_label": "1", "score": "0.7", "flag": "1"},
        {"path": "train/c/00001.png", "given_label": "2", "suggested_label": "1", "score": "0.4", "flag": "0"},
        {"path": "train/a/00000.png", "given_label": "0", "suggested_label": "0", "score": "0.1", "flag": "0"},
    ]
    result = fi.score_export(rows, clean)
    # wrong: scores 0.9, 0.4; right: 0.7, 0.1 -> 3 of 4 pairs ordered; flags: 1 of 2 right
    assert result["auroc"] == 0.75 and (result["precision"], result["recall"]) == (0.5, 0.5)
    assert result["realised_rate"] == 0.5 and result["suggested_accuracy"] == 0.5   # index 4 -> 2 right


def test_tiny_run_writes_the_noisy_folders_and_scores_the_blind_export(cifar10_dir, tmp_path):
    out = tmp_path / "table.md"
    argv = ["--data-dir", cifar10_dir, "--settings", "sym50", "--subset", "5", "--epochs", "1", "--width", "8",
            "--batch-size", "16", "--work-dir", str(tmp_path / "work"), "--out", str(out),
            "-o", "data_loader.eval_batch_size=100", "-o", "trainer.tensorboard=false"]
    assert fi.main(argv) == 0
    cifar = load_cifar("cifar10", cifar10_dir, download=False)
    root = tmp_path / "work" / "sym50_images"
    wrong, total = 0, 0
    for class_id, name in enumerate(cifar.class_names):   # every image: its pixels, in its given label's folder
        for file in sorted((root / "train" / name).glob("*.png")):
            index = int(file.stem)
            assert np.array_equal(np.asarray(Image.open(file)), cifar.train_images[index])
            wrong += int(cifar.train_labels[index] != class_id)
            total += 1
    assert total == 50 and len(list((root / "test").rglob("*.png"))) == len(cifar.test_labels)
    (row,) = json.load(open(tmp_path / "table.json"))
    assert row["realised_rate"] == pytest.approx(wrong / total) and wrong > 0
    assert 0 <= row["auroc"] <= 1 and 0 <= row["test_accuracy"] <= 1
    assert open(os.path.join(row["run_dir"], "train.log")).read().count("true labels unknown") == 1
    assert f"| {row['auroc']:.3f} |" in out.read_text()
