"""No run lost to a stop, a kill or a divergence: resumed runs equal uninterrupted ones (CPU, width-8 net).

A 120-image fake CIFAR-10 with batch 32 gives 4 steps per epoch. Subprocess
runs use one thread: with two threads on a busy 2-core machine each step gets
~10x slower, and thread count changes the float results.
"""
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

import train
from tests.cifar_fixtures import write_fake_cifar10
from trainer.checkpoint import checkpoint_position, find_resume_checkpoint, load_checkpoint
from trainer.noise_monitor import NoiseMonitor
from trainer.signals import stop_on_signals
from trainer.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
# without state_dict on the monitor its logits buffer restarts at zero mid-epoch, so noise/* may differ
NOISE_STATE_SAVED = hasattr(NoiseMonitor, "state_dict")


@pytest.fixture(scope="module")
def small_cifar(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("small"))
    write_fake_cifar10(root, n_train=120, n_test=40)
    return root


@pytest.fixture(scope="module")
def straight_run(small_cifar, tmp_path_factory):
    """An uninterrupted 3-epoch run, in-process on one thread (as the subprocesses run)."""
    save_dir = tmp_path_factory.mktemp("straight")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train.main(run_args(small_cifar, save_dir, 3)) == 0
    finally:
        torch.set_num_threads(threads)
    run_dir, = run_dirs(save_dir)
    return run_dir


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_args(data_dir, save_dir, epochs):
    return ["-c", "config_cifar10.json", "--data_dir", data_dir, "--bs", "32", "--epochs", str(epochs),
            "-o", "arch.args.width=8", "-o", "data_loader.eval_batch_size=40",
            "-o", "trainer.progress_bar=false", "-o", f"trainer.save_dir={save_dir}"]


def run_dirs(save_dir):
    return glob.glob(os.path.join(save_dir, "*", "*"))


def final_state(run_dir):
    state = torch.load(os.path.join(run_dir, "checkpoint-latest.pth"), weights_only=True)
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    keep = [{k: v for k, v in row.items()
             if not k.startswith("time/") and (NOISE_STATE_SAVED or not k.startswith("noise"))} for row in rows]
    return state, json.dumps(keep, sort_keys=True)   # NaN-safe comparison of the rows


def assert_same_run(a_dir, b_dir):
    (a, a_rows), (b, b_rows) = final_state(a_dir), final_state(b_dir)
    assert a["epoch"] == b["epoch"] and b["progress"] is None
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert torch.equal(a["sop"]["u"], b["sop"]["u"]) and torch.equal(a["sop"]["v"], b["sop"]["v"])
    momentum = [s["momentum_buffer"] for s in a["optimizer"]["state"].values()]
    assert all(torch.equal(m, s["momentum_buffer"]) for m, s in zip(momentum, b["optimizer"]["state"].values()))
    assert a_rows == b_rows
    assert json.load(open(os.path.join(a_dir, "results.json"))) == json.load(open(os.path.join(b_dir, "results.json")))


