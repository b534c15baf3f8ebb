"""Your own images (data_loader.dataset=folder): reading, and label issues without clean labels."""
import csv
import glob
import json
import os

import numpy as np
import pytest
from PIL import Image

import evaluate
import train
from data_loader.image_folder import channel_stats, load_image_folder, to_cifar_size
from utils.errors import DataError


def write_folder(root, train_counts, test_counts, size=(32, 32), seed=0):
    """root/train/<class>/<i>.png and root/test/<class>/<i>.png of random colours."""
    rng = np.random.default_rng(seed)
    for split, counts in (("train", train_counts), ("test", test_counts)):
        for name, count in counts.items():
            os.makedirs(os.path.join(root, split, name), exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(os.path.join(root, split, name, f"{i:03d}.png"))
    return str(root)


def test_classes_are_sorted_folder_names_and_paths_follow_them(tmp_path):
    root = write_folder(tmp_path, {"zebra": 2, "ant": 3}, {"zebra": 1})
    os.makedirs(tmp_path / "train" / ".cache")                     # hidden: not a class
    (tmp_path / "train" / "ant" / "notes.txt").write_text("not an image")
    os.makedirs(tmp_path / "train" / "zebra" / "more")               # below the class folder: same class
    os.rename(tmp_path / "train" / "zebra" / "000.png", tmp_path / "train" / "zebra" / "more" / "000.PNG")
    os.symlink(tmp_path / "train" / "zebra", tmp_path / "train" / "zebra" / "more" / "loop")   # read once
    os.symlink(tmp_path / "train" / "ant", tmp_path / "train" / "zebra" / "ants")   # another class: not zebra
    data, files, skipped = load_image_folder(root)
    assert data.class_names == ["ant", "zebra"] and data.num_classes == 2 and skipped == 1
    assert files == ["train/ant/000.png", "train/ant/001.png", "train/ant/002.png",
                     "train/zebra/001.png", "train/zebra/more/000.PNG"]
    assert data.train_labels.tolist() == [0, 0, 0, 1, 1] and data.test_labels.tolist() == [1]
    assert data.train_images.shape == (5, 32, 32, 3) and data.train_images.dtype == np.uint8
    first = np.asarray(Image.open(tmp_path / "train" / "ant" / "000.png"))
    assert np.array_equal(data.train_images[0], first)             # already 32x32: unchanged


def test_images_are_made_rgb_32x32_by_resizing_the_short_side_and_centre_cropping():
    # 64 x 32: red | green (the middle half) | blue; the short side is 32 already, so only the crop acts
    pixels = np.zeros((32, 64, 3), np.uint8)
    pixels[:, :16, 0], pixels[:, 16:48, 1], pixels[:, 48:, 2] = 255, 255, 255
    out = to_cifar_size(Image.fromarray(pixels))
    assert out.shape == (32, 32, 3) and (out == [0, 255, 0]).all()
    grey = to_cifar_size(Image.fromarray(np.full((96, 64), 77, np.uint8), mode="L"))   # 64 wide -> 32 x 48
    assert grey.shape == (32, 32, 3) and (grey == 77).all()


def test_exif_orientation_is_applied_before_the_crop(tmp_path):
    # stored 64 wide x 32 high, red top half, blue bottom; orientation 6 shows it turned 90 degrees
    # clockwise (32 wide, 64 high: blue left, red right), so the centre crop keeps both colours side by side
    pixels = np.zeros((32, 64, 3), np.uint8)
    pixels[:16, :, 0], pixels[16:, :, 2] = 255, 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "turned.png", exif=exif)
    with Image.open(tmp_path / "turned.png") as image:
        out = to_cifar_size(image)
    assert (out[:, :16] == [0, 0, 255]).all() and (out[:, 16:] == [255, 0, 0]).all()


def test_sixteen_bit_float_and_transparent_images_keep_their_content():
    sixteen = Image.fromarray(np.full((40, 40), 30000, np.uint16))            # mode I;16: 30000 / 257
    assert sixteen.mode == "I;16" and (to_cifar_size(sixteen) == 117).all()
    dark = Image.fromarray(np.full((40, 40), 249, np.uint16))                  # 16-bit even when dark: 249 / 257
    assert (to_cifar_size(dark) == 1).all()
    assert (to_cifar_size(Image.fromarray(np.full((40, 40), 0.5, np.float32))) == 128).all()   # F: 0.5 * 255
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:20, :, 1], rgba[:20, :, 3] = 200, 255                                # opaque green top, clear bottom
    out = to_cifar_size(Image.fromarray(rgba))
    assert (out[0] == [0, 200, 0]).all() and (out[-1] == [255, 255, 255]).all()   # on white, not black
    keyed = Image.fromarray(np.zeros((40, 40, 3), np.uint8))                   # RGB with black as the colour key
    keyed.info["transparency"] = (0, 0, 0)
    assert (to_cifar_size(keyed) == 255).all()


def test_channel_stats_hand_computed():
    images = np.zeros((2, 1, 2, 3), np.uint8)
    images[0, 0, :, 0] = 255                    # red: 1, 1, 0, 0 -> mean 0.5, std 0.5
    images[:, 0, 0, 1] = 51                     # green: 0.2, 0, 0.2, 0 -> mean 0.1, std 0.1
    mean, std = channel_stats(images, chunk=1)  # chunks of one image: sums carried across them
    assert mean == pytest.approx((0.5, 0.1, 0.0)) and std == pytest.approx((0.5, 0.1, 1e-3))


