"""benchmarks/accuracy.py end to end on the fake CIFAR-10 with tiny knobs."""
import json
import os

import numpy as np
import pytest
import torch

from benchmarks import accuracy


def tiny_args(cifar10_dir, tmp_path, *extra):
    return ["--data-dir", cifar10_dir, "--subset", "6", "--epochs", "2", "--width", "8", "--eval-every", "2",
            "--batch-size", "32", "--work-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "table.md"),
            "-o", "data_loader.eval_batch_size=100", *extra]


def test_table_of_two_settings_trained_in_parallel_then_reused(cifar10_dir, tmp_path, capsys):
    argv = tiny_args(cifar10_dir, tmp_path, "--settings", "clean,sym50", "--methods", "sop+", "--jobs", "2")
    assert accuracy.main(argv) == 0
    rows = json.load(open(tmp_path / "table.json"))
    assert [(r["setting"], r["method"]) for r in rows] == [("clean", "sop+"), ("sym50", "sop+")]  # as given
    for row in rows:
        metrics = [json.loads(line) for line in open(os.path.join(row["run_dir"], "metrics.jsonl"))]
        assert [m["epoch"] for m in metrics] == [1, 2] and "accuracy/test" not in metrics[0]
        assert row["final"] == metrics[-1]["accuracy/test"] == row["best"] and row["best_epoch"] == 2
        config = json.load(open(os.path.join(row["run_dir"], "config.json")))
        assert config["data_loader"]["train_subset"] == 6 and config["arch"]["args"]["width"] == 8
        assert config["train_loss"]["args"]["ratio_consistency"] == 0.9 and row["wall_s"] > 0
    assert rows[0]["noise"] == 0.0 and 0 < rows[1]["noise"] <= 0.5   # 60 images, round(0.5 * 300) redrawn overall
    assert rows[0]["auroc"] is None                                   # no noisy sample: null in metrics.jsonl
    assert rows[1]["auroc"] == metrics[-1]["noise/auroc"]
    assert rows[1]["auroc_candidates"]["loss_avg"] == rows[1]["auroc"]   # the default score
    assert set(rows[1]["auroc_candidates"]) == {"loss", "loss_avg", "u2", "sop", "sop_avg", "v2"}
    issues = json.load(open(os.path.join(rows[1]["run_dir"], "label_issues.json")))
    assert rows[1]["export"]["score"] == "loss_avg" and rows[1]["export"]["f1"] == issues["f1"]
    assert rows[0]["export"]["auroc"] is None                        # clean labels: nothing to detect
    table = open(tmp_path / "table.md").read()
    assert "| 50% symmetric | 33.3% | SOP+ |" in table and table.count("| 123 |") == 2
    assert f"| {issues['auroc']:.3f} / {issues['f1']:.3f} |" in table
    assert "Command: `python benchmarks/accuracy.py --data-dir" in table and "width 8, 2 epochs" in table

    # --reuse takes the finished runs: same numbers, no new run directories
    capsys.readouterr()
    assert accuracy.main(argv + ["--reuse"]) == 0
    again = json.load(open(tmp_path / "table.json"))
    assert again == rows
    assert sorted(os.listdir(tmp_path / "runs")) == ["clean_sop_plus", "sym50_sop_plus"]
    assert all(len(os.listdir(tmp_path / "runs" / name)) == 1 for name in os.listdir(tmp_path / "runs"))


