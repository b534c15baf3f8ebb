"""benchmarks/flag_rules.py on a tiny run: each rule's rate and scores, checked against the run's files."""
import csv
import glob
import json
import os

import numpy as np
import pytest

import train
from benchmarks import flag_rules


def test_rules_are_scored_on_the_exported_ranking(tiny_run_args, tmp_path):
    assert train.main(tiny_run_args + ["--epochs", "2", "-o", "data_loader.train_subset=30"]) == 0
    (run_dir,) = glob.glob(str(tmp_path / "saved" / "*" / "*"))
    out = tmp_path / "rules.md"
    assert flag_rules.main([run_dir, "--out", str(out)]) == 0
    row = flag_rules.measure(run_dir)

    with open(os.path.join(run_dir, "label_issues.csv")) as f:
        scores = np.array([float(r["score"]) for r in csv.DictReader(f)])
    n = len(scores)
    summary = json.load(open(os.path.join(run_dir, "label_issues.json")))
    labels = np.load(os.path.join(run_dir, "labels.npz"))
    index = labels["train_index"]
    noisy = labels["noisy_labels"][index] != labels["clean_labels"][index]
    # the run's own export flags by the smaller estimate; its checkpoint gives the same ranking and count
    assert row["smaller (runs)"]["rate"] * n == summary["num_flagged"]
    assert row["smaller (runs)"]["f1"] == pytest.approx(summary["f1"]) and row["auroc"] == pytest.approx(summary["auroc"])
    assert row["mean score"]["rate"] == round(scores.mean() * n) / n
    assert row["smaller (runs)"]["rate"] == min(row["mean score"]["rate"], row["rejected group"]["rate"])
    assert row["realised"] == pytest.approx(noisy.mean()) and row["true count"]["rate"] == pytest.approx(noisy.mean())
    # flagging exactly the number of wrong labels makes every miss also a false flag
    assert row["true count"]["precision"] == pytest.approx(row["true count"]["recall"])
    m = row["mean score"]
    assert f"| {m['rate']:.3f} / {m['precision']:.3f} / {m['recall']:.3f} / {m['f1']:.3f} |" in out.read_text()
