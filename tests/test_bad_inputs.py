"""Bad configs, CLI values and files: exit code 2, one line naming the key or file, nothing left behind."""
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import train
from tests.cifar_fixtures import write_fake_cifar10

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Fake data, a finished 1-epoch run to resume, and assorted bad files."""
    root = tmp_path_factory.mktemp("bad")
    data = str(root / "data")
    write_fake_cifar10(data, n_train=120, n_test=40)
    base = ["-c", "config_cifar10.json", "--data_dir", data, "--bs", "32", "--epochs", "1", "--consist", "0",
            "-o", "arch.args.width=8", "-o", "trainer.progress_bar=false", "-o", "trainer.tensorboard=false"]
    assert train.main(base + ["-o", f"trainer.save_dir={root / 'runs'}"]) == 0
    run_dir, = glob.glob(str(root / "runs" / "*" / "*"))
    files = {"run": run_dir, "data": data, "ckpt": os.path.join(run_dir, "checkpoint-latest.pth")}

    state = torch.load(files["ckpt"], weights_only=True)
    state["progress"] = {"epoch": 2, "step": 2, "num_batches": 4, "batch_size": 32}
    mid = root / "mid"
    mid.mkdir()
    torch.save(state, mid / "checkpoint-latest.pth")
    files["mid"] = str(mid)
    state["progress"]["num_batches"] = 5     # as if another world size had split the epoch differently
    (root / "mid_other").mkdir()
    torch.save(state, root / "mid_other" / "checkpoint-latest.pth")
    files["mid_other"] = str(root / "mid_other")
    state.pop("progress")
    state["config"]["lr_scheduler"] = {"type": "none", "args": {}}   # --epochs may change: no cosine
    state["config"]["trainer"]["epochs"] = 3
    (root / "ep1_of_3").mkdir()
    torch.save(state, root / "ep1_of_3" / "checkpoint-latest.pth")
    files["ep1_of_3"] = str(root / "ep1_of_3")
    with open(files["ckpt"], "rb") as f:
        good = f.read()
    (root / "truncated.pth").write_bytes(good[:len(good) // 3])
    torch.save({"epoch": 1, "config": {}, "x": _Evil(str(root / "marker"))}, root / "evil.pth")
    files["marker"] = str(root / "marker")
    (root / "empty_run").mkdir()
    (root / "bad.json").write_text('{"seed": 1,')
    (root / "list.json").write_text("[1, 2]")
    (root / "typo.json").write_text('{"trainer": {"epohcs": 3}}')
    (root / "a_file").write_text("not a directory")
    torch.save({"clean_label": np.arange(50) % 10, "worse_label": np.arange(50) % 10}, root / "short_n.pt")
    for name, damage in (("garbage", lambda path: open(path, "wb").write(b"\x80\x04garbage")),
                         ("wrong_shape", _wrong_shape)):
        copy = root / f"data_{name}"
        shutil.copytree(data, copy)
        damage(str(copy / "cifar-10-batches-py" / "data_batch_1"))
        files[f"data_{name}"] = str(copy)
    return root, base, files


class _Evil:
    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)

    def __init__(self, marker):
        self.marker = marker


def _wrong_shape(path):
    import pickle
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    batch[b"data"] = batch[b"data"][:, :1000]
    with open(path, "wb") as f:
        pickle.dump(batch, f)


# (extra argv, fragment the message must contain). R = the world's root, run/ckpt/mid/data_* = its files.
CASES = [
    (["-o", "trainer.epochs=0"], "'trainer.epochs' must be >= 1"),
    (["--epochs", "2.5"], "argument --epochs: invalid int value"),
    (["-o", "trainer.epochs=true"], "'trainer.epochs' must be int, got True"),
    (["--percent", "1.5"], "'noise.rate' must be in [0.0, 1.0], got 1.5"),
    (["--percent", "-0.1"], "'noise.rate'"),
    (["--lr", "0"], "'optimizer.args.lr' must be > 0.0"),
    (["--bs", "0"], "'data_loader.batch_size'"),
    (["--bs", "abc"], "argument --bs"),
    (["-o", "data_loader.batch_size=12.5"], "'data_loader.batch_size' must be int"),
    (["-o", "bogus.key=1"], "bogus.key"),
    (["-o", "nonsense"], "KEY.PATH=VALUE"),
    (["-o", "noise.type=weird"], "'noise.type' must be one of"),
    (["-o", "data_loader.dataset=mnist"], "'data_loader.dataset'"),
    (["-o", "data_loader.pipeline=gpu"], "'data_loader.pipeline'"),
    (["-o", "optimizer.type=LBFGS"], "'optimizer.type'"),
    (["-o", "lr_scheduler.type=MultiStepLR"], "'lr_scheduler.args.milestones'"),
    (["-o", "trainer.amp=fp8"], "'trainer.amp'"),
    (["-o", "data_loader.validation_split=1.0"], "'data_loader.validation_split' must be below 1"),
    (["-o", "train_loss.args.lr_u=-1"], "'train_loss.args.lr_u' must be >= 0.0"),
    (["-o", "train_loss.args.lr_u=fast"], "'train_loss.args.lr_u' must be float"),
    (["-o", "train_loss.args.ratio_consistensy=0.5"], "'train_loss.args.ratio_consistensy' is not an argument"),
    (["-o", "arch.type=VGG"], "'arch.type'"),
    (["-o", "arch.args.width=0"], "'arch.args.width' must be a positive integer"),
    (["-o", "arch.args.depth=3"], "'arch.args.depth' is not an argument"),
    (["-o", "optimizer.args.momentum=-1"], "'optimizer.args.momentum'"),
    (["-o", "optimizer.args.nesterov_=true"], "'optimizer.args.nesterov_' is not an argument"),
    (["-o", "name=.."], "'name'"),
    (["-o", "trainer.monitor=max val_accuracy"], "'trainer.monitor'"),
    (["-o", "seed=-1"], "'seed' must be in [0, 18446744073709551615], got -1"),
    (["-o", "noise.seed=abc"], "'noise.seed' must be an integer or null"),
    (["-o", "trainer=1"], "'trainer' must be an object"),
    (["-o", "arch=1"], "'arch' must be an object"),
    (["-o", "lr_scheduler=1"], "'lr_scheduler' must be an object"),
    (["-o", "trainer.save_dir=R/a_file"], "'trainer.save_dir' is a file"),
    (["-o", "trainer.save_dir=R/a_file/runs"], "trainer.save_dir: cannot create R/a_file/runs: Not a directory"),
    (["--seed", str(2 ** 64)], "'seed' must be in [0, 18446744073709551615], got 18446744073709551616"),
    (["-o", "data_loader.validation_split=0.01"], "validation_split 0.01 puts no image in the validation set"),
    (["-o", "data_loader.train_subset=1", "-o", "data_loader.validation_split=0.99"],
     "the training set has 0 image(s) after data_loader.train_subset and validation_split"),
    (["-o", "noise.type=human", "-o", "noise.file=R/absent.pt"], "'noise.file' not found: R/absent.pt"),
    (["-o", "noise.type=human", "-o", "noise.label_set=bogus"], "'noise.label_set'"),
    (["-o", "noise.type=human", "-o", "noise.file=R/short_n.pt"], "R/short_n.pt: 'clean_label' has 50 labels"),
    (["-c", "R/missing.json"], "config file not found: R/missing.json"),
    (["-c", "R/bad.json"], "config file R/bad.json is not valid JSON"),
    (["-c", "R/list.json"], "R/list.json must hold a JSON object"),
    (["-c", "R/typo.json"], "unknown key 'trainer.epohcs'"),
    (["--data_dir", "data_garbage"], "data_batch_1"),
    (["--data_dir", "data_wrong_shape"], "data_batch_1: 'data' must be uint8 (n, 3072)"),
    (["--data_dir", "R/nothing", "-o", "data_loader.download=false"], "R/nothing/cifar-10-batches-py"),
]

RESUME_CASES = [
    (["-r", "R/nowhere"], "resume path not found: R/nowhere"),
    (["-r", "R/empty_run"], "no valid checkpoint in R/empty_run"),
    (["-r", "R/truncated.pth"], "checkpoint R/truncated.pth is corrupt or truncated"),
    (["-r", "R/evil.pth"], "refusing checkpoint R/evil.pth"),
    (["-r", "ckpt", "-o", "arch.type=ResNet34"], "but this changes arch.type \"PreActResNet18\" -> \"ResNet34\";"),
    (["-r", "ckpt", "-o", "arch.args.width=16"], "but this changes arch.args.width 8 -> 16;"),
    (["-r", "ckpt", "-o", "data_loader.train_subset=5"], "but this changes data_loader.train_subset 0 -> 5;"),
    (["-r", "ckpt", "--percent", "2"], "but this changes noise.rate 0.5 -> 2.0;"),
    # the same number of samples, but other labels: u, v and the averages would belong to other ones
    (["-r", "ckpt", "-o", "noise.seed=7"], "but this changes noise.seed 123 -> 7;"),
    (["-r", "ckpt", "--percent", "0.3"], "but this changes noise.rate 0.5 -> 0.3;"),
    # settings the restored optimiser, scheduler and u/v states would silently override
    (["-r", "ckpt", "--epochs", "3"],
     "keeps the settings it was trained with, but this changes trainer.epochs 1 -> 3;"),
    (["-r", "ckpt", "--lr", "0.5", "--lr_u", "0"],
     "changes optimizer.args.lr 0.02 -> 0.5, train_loss.args.lr_u 10 -> 0.0; start a new run (-c)"),
    (["-r", "mid", "--bs", "16"], "but this changes data_loader.batch_size 32 -> 16;"),
    (["-r", "ckpt", "-o", "lr_scheduler=1"], "but this changes lr_scheduler null -> 1, lr_scheduler.args.eta_min"),
    (["-r", "ep1_of_3", "--epochs", "1"],
     "has finished epoch 1, so --epochs 1 trains nothing; give --epochs 2 or more"),
    (["-r", "mid_other"], "but this run has 4 batches of 32 per epoch; resume it with the number of processes"),
    ([], "give a config with -c"),
]


def resolve(items, root, files):
    out = []
    for item in items:
        item = files[item] if item in files else item
        out.append(item.replace("R/", f"{root}/"))
    return out


def snapshot(directory):
    """Every file's bytes under ``directory``: a failed resume must leave the run as it was."""
    result = {}
    for path in glob.glob(os.path.join(directory, "**"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                result[path] = f.read()
    return result


def check_one_line(err, fragment):
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert fragment in err and "Traceback" not in err, err


@pytest.mark.parametrize("extra, fragment", CASES, ids=[f"{i}-{c[1][:30]}" for i, c in enumerate(CASES)])
def test_bad_config_cli_or_file(world, tmp_path, capsys, extra, fragment):
    root, base, files = world
    save_dir = tmp_path / "saved"
    argv = base + ["-o", f"trainer.save_dir={save_dir}"] + resolve(extra, root, files)
    assert train.main(argv) == 2
    check_one_line(capsys.readouterr().err, fragment.replace("R/", f"{root}/"))
    assert not save_dir.exists()


@pytest.mark.parametrize("extra, fragment", RESUME_CASES, ids=[c[1][:30] for c in RESUME_CASES])
def test_bad_resume(world, capsys, extra, fragment):
    root, _, files = world
    before = snapshot(str(root))
    assert train.main(resolve(extra, root, files)) == 2
    check_one_line(capsys.readouterr().err, fragment.replace("R/", f"{root}/"))
    assert snapshot(str(root)) == before        # nothing written, deleted or rewritten
    assert not os.path.exists(files["marker"])  # the pickled os.system never ran


def test_every_problem_of_a_config_in_one_message(world, tmp_path, capsys):
    root, base, _ = world
    assert train.main(base + ["-o", f"trainer.save_dir={tmp_path}/s", "--percent", "3", "--lr", "-1",
                              "-o", "arch.args.width=0", "-o", "trainer.eval_every=0"]) == 2
    err = capsys.readouterr().err
    check_one_line(err, "invalid config")
    for key in ("noise.rate", "optimizer.args.lr", "arch.args.width", "trainer.eval_every"):
        assert f"'{key}'" in err


@pytest.mark.parametrize("extra, fragment", [
    (["-c", "R/bad.json"], "R/bad.json is not valid JSON"),
    (["-r", "R/truncated.pth"], "R/truncated.pth is corrupt or truncated"),
])
def test_real_process_exit_code_and_stderr(world, extra, fragment):
    root, _, files = world
    result = subprocess.run([sys.executable, "train.py", *resolve(extra, root, files)], cwd=REPO,
                            capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 2 and result.stdout == ""
    check_one_line(result.stderr, fragment.replace("R/", f"{root}/"))