def test_each_method_sets_its_loss(tmp_path):
    from parse_config import parse_args
    args = accuracy.build_parser().parse_args(["--work-dir", str(tmp_path), "--lr-u", "3", "--seed", "5"])
    losses = {}
    assert args.methods == ["ce", "sop", "sop+"]   # the oracle is a reference, trained only on request
    for method in ("ce", "sop", "sop+", "oracle"):
        config, run_dir, _ = parse_args(accuracy.train_argv(args, "asym40", method))
        loss = config["train_loss"]
        losses[method] = (loss["type"], loss["args"]["ratio_consistency"], loss["args"]["ratio_balance"])
        assert loss["args"]["lr_u"] == 3 and config["seed"] == config["noise"]["seed"] == 5
        assert config["noise"]["type"] == "asym" and config["noise"]["rate"] == 0.4
        assert os.path.dirname(os.path.dirname(run_dir)) == str(tmp_path)
    assert losses == {"ce": ("cross_entropy", 0.9, 0.1), "sop": ("sop", 0.0, 0.0), "sop+": ("sop", 0.9, 0.1),
                      "oracle": ("oracle_cross_entropy", 0.9, 0.1)}


def test_sop_learning_rates_are_per_setting_unless_given(tmp_path):
    from parse_config import parse_args

    def lrs(cli, setting):
        args = accuracy.build_parser().parse_args(["--work-dir", str(tmp_path)] + cli)
        loss = parse_args(accuracy.train_argv(args, setting, "sop"))[0]["train_loss"]["args"]
        return loss["lr_u"], loss["lr_v"]
    assert lrs([], "asym40") == (1.0, 10.0) and lrs([], "sym50") == (10.0, 10.0)
    assert lrs(["--lr-v", "30"], "asym40") == (1.0, 30.0)
    assert lrs(["--lr-u", "3", "--lr-v", "30"], "sym50") == lrs(["--lr-u", "3", "--lr-v", "30"], "asym40") == (3, 30)


def test_a_failed_run_is_a_table_row_and_a_nonzero_exit(cifar10_dir, tmp_path):
    # a CIFAR-N label file of 5 labels does not fit the fake training set of 300 images
    labels = tmp_path / "short_human.pt"
    torch.save({"clean_label": np.zeros(5, np.int64), "worse_label": np.ones(5, np.int64)}, labels)
    argv = tiny_args(cifar10_dir, tmp_path, "--settings", "worst", "--methods", "sop", "--cifar-n-file", str(labels))
    assert accuracy.main(argv) == 1
    row, = json.load(open(tmp_path / "table.json"))
    assert row["error"].startswith("train.py exit 2: error:") and "has 5 labels but the training set has 300" in row["error"]
    assert "| CIFAR-10N worst | — | SOP | train.py exit 2" in open(tmp_path / "table.md").read()


def test_markdown_table_formats_percentages_and_missing_auroc():
    row = dict(setting="asym40", method="sop", final=0.61234, best=0.7, best_epoch=12, auroc=None,
               train_fit=0.5, noise=0.2, wall_s=90.0)
    exported = dict(row, auroc=0.91234, export={"auroc": 0.93456, "f1": 0.8})
    assert accuracy.markdown_table([row, exported], 7).splitlines()[2:] == [
        "| 40% asymmetric | 20.0% | SOP | 61.2 | 70.0 (12) | — | — | 50.0 | 7 | 1.5 min |",
        "| 40% asymmetric | 20.0% | SOP | 61.2 | 70.0 (12) | 0.912 | 0.935 / 0.800 | 50.0 | 7 | 1.5 min |"]


def test_margins_table_compares_each_method_with_cross_entropy():
    ce = dict(setting="sym50", method="ce", final=0.30, best=0.36)
    rows = [ce, dict(setting="sym50", method="sop", final=0.42, best=0.43),
            dict(setting="sym50", method="sop+", error="train.py exit 3: ..."),
            dict(setting="clean", method="sop", final=0.5, best=0.5)]   # no CE row for clean: no line
    assert accuracy.margins_table(rows).splitlines()[2:] == ["| 50% symmetric | 6.0 | SOP | +12.0 | +6.0 |"]
    assert accuracy.margins_table(rows[1:]) == ""