def scalar_steps(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(run_dir)
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


def test_sigterm_mid_epoch_then_resume_is_bit_identical(small_cifar, straight_run, tmp_path, monkeypatch,
                                                        one_thread, capfd):
    """The real handlers of train.main, a real SIGTERM after step 6 (epoch 2, step 2 of 4)."""
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    real_step, calls = Trainer.train_step, []

    def train_step(self, batch):
        out = real_step(self, batch)
        calls.append(1)
        if len(calls) == 6:
            os.kill(os.getpid(), signal.SIGTERM)
        return out
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_step", train_step)
        assert train.main(run_args(small_cifar, tmp_path / "split", 3)) == 128 + signal.SIGTERM
    assert len(calls) == 6                                 # stopped after the step, not at the epoch end
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers
    err = capfd.readouterr().err
    assert "signal 15: stopping after the current step" in err and "stopped by signal 15 at epoch 2, step 2/4" in err

    run_dir, = run_dirs(tmp_path / "split")
    stopped = torch.load(os.path.join(run_dir, "checkpoint-latest.pth"), weights_only=True)
    assert stopped["epoch"] == 1 and stopped["progress"]["epoch"] == 2 and stopped["progress"]["step"] == 2
    assert stopped["progress"]["seen"] == 64
    assert train.main(["-r", run_dir]) == 0
    assert_same_run(straight_run, run_dir)
    assert scalar_steps(run_dir, "accuracy/test") == [1, 2, 3]
    assert scalar_steps(run_dir, "loss/train") == [1, 2, 3]


def test_pil_pipeline_mid_epoch_resume_skips_the_done_batches(small_cifar, tmp_path, monkeypatch, one_thread):
    """Approximate by design (augmentation draws of the skipped batches are redone): it completes the
    epoch with every sample seen once, continuing the saved partial sums."""
    args = run_args(small_cifar, tmp_path / "pil", 1) + [
        "--consist", "0", "-o", "data_loader.pipeline=pil", "-o", "data_loader.num_workers=0"]
    real_step, seen = Trainer.train_step, []

    def train_step(self, batch):
        seen.extend(batch.index.tolist())
        out = real_step(self, batch)
        if len(seen) == 64:
            self.request_stop(signal.SIGINT)
        return out
    monkeypatch.setattr(Trainer, "train_step", train_step)
    assert train.main(args) == 128 + signal.SIGINT
    run_dir, = run_dirs(tmp_path / "pil")
    assert train.main(["-r", run_dir]) == 0
    assert sorted(seen) == list(range(120))               # 2 batches before the stop, 2 after: no repeats
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert [r["epoch"] for r in rows] == [1]


def test_first_signal_requests_a_stop_second_aborts_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    requested = []
    with pytest.raises(KeyboardInterrupt):
        with stop_on_signals(requested.append):
            os.kill(os.getpid(), signal.SIGTERM)
            assert requested == [signal.SIGTERM]
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)   # not reached: the second signal raises at once
    assert requested == [signal.SIGTERM]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_non_finite_loss_stops_with_exit_3_and_keeps_the_last_good_checkpoint(small_cifar, tmp_path, monkeypatch,
                                                                             one_thread, capsys):
    import trainer.trainer as trainer_module
    real_loss, calls = trainer_module.sop_loss, []

    def sop_loss(*args, **kwargs):
        terms = real_loss(*args, **kwargs)
        calls.append(1)
        if len(calls) == 7:    # epoch 2, step 3
            terms["loss"] = terms["loss"] * float("nan")
        return terms
    monkeypatch.setattr(trainer_module, "sop_loss", sop_loss)
    assert train.main(run_args(small_cifar, tmp_path / "saved", 3)) == 3
    err = capsys.readouterr().err
    run_dir, = run_dirs(tmp_path / "saved")
    assert "error: non-finite loss at epoch 2, step 3: ce=" in err
    assert all(term in err for term in ("mse=", "balance=", "consistency=", "loss=nan"))
    assert f"the last good checkpoint is {os.path.join(run_dir, 'checkpoint-latest.pth')}" in err
    kept = torch.load(os.path.join(run_dir, "checkpoint-latest.pth"), weights_only=True)
    assert kept["epoch"] == 1 and kept["progress"] is None
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())
    assert [json.loads(line)["epoch"] for line in open(os.path.join(run_dir, "metrics.jsonl"))] == [1]


def launch(argv):
    return subprocess.Popen([sys.executable, "train.py", *argv], cwd=REPO, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_line(proc, fragment):
    for line in proc.stdout:
        if fragment in line:
            return True
    return False   # the process ended first


def test_sigterm_and_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(small_cifar, straight_run,
                                                                                       tmp_path):
    save_dir = tmp_path / "killed"
    fresh = run_args(small_cifar, save_dir, 3)
    proc = launch(fresh)   # SIGTERM once epoch 1 is logged: the stop lands in epoch 2 (mid-epoch or at its end)
    assert wait_for_line(proc, "epoch   1/3")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM and "stopped by signal 15" in err, err
    run_dir, = run_dirs(save_dir)
    assert os.path.isfile(os.path.join(run_dir, "checkpoint-latest.pth"))

    # First kill keyed on progress (right after epoch 2 is logged, so during its checkpoint write
    # or early in epoch 3: training is always cut short, however fast the machine), then one at a
    # seeded random moment, which may land anywhere, including after training has finished.
    rng, argv, moments = random.Random(11), ["-r", run_dir], []
    for kill_after in ("epoch   2/3", rng.uniform(0.05, 0.7)):
        proc = launch(argv)
        started = wait_for_line(proc, kill_after if isinstance(kill_after, str) else "run directory")
        if started and not isinstance(kill_after, str):
            time.sleep(kill_after)
        proc.kill()
        code = proc.wait()
        assert code == -signal.SIGKILL or not isinstance(kill_after, str)   # the random one may come late
        proc.communicate()
        moments.append((kill_after, checkpoint_position(load_checkpoint(find_resume_checkpoint(run_dir)))))
    assert moments[0][1] < (3, 0), moments
    result = subprocess.run([sys.executable, "train.py", *argv], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not glob.glob(os.path.join(run_dir, ".tmp-*"))
    assert_same_run(straight_run, run_dir)
    assert scalar_steps(run_dir, "accuracy/test") == [1, 2, 3]

