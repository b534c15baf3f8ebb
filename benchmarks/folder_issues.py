"""Your own images, end to end: CIFAR-10 written as an image folder, label issues found blind.

    python benchmarks/folder_issues.py --data-dir data/ [--settings worst] [--methods sop]

For each noise setting the accuracy benchmark's training subset and noisy labels
(the same function of the config as its runs) are written as PNG files to
WORK_DIR/<setting>_images/train/<given class>/<original index>.png, with the
CIFAR test set under test/. Each method then trains with
``data_loader.dataset=folder`` and ``noise.type=clean``, so the run only sees the
folders, like a user's own data; its label_issues.csv (which names each image
by path) is scored against the true labels here. Hyperparameters are the
accuracy benchmark's (same flags).
"""
import os
import shutil
import sys

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks import accuracy  # noqa: E402


def write_image_folder(root, images, labels, names, class_names):
    """root/<class name of label>/<name>.png for every image."""
    for image, label, name in zip(images, labels, names):
        folder = os.path.join(root, class_names[int(label)])
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image).save(os.path.join(folder, f"{name}.png"))


def make_folder_dataset(args, setting, root):
    """Write the setting's training subset with its noisy labels and the test set; returns the true
    label of every original training index (the truth the run never sees)."""
    from data_loader.build import noisy_labels_for, split_indices
    from data_loader.cifar import load_cifar
    from parse_config import parse_args
    config, _, _ = parse_args(accuracy.train_argv(args, setting, "sop"))
    cifar = load_cifar("cifar10", config["data_loader"]["data_dir"], download=False)
    noisy, clean = noisy_labels_for(config, cifar)
    train_index, _ = split_indices(config, clean, noisy)
    shutil.rmtree(root, ignore_errors=True)   # files of an earlier subset or noise must not stay
    write_image_folder(os.path.join(root, "train"), cifar.train_images[train_index], noisy[train_index],
                       [f"{i:05d}" for i in train_index], cifar.class_names)
    write_image_folder(os.path.join(root, "test"), cifar.test_images, cifar.test_labels,
                       [f"{i:05d}" for i in range(len(cifar.test_labels))], cifar.class_names)
    return clean


def score_export(rows, clean):
    """Detection quality of label_issues.csv ``rows`` (dicts of strings) against ``clean``, the true
    label of each original training index, which the file name of ``path`` gives."""
    import torch
    from model.label_issues import detection_metrics
    index = np.array([int(os.path.splitext(os.path.basename(r["path"]))[0]) for r in rows])
    column = {key: torch.tensor([float(r[key]) for r in rows]) for key in ("score", "flag")}
    given = torch.tensor([int(r["given_label"]) for r in rows])
    suggested = torch.tensor([int(r["suggested_label"]) for r in rows])
    return detection_metrics(column["score"], column["flag"].bool(), suggested, given,
                             torch.as_tensor(clean[index]))


def build_parser():
    return accuracy.in_process_parser(__doc__, settings=["worst"], methods=["sop"], work_dir="saved/folder_issues",
                                      out="saved/folder_issues/table.md")


def main(argv=None):
    import csv
    import glob
    import json

    import train
    args = accuracy.start_in_process(build_parser(), argv)
    lines, rows = [], []
    for setting in args.settings:
        root = os.path.abspath(os.path.join(args.work_dir, f"{setting}_images"))
        clean = make_folder_dataset(args, setting, root)
        for method in args.methods:
            save_dir = os.path.join(os.path.abspath(args.work_dir), "runs")
            before = set(glob.glob(os.path.join(save_dir, "*", "*")))
            code = train.main(accuracy.train_argv(args, setting, method) + [
                "-o", "data_loader.dataset=folder", "-o", f"data_loader.data_dir={root}",
                "-o", "noise.type=clean", "-o", "data_loader.train_subset=0", "-o", f"trainer.save_dir={save_dir}"])
            label = f"{accuracy.SETTINGS[setting][0]} | {accuracy.METHODS[method][0]}"
            new = sorted(set(glob.glob(os.path.join(save_dir, "*", "*"))) - before)
            if code != 0 or len(new) != 1:
                lines.append(f"| {label} | train.py exit {code} | | | | | | |")
                rows.append({"setting": setting, "method": method, "error": f"train.py exit {code}"})
                continue
            with open(os.path.join(new[0], "label_issues.csv")) as f:
                exported = list(csv.DictReader(f))
            summary = json.load(open(os.path.join(new[0], "label_issues.json")))
            result = {**score_export(exported, clean), "estimated_rate": summary["estimated_rate"]}
            rows.append({"setting": setting, "method": method, "run_dir": new[0],
                         "test_accuracy": summary["test_accuracy"], **result})
            lines.append(f"| {label} | {100 * summary['test_accuracy']:.1f} | {result['realised_rate']:.3f} | "
                         f"{result['estimated_rate']:.3f} | {result['auroc']:.3f} | {result['precision']:.3f} | "
                         f"{result['recall']:.3f} | {result['f1']:.3f} |")
    command = "python benchmarks/folder_issues.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = (f"Command: `{command}`\n\nMachine: {accuracy.machine()}\n\nCIFAR-10 as an image folder, "
            f"{args.subset or 'all'} training images per class, PreActResNet18 width {args.width}, "
            f"{args.epochs} epochs, seed {args.seed}; the run sees only the folders (noise.type=clean), "
            f"its label_issues.csv is scored against the true labels.\n\n"
            "| noise | method | test acc | realised noise | estimated | AUROC | precision | recall | F1 |\n"
            "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n")
    accuracy.write_outputs(args.out, text, rows)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