def test_same_run_ignores_keys_one_config_lacks_but_not_changed_values():
    stored = {"seed": 1, "trainer": {"epochs": 3}, "train_loss": {"args": {"lr_u": 3.0}}}
    assert accuracy.same_run(stored, {"seed": 1, "trainer": {"epochs": 3, "new_key": 0},
                                      "train_loss": {"args": {"lr_u": 3.0}}})
    assert not accuracy.same_run(stored, {"seed": 1, "trainer": {"epochs": 3}, "train_loss": {"args": {"lr_u": 10.0}}})


def test_a_run_from_before_the_official_identity_shortcut_is_not_reused_for_the_new_network():
    old = {"seed": 1, "arch": {"type": "PreActResNet18", "args": {"width": 16}}}   # trained with "input"
    wanted = {"seed": 1, "arch": {"type": "PreActResNet18", "args": {"width": 16, "identity_shortcut": "preactivated"}}}
    assert not accuracy.same_run(old, wanted)
    as_before = {"type": "PreActResNet18", "args": {"width": 16, "identity_shortcut": "input"}}
    assert accuracy.same_run(old, {**wanted, "arch": as_before})
    assert accuracy.same_run(wanted, wanted)


def test_same_run_ignores_what_cannot_change_the_numbers():
    ce = {"seed": 1, "data_loader": {"eval_batch_size": 512},
          "train_loss": {"type": "cross_entropy", "args": {"lr_u": 10.0}}}
    assert accuracy.same_run(ce, {"seed": 1, "data_loader": {"eval_batch_size": "auto"},
                                  "train_loss": {"type": "cross_entropy", "args": {"lr_u": 1.0}}})
    sop = {"seed": 1, "train_loss": {"type": "sop", "args": {"lr_u": 10.0}}}
    assert not accuracy.same_run(sop, {"seed": 1, "train_loss": {"type": "sop", "args": {"lr_u": 1.0}}})
    assert not accuracy.same_run(ce, {"seed": 1, "train_loss": {"type": "sop", "args": {"lr_u": 10.0}}})
    oracle = {"seed": 1, "train_loss": {"type": "oracle_cross_entropy", "args": {"lr_u": 10.0}}}
    assert accuracy.same_run(oracle, {"seed": 1, "train_loss": {"type": "oracle_cross_entropy", "args": {"lr_u": 1.0}}})
    assert not accuracy.same_run(oracle, ce)


def test_repeated_names_are_trained_once_and_jobs_must_be_positive(capsys):
    args = accuracy.build_parser().parse_args(["--settings", "sym50,clean,sym50", "--methods", "ce,ce"])
    assert args.settings == ["sym50", "clean"] and args.methods == ["ce"]
    with pytest.raises(SystemExit) as stop:
        accuracy.build_parser().parse_args(["--jobs", "0"])
    assert stop.value.code == 2 and "expected an integer >= 1; got '0'" in capsys.readouterr().err


def test_a_run_that_raises_becomes_an_error_row_and_the_table_is_still_written(tmp_path, monkeypatch):
    def fake_run(args, setting, method):
        if method == "sop":
            raise FileNotFoundError("benchmark_wall_s.txt")
        return dict(final=0.5, best=0.5, best_epoch=1, auroc=None, train_fit=0.5, noise=0.0, wall_s=1.0)
    monkeypatch.setattr(accuracy, "run_one", fake_run)
    out = tmp_path / "table.md"
    assert accuracy.main(["--settings", "clean", "--methods", "ce,sop", "--jobs", "2", "--out", str(out)]) == 1
    rows = json.load(open(tmp_path / "table.json"))
    assert [r["method"] for r in rows] == ["ce", "sop"] and rows[1]["error"] == "FileNotFoundError: benchmark_wall_s.txt"
    assert "| clean | — | SOP | FileNotFoundError: benchmark_wall_s.txt |" in out.read_text()


def test_unknown_setting_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        accuracy.main(["--settings", "sym50,sym80"])
    assert stop.value.code == 2
    assert "expected a comma list of sym50, asym40, worst, clean; got 'sym50,sym80'" in capsys.readouterr().err
