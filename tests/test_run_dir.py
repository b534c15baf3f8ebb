"""Fresh runs never share a directory, even when they start in the same second."""
import glob
import json
import os

import parse_config
import train
from utils.run_dir import claim_new_dir


def test_an_existing_name_gets_the_next_free_suffix(tmp_path):
    base = str(tmp_path / "runs" / "cifar10_sym50_1125_101010")
    assert claim_new_dir(base) == base                 # creates the parent folders too
    assert claim_new_dir(base) == base + "_2"
    assert claim_new_dir(base) == base + "_3"
    assert sorted(os.listdir(tmp_path / "runs")) == ["cifar10_sym50_1125_101010", "cifar10_sym50_1125_101010_2",
                                                    "cifar10_sym50_1125_101010_3"]


def test_two_runs_started_in_the_same_second_keep_their_own_results(tiny_run_args, tmp_path, monkeypatch):
    monkeypatch.setattr(parse_config, "run_tag", lambda config: "cifar10_sym50_1125_101010")   # same second
    for seed in (1, 2):
        assert train.main(tiny_run_args + ["--epochs", "1", "--seed", str(seed), "-o", "data_loader.train_subset=10",
                                           "-o", "trainer.tensorboard=false"]) == 0
    runs = sorted(glob.glob(str(tmp_path / "saved" / "*" / "*")))
    assert [os.path.basename(r) for r in runs] == ["cifar10_sym50_1125_101010", "cifar10_sym50_1125_101010_2"]
    for run, seed in zip(runs, (1, 2)):
        assert json.load(open(os.path.join(run, "config.json")))["seed"] == seed
        assert os.path.isfile(os.path.join(run, "results.json"))
        assert os.path.isfile(os.path.join(run, "label_issues.csv"))
        assert f"run directory: {run}" in open(os.path.join(run, "train.log")).read()
