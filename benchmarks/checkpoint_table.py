"""The command-line end shared by the benchmarks that table a list of checkpoints."""
import sys


def print_table(measure_rows, table, out=None):
    """Print (and write to ``out``) ``table(measure_rows())``; bad input ends with its one-line
    message and exit code 2. Returns the exit code."""
    from utils.errors import UserError
    try:
        rows = measure_rows()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = table(rows)
    print(text, end="")
    if out:
        with open(out, "w") as f:
            f.write(text)
    return 0
