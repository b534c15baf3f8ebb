"""What the benchmarks that table a list of checkpoints share: the predictions of a run whose true
labels are known, and the command-line end."""
import os
import sys


def predictions_with_truth(run, data_dir=None):
    """(checkpoint path, evaluate.CheckpointPredictions) for a run directory or checkpoint; a
    ConfigError when the run's true labels are unknown."""
    import evaluate
    from trainer.checkpoint import find_resume_checkpoint
    from utils.errors import ConfigError
    checkpoint = find_resume_checkpoint(run)
    pred = evaluate.checkpoint_predictions(checkpoint, data_dir)
    if pred.data.train_clean is None:
        raise ConfigError(f"{run}: its true labels are unknown, so nothing can be scored against them")
    return checkpoint, pred


def print_table(measure_rows, table, out=None):
    """Print (and write to ``out``) ``table(measure_rows())``; bad input, an unwritable ``out``
    included (checked before measuring), ends with a one-line message and exit code 2.
    Returns the exit code."""
    from utils.errors import UserError
    if out and not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        print(f"error: --out {out}: its directory does not exist", file=sys.stderr)
        return 2
    try:
        rows = measure_rows()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = table(rows)
    print(text, end="")
    if out:
        try:
            with open(out, "w") as f:
                f.write(text)
        except OSError as err:
            print(f"error: cannot write {out}: {err.strerror}", file=sys.stderr)
            return 2
    return 0
