"""The command-line end shared by the benchmarks that table a list of checkpoints."""
import os
import sys


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
