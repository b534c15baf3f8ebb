"""Training-set detection against the same network's detection on images it never trained on.

    python benchmarks/heldout_detection.py RUN [RUN ...] [--data-dir DIR] [--draws K]
                                           [--noise-of RUN_DIR] [--out FILE.md]

RUN is a checkpoint or a run directory (its checkpoint-latest.pth) of a run with
known true labels (synthetic noise, CIFAR-N). For each: the network's test
accuracy; the AUROC of 1 - p(given label) on the test set after giving its
labels the run's noise, drawn K times from the run's realised transition matrix
(clean class -> given label, over its training images; class-conditional, so
instance-dependent and human noise are approximated by their class-level
rates), or from that of the run in --noise-of (its labels.npz; for a network
trained on clean labels); and, on the training set when its labels hold wrong
ones, the AUROC of the same score from one un-augmented pass and of the
exported score (`loss_avg`, as `evaluate.py` computes it).

The held-out AUROC is what the network's opinion of a label is worth when the
label cannot have shaped that opinion. A one-pass training-set AUROC above it
means the network memorised more of the clean labels than of the wrong ones (an
oracle that trains on the clean labels alone does); below it, that it memorised
wrong labels (cross-entropy); equal, that its ranking of the training labels is
what its accuracy gives any labels. The exported score, an average over epochs,
can also differ by keeping earlier epochs' opinions. It is a reference, not a
ceiling. Prints and writes a markdown table.
"""
import argparse
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def draw_like(transition, labels, rng):
    """New labels for `labels`: each drawn from its class's row of `transition` (a class with an
    all-zero row, absent from the run, keeps its label)."""
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.asarray(transition, dtype=np.float64)[labels]
    absent = rows.sum(axis=1) == 0
    rows[absent, labels[absent]] = 1.0
    cum = rows.cumsum(axis=1)
    u = rng.random(len(labels)) * cum[:, -1]
    # u can round up to the row's total: then the last class the row allows, not a zero one after it
    last_allowed = rows.shape[1] - 1 - np.argmax(rows[:, ::-1] > 0, axis=1)
    return np.minimum((cum <= u[:, None]).sum(axis=1), last_allowed)


def run_transition(run_dir, num_classes):
    """The realised transition matrix over a run's training images, from its labels.npz."""
    from data_loader.noise import transition_matrix
    from utils.errors import ConfigError
    path = os.path.join(run_dir, "labels.npz")
    try:
        with np.load(path) as labels:
            index = labels["train_index"]
            clean, given = labels["clean_labels"][index], labels["noisy_labels"][index]
            its_classes = len(labels["transition_matrix"])
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise ConfigError(f"--noise-of {run_dir}: cannot read {path} ({err})") from None
    if its_classes != num_classes:
        raise ConfigError(f"--noise-of {run_dir}: its noise is over {its_classes} classes, "
                          f"the run's data has {num_classes}")
    if (clean == given).all():
        raise ConfigError(f"--noise-of {run_dir}: its training labels are all correct, so there is no noise to copy")
    return transition_matrix(clean, given, num_classes)


def measure(run, data_dir=None, draws=5, seed=0, noise_of=None):
    """One table row (a dict) for a run directory or checkpoint; the test set gets the noise of the
    run itself or, given `noise_of`, of that run directory."""
    import torch
    from benchmarks.checkpoint_table import predictions_with_truth
    from data_loader.noise import transition_matrix
    from model.label_issues import candidate_scores
    from model.metrics import auroc
    from trainer.noise_monitor import analyse
    from utils.errors import ConfigError
    checkpoint, pred = predictions_with_truth(run, data_dir)
    data = pred.data
    given, clean = data.train_noisy.cpu().numpy(), data.train_clean.cpu().numpy()
    noisy = given != clean
    if noise_of is not None:
        transition = run_transition(noise_of, data.num_classes)
    elif noisy.any():
        transition = transition_matrix(clean, given, data.num_classes)
    else:
        raise ConfigError(f"{run}: its training labels are all correct; give --noise-of a run whose noise to copy")
    test_probs, test_labels = pred.test_probs.cpu().double(), pred.test_labels.cpu()
    rng = np.random.default_rng(seed)
    heldout, heldout_rates = [], []
    for _ in range(draws):
        test_given = torch.from_numpy(draw_like(transition, test_labels.numpy(), rng))
        wrong = test_given != test_labels
        heldout.append(auroc(candidate_scores(test_probs, test_given)["loss"], wrong))
        heldout_rates.append(float(wrong.double().mean()))
    row = {"run": checkpoint, "epoch": int(pred.state["epoch"]), "test_accuracy": pred.test_accuracy,
           "realised": float(noisy.mean()), "heldout_realised": float(np.mean(heldout_rates)),
           "heldout_auroc": float(np.mean(heldout)), "heldout_auroc_sd": float(np.std(heldout)), "draws": draws,
           "train_auroc_one_pass": None, "score": None, "train_auroc_exported": None}
    if noisy.any() and not noisy.all():
        analysis = analyse(pred.train_probs, data.train_noisy, avg_probs=pred.avg_probs)
        row.update(train_auroc_one_pass=auroc(analysis.candidates["loss"], noisy),   # this pass alone
                   score=analysis.score_name, train_auroc_exported=auroc(analysis.scores, noisy))
    return row


def table(rows):
    lines = ["| run | epoch | test acc | realised (train / test) | held-out AUROC (test set) | "
             "training AUROC, one pass | training AUROC, exported score |", "|" + "---|" * 7]
    for r in rows:
        one_pass, exported = "—", "—"
        if r["score"] is not None:
            one_pass, exported = f"{r['train_auroc_one_pass']:.3f}", f"{r['train_auroc_exported']:.3f} ({r['score']})"
        lines.append(f"| {r['run']} | {r['epoch']} | {100 * r['test_accuracy']:.1f}% | "
                     f"{r['realised']:.3f} / {r['heldout_realised']:.3f} | "
                     f"{r['heldout_auroc']:.3f} ± {r['heldout_auroc_sd']:.3f} ({r['draws']} draws) | "
                     f"{one_pass} | {exported} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="checkpoints or run directories")
    p.add_argument("--data-dir", help="where the dataset is, if not where the runs found it")
    p.add_argument("--draws", type=int, default=5, help="noise draws on the test set (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seeds the test-set noise draws")
    p.add_argument("--noise-of", metavar="RUN_DIR", help="copy this run's noise instead of each run's own")
    p.add_argument("--out", help="also write the table to this markdown file")
    args = p.parse_args(argv)
    if args.draws < 1:
        print("error: --draws must be at least 1", file=sys.stderr)
        return 2
    from benchmarks.checkpoint_table import print_table
    return print_table(lambda: [measure(run, args.data_dir, args.draws, args.seed, args.noise_of)
                                for run in args.runs], table, args.out)


if __name__ == "__main__":
    sys.exit(main())
