"""Checkpoints: atomic writes under SIGKILL, clear errors for bad files, no code run on load."""
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from trainer.checkpoint import checkpoint_position, find_resume_checkpoint, load_checkpoint, save_atomic
from utils.atomic import remove_stale_temps
from utils.errors import CheckpointError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def state(epoch, step=None, size=10):
    progress = None if step is None else {"epoch": epoch + 1, "step": step}
    return {"epoch": epoch, "config": {"seed": 1}, "x": torch.full((size,), float(epoch)), "progress": progress}


def test_round_trip_keeps_tensors_and_plain_data(tmp_path):
    path = str(tmp_path / "checkpoint-latest.pth")
    save_atomic(state(3, step=2), path)
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["config"] == {"seed": 1} and loaded["progress"] == {"epoch": 4, "step": 2}
    assert torch.equal(loaded["x"], torch.full((10,), 3.0))
    assert checkpoint_position(loaded) == (3, 2)
    assert os.listdir(tmp_path) == ["checkpoint-latest.pth"]   # no temporary file left behind


@pytest.mark.parametrize("damage, fragment", [
    (lambda data: data[:len(data) // 2], "corrupt or truncated"),
    (lambda data: b"", "corrupt or truncated"),
    (lambda data: data[:100], "corrupt or truncated"),
    # same length, flipped bytes inside the tensor record: only the CRC check notices
    (lambda data: data[:-2000] + bytes(b ^ 0xFF for b in data[-2000:-1900]) + data[-1900:], "CRC"),
] + [(lambda data, seed=seed: random.Random(seed).randbytes(4096), "corrupt") for seed in range(8)])
def test_damaged_checkpoint_is_a_one_line_error_naming_the_file(tmp_path, damage, fragment):
    path = str(tmp_path / "checkpoint-latest.pth")
    save_atomic(state(1, size=20000), path)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(damage(data))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert path in message and fragment in message and "\n" not in message


def test_a_plain_dict_without_config_is_not_a_checkpoint(tmp_path):
    path = str(tmp_path / "other.pth")
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(str(tmp_path / "absent.pth"))


class _Payload:
    """Unpickling this runs ``touch marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("writer", ["torch.save", "raw pickle"])
def test_checkpoint_that_would_run_code_is_refused_and_the_code_does_not_run(tmp_path, writer):
    marker = tmp_path / "marker"
    path = str(tmp_path / "checkpoint-latest.pth")
    evil = {"epoch": 1, "config": {}, "model": _Payload(str(marker))}
    if writer == "torch.save":
        torch.save(evil, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(evil, f)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert not marker.exists()
    assert path in str(err.value) and ("refusing" in str(err.value) or "corrupt" in str(err.value))
    if writer == "torch.save":  # the reason names the blocked global
        assert "refusing" in str(err.value) and "system" in str(err.value)
    # the sanity check of this test: loading without weights_only really would run it
    torch.load(path, weights_only=False) if writer == "torch.save" else pickle.load(open(path, "rb"))
    assert marker.exists()


def test_run_directory_resumes_from_the_furthest_valid_checkpoint(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_atomic(state(2), str(run / "checkpoint-a.pth"))
    save_atomic(state(2, step=3), str(run / "checkpoint-b.pth"))    # 3 steps into epoch 3: further
    save_atomic(state(1, step=7), str(run / "checkpoint-c.pth"))
    save_atomic(state(9), str(run / "model_best.pth"))               # not a resume candidate
    with open(run / "checkpoint-d.pth", "wb") as f:                  # the newest, but truncated
        f.write(b"PK\x03\x04 truncated")
    assert find_resume_checkpoint(str(run)) == str(run / "checkpoint-b.pth")
    os.remove(run / "checkpoint-b.pth")
    assert find_resume_checkpoint(str(run)) == str(run / "checkpoint-a.pth")
    assert find_resume_checkpoint(str(run / "checkpoint-c.pth")) == str(run / "checkpoint-c.pth")
    for name in ("checkpoint-a.pth", "checkpoint-c.pth"):
        os.remove(run / name)
    with pytest.raises(CheckpointError, match="no valid checkpoint in .*checkpoint-d.pth is corrupt"):
        find_resume_checkpoint(str(run))
    with pytest.raises(CheckpointError, match="resume path not found"):
        find_resume_checkpoint(str(tmp_path / "nowhere"))


WRITER = textwrap.dedent("""
    import io, sys, time
    import torch
    from trainer.checkpoint import save_atomic
    path, mode = sys.argv[1], sys.argv[2]
    big = 2_000_000
    save_atomic({"epoch": 1, "config": {}, "x": torch.full((big,), 1.0)}, path)
    if mode == "stall":  # the test's own torch.save: write half the bytes, then wait to be killed
        real_save = torch.save
        def half_save(obj, f):
            buffer = io.BytesIO()
            real_save(obj, buffer)
            f.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
            f.flush()
            print("half written", flush=True)
            time.sleep(60)
        torch.save = half_save
        save_atomic({"epoch": 2, "config": {}, "x": torch.full((big,), 2.0)}, path)
    epoch = 1
    print("saved 1", flush=True)
    while True:
        epoch += 1
        save_atomic({"epoch": epoch, "config": {}, "x": torch.full((big,), float(epoch))}, path)
        print(f"saved {epoch}", flush=True)
""")


def start_writer(tmp_path, mode):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "checkpoint-latest.pth"), mode],
                            stdout=subprocess.PIPE, text=True, env=env)


def test_kill_in_the_middle_of_a_write_leaves_the_previous_checkpoint(tmp_path):
    writer = start_writer(tmp_path, "stall")
    assert writer.stdout.readline().strip() == "half written"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    temps = [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]
    assert len(temps) == 1                                        # the half-written file is a temporary
    loaded = load_checkpoint(str(tmp_path / "checkpoint-latest.pth"))
    assert loaded["epoch"] == 1 and torch.equal(loaded["x"], torch.full((2_000_000,), 1.0))
    assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-latest.pth")
    assert remove_stale_temps(str(tmp_path)) == 1 and not any(n.startswith(".tmp-") for n in os.listdir(tmp_path))


def test_kill_at_random_moments_of_a_save_loop_always_leaves_a_loadable_checkpoint(tmp_path):
    rng = random.Random(7)
    writer = start_writer(tmp_path, "loop")
    saved = 0
    for _ in range(3):
        target = saved + rng.randint(1, 3)
        while saved < target:
            saved = int(writer.stdout.readline().split()[1])
        loaded = load_checkpoint(str(tmp_path / "checkpoint-latest.pth"))  # read while it is being rewritten
        assert loaded["epoch"] >= saved and torch.equal(loaded["x"], torch.full((2_000_000,), float(loaded["epoch"])))
    time.sleep(rng.uniform(0.0, 0.1))   # most of a loop iteration is spent inside save_atomic
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    loaded = load_checkpoint(str(tmp_path / "checkpoint-latest.pth"))
    assert loaded["epoch"] >= saved and torch.equal(loaded["x"], torch.full((2_000_000,), float(loaded["epoch"])))


def test_a_checkpoint_of_other_rows_or_labels_is_refused_even_with_the_same_count(tmp_path):
    from data_loader.build import build_data
    from parse_config import complete_config
    from tests.cifar_fixtures import write_fake_cifar10
    from trainer.checkpoint import check_fits
    write_fake_cifar10(str(tmp_path), n_train=200, n_test=20)

    def data(**noise):
        config = complete_config({"data_loader": {"data_dir": str(tmp_path), "download": False, "train_subset": 10},
                                  "noise": {"type": "sym", "rate": 0.5, **noise}})
        return build_data(config, "cpu")

    trained = data(seed=1)
    saved = {"num_train": trained.num_train, "arch": "PreActResNet18", "data_fingerprint": trained.fingerprint}
    check_fits(saved, data(seed=1), "PreActResNet18", "ckpt.pth")                   # the same rows: fine
    other = data(seed=2)                                                            # other noise, same 100 rows
    assert other.num_train == trained.num_train and not torch.equal(other.train_noisy, trained.train_noisy)
    with pytest.raises(CheckpointError, match=r"ckpt.pth: the training rows differ from the checkpoint's \(other "
                                              r"images or other given labels: another CIFAR-N label file"):
        check_fits(saved, other, "PreActResNet18", "ckpt.pth")
    check_fits({**saved, "data_fingerprint": None}, other, "PreActResNet18", "ckpt.pth")   # older checkpoints