@pytest.mark.parametrize("make, message", [
    (lambda root: write_folder(root, {"a": 1, "b": 1}, {}), "test has no class folders"),
    (lambda root: write_folder(root, {"a": 1, "b": 1}, {"c": 1}), "has classes that train/ has not: c"),
    (lambda root: write_folder(root, {"a": 1}, {"a": 1}), "needs at least 2 class folders"),
    (lambda root: write_folder(root, {"a": 1, "b": 0}, {"a": 1}), "b holds no images"),
])
def test_a_malformed_folder_is_a_data_error_naming_what_is_wrong(tmp_path, make, message):
    make(tmp_path)
    os.makedirs(tmp_path / "test", exist_ok=True)
    with pytest.raises(DataError, match=message):
        load_image_folder(str(tmp_path))


def test_an_unreadable_image_is_a_data_error_naming_the_file(tmp_path):
    write_folder(tmp_path, {"a": 1, "b": 1}, {"a": 1})
    (tmp_path / "train" / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot read image .*broken.jpg"):
        load_image_folder(str(tmp_path))


@pytest.fixture
def folder_args(tmp_path):
    root = write_folder(tmp_path / "images", {"cat": 30, "dog": 30, "fox": 30}, {"cat": 5, "dog": 5, "fox": 5})
    return ["-c", "config_cifar10.json", "--data_dir", root, "--bs", "32", "--epochs", "1",
            "-o", "data_loader.dataset=folder", "-o", "arch.args.width=8",
            "-o", f"trainer.save_dir={tmp_path / 'saved'}", "-o", "trainer.progress_bar=false",
            "-o", "data_loader.eval_batch_size=100"]


def test_a_folder_run_exports_suspects_with_their_paths_and_no_detection_metrics(folder_args, tmp_path, capsys):
    # a file name that is not UTF-8 (Latin-1 e-acute) is written to the CSV as its bytes on disk
    cat = os.fsencode(tmp_path / "images" / "train" / "cat")
    Image.new("RGB", (32, 32), (9, 9, 9)).save(os.path.join(cat, b"caf\xe9.png").decode("utf-8", "surrogateescape"))
    assert train.main(folder_args + ["-o", "noise.type=clean"]) == 0
    (run_dir,) = glob.glob(str(tmp_path / "saved" / "*" / "*"))
    assert os.path.basename(run_dir).startswith("folder_given_")
    with open(os.path.join(run_dir, "label_issues.csv"), encoding="utf-8", errors="surrogateescape") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["index", "given_label", "suggested_label", "score", "flag", "given_class",
                             "suggested_class", "path"]
    assert len(rows) == 91
    labels = np.load(os.path.join(run_dir, "labels.npz"))
    names = ["cat", "dog", "fox"]
    for row in rows:   # the path names the row's image; its folder is the given label
        assert os.path.isfile(os.path.join(tmp_path, "images", row["path"]))
        assert row["path"] == labels["files"][int(row["index"])]
        assert row["path"].split("/")[1] == names[int(row["given_label"])] == row["given_class"]
        assert row["suggested_class"] == names[int(row["suggested_label"])]
    assert any(row["path"].encode("utf-8", "surrogateescape") == b"train/cat/caf\xe9.png" for row in rows)
    summary = json.load(open(os.path.join(run_dir, "label_issues.json")))
    assert summary["class_names"] == names and "auroc" not in summary and 0 <= summary["estimated_rate"] <= 1
    metrics = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert "noise/estimated_rate" in metrics[-1] and "noise/auroc" not in metrics[-1]
    assert "accuracy/test" in metrics[-1] and "accuracy/train_clean_labels" not in metrics[-1]
    assert "clean_labels" not in labels and labels["files"][0] == "train/cat/000.png"
    assert "true labels unknown" in open(os.path.join(run_dir, "train.log")).read()
    checkpoint = os.path.join(run_dir, "checkpoint-latest.pth")
    out = tmp_path / "again.csv"
    assert evaluate.main(["-r", checkpoint, "--out", str(out)]) == 0
    with open(out, encoding="utf-8", errors="surrogateescape") as f:
        assert list(csv.DictReader(f)) == rows
    # a label fixed by moving its file keeps the image count but shifts the rows: refused
    os.rename(tmp_path / "images" / "train" / "cat" / "003.png", tmp_path / "images" / "train" / "dog" / "x.png")
    capsys.readouterr()
    assert evaluate.main(["-r", checkpoint, "--out", str(out)]) == 2
    assert "the image folder changed since this checkpoint" in capsys.readouterr().err
    assert train.main(["-r", checkpoint]) == 2
    assert "the image folder changed since this checkpoint" in capsys.readouterr().err


def test_synthetic_noise_on_a_folder_takes_its_labels_as_true_and_measures_detection(folder_args, tmp_path):
    assert train.main(folder_args + ["-o", "noise.type=sym", "--percent", "0.4"]) == 0
    (run_dir,) = glob.glob(str(tmp_path / "saved" / "*" / "*"))
    labels = np.load(os.path.join(run_dir, "labels.npz"))
    assert labels["clean_labels"].tolist() == [0] * 30 + [1] * 30 + [2] * 30    # the folders
    metrics = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    realised = float((labels["clean_labels"] != labels["noisy_labels"]).mean())
    assert metrics[-1]["noise/realised_rate"] == pytest.approx(realised) and realised > 0
    assert "on top of the folders' labels" in open(os.path.join(run_dir, "train.log")).read()


@pytest.mark.parametrize("override, message", [
    (["-o", "noise.type=asym"], "noise.type' asym is defined for CIFAR only"),
    (["-o", "noise.type=clean", "-o", "train_loss.type=oracle_cross_entropy"], "needs the true labels"),
])
def test_folder_settings_that_need_cifar_or_true_labels_are_refused(folder_args, tmp_path, capsys, override, message):
    assert train.main(folder_args + override) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and not os.path.exists(tmp_path / "saved")
