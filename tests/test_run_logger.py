"""metrics.jsonl: one strict-JSON object per epoch, cut back on resume."""
import json

from trainer.run_logger import MetricsWriter


def _strict_rows(path):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    with open(path) as f:
        return [json.loads(line, parse_constant=refuse) for line in f]


def test_values_that_are_not_finite_numbers_are_written_as_null(tmp_path):
    writer = MetricsWriter(str(tmp_path), tensorboard=False)
    writer.write(1, {"noise/auroc": float("nan"), "loss/train": 2.5, "x": float("inf"), "n": 3})
    assert _strict_rows(writer.path) == [{"epoch": 1, "noise/auroc": None, "loss/train": 2.5, "x": None, "n": 3}]


def test_a_resumed_writer_drops_the_rows_after_its_epoch(tmp_path):
    writer = MetricsWriter(str(tmp_path), tensorboard=False)
    for epoch in (1, 2, 3):
        writer.write(epoch, {"loss/train": float(epoch)})
    resumed = MetricsWriter(str(tmp_path), tensorboard=False, start_epoch=2)
    resumed.write(3, {"loss/train": 0.5})
    assert _strict_rows(resumed.path) == [{"epoch": 1, "loss/train": 1.0}, {"epoch": 2, "loss/train": 2.0},
                                          {"epoch": 3, "loss/train": 0.5}]


def test_a_line_torn_by_a_kill_is_dropped_on_resume(tmp_path):
    writer = MetricsWriter(str(tmp_path), tensorboard=False)
    for epoch in (1, 2):
        writer.write(epoch, {"loss/train": float(epoch)})
    with open(writer.path, "a") as f:
        f.write('{"epoch": 3, "loss/tr')                          # killed during the write of epoch 3
    resumed = MetricsWriter(str(tmp_path), tensorboard=False, start_epoch=2)
    assert _strict_rows(resumed.path) == [{"epoch": 1, "loss/train": 1.0}, {"epoch": 2, "loss/train": 2.0}]
    assert [n for n in tmp_path.iterdir() if n.name.startswith(".tmp-")] == []


def test_atomic_results_get_the_mode_a_plain_open_gives(tmp_path):
    import os
    from utils.atomic import atomic_open
    with open(tmp_path / "plain.json", "w") as f:
        f.write("{}")
    with atomic_open(str(tmp_path / "atomic.json")) as f:
        f.write("{}")
    assert os.stat(tmp_path / "atomic.json").st_mode == os.stat(tmp_path / "plain.json").st_mode
