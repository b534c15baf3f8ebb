"""How many labels to flag: each rule's estimate of the noise rate against the realised one.

    python benchmarks/flag_rules.py RUN [RUN ...] [--data-dir DIR] [--out FILE.md]

RUN is a checkpoint or a run directory (its checkpoint-latest.pth) of a run with
known true labels (synthetic noise, CIFAR-N). For each, as `evaluate.py` does:
the run's data rebuilt, one un-augmented pass taken into the checkpoint's
average, the exported score; then the top round(rate * N) scores flagged for
the rate of each rule: the mean score (each score read as P(wrong); the rule
before the mixture), the weight of the group of labels the network rejects
(`rejected_group_weight`; the mean score where there is no such group), the
smaller of the two (`estimated_noise_rate`, what runs use) and the true number
of wrong labels (a reference only the truth gives). Prints and writes a
markdown table of rate, precision, recall and F1.
"""
import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

RULES = ("mean score", "rejected group", "smaller (runs)", "true count")


def rule_rates(rates, noisy):
    """Each rule's rate, from the run's `rate_estimates`."""
    from model.label_issues import chosen_rate
    mean, group = rates["mean_score"], rates["rejected_group"]
    return {"mean score": mean, "rejected group": mean if group is None else group,
            "smaller (runs)": chosen_rate(rates), "true count": float(noisy.double().mean())}


def measure(run, data_dir=None):
    """One table row (a dict) for a run directory or checkpoint."""
    from benchmarks.checkpoint_table import predictions_with_truth
    from model import label_issues as li
    from model.metrics import precision_recall_f1
    from trainer.noise_monitor import analyse
    checkpoint, pred = predictions_with_truth(run, data_dir)
    given = pred.data.train_noisy
    noisy = given != pred.data.train_clean
    analysis = analyse(pred.train_probs, given, avg_probs=pred.avg_probs)
    name, scores = analysis.score_name, analysis.scores
    row = {"run": checkpoint, "epoch": int(pred.state["epoch"]), "score": name,
           "auroc": li.auroc(scores, noisy), "realised": float(noisy.double().mean()),
           "test_accuracy": pred.test_accuracy}
    for rule, rate in rule_rates(analysis.rates, noisy).items():
        flags = li.flag(scores, rate)
        precision, recall, f1 = precision_recall_f1(flags, noisy)
        row[rule] = {"rate": int(flags.sum()) / len(flags), "precision": precision, "recall": recall, "f1": f1}
    return row


def table(rows):
    head = "| run | epoch | AUROC | realised | " + " | ".join(f"{r}: rate / P / R / F1" for r in RULES) + " |"
    lines = [head, "|" + "---|" * (4 + len(RULES))]
    for row in rows:
        cells = [f"{row[r]['rate']:.3f} / {row[r]['precision']:.3f} / {row[r]['recall']:.3f} / {row[r]['f1']:.3f}"
                 for r in RULES]
        lines.append(f"| {row['run']} | {row['epoch']} | {row['auroc']:.3f} | {row['realised']:.3f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="checkpoints or run directories")
    p.add_argument("--data-dir", help="where the dataset is, if not where the runs found it")
    p.add_argument("--out", help="also write the table to this markdown file")
    args = p.parse_args(argv)
    from benchmarks.checkpoint_table import print_table
    return print_table(lambda: [measure(run, args.data_dir) for run in args.runs], table, args.out)


if __name__ == "__main__":
    sys.exit(main())
