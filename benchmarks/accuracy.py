"""Accuracy benchmark: cross-entropy vs SOP vs SOP+ on CIFAR-10 under label noise.

    python benchmarks/accuracy.py --data-dir data/ --out benchmarks/RESULTS_accuracy.md

Each (noise setting, method) pair is one `python train.py` subprocess with
``-o`` overrides; its results.json, metrics.jsonl and labels.npz are read back
and one markdown table (final / best test accuracy, detection AUROC when the
run logs ``noise/auroc``, seed, wall time) is printed and written to --out,
with the rows as JSON next to it. The defaults are the CPU-sized table; the
same table at full size on a GPU: --subset 0 --width 64 --epochs 300 --eval-every 1.
"""
import argparse
import copy
import glob
import json
import math
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

SHARED_CIFAR_N = os.path.join(os.path.dirname(REPO), "shared", "data", "cifar-n", "CIFAR-10_human.pt")

# name -> (label, overrides, SOP's (lr_u, lr_v)); the order of the table. The learning rates suit this
# short schedule (found by the sweeps README describes); --lr-u / --lr-v replace them for every setting
SETTINGS = {
    "sym50": ("50% symmetric", ["noise.type=sym", "noise.rate=0.5"], (10.0, 10.0)),
    "asym40": ("40% asymmetric", ["noise.type=asym", "noise.rate=0.4"], (1.0, 10.0)),
    "worst": ("CIFAR-10N worst", ["noise.type=human", "noise.label_set=worst"], (10.0, 10.0)),
    "clean": ("clean", ["noise.type=clean", "noise.rate=0.0"], (10.0, 10.0)),
}
METHODS = {  # name -> (label, overrides)
    "ce": ("cross-entropy", ["train_loss.type=cross_entropy"]),
    "sop": ("SOP", ["train_loss.type=sop", "train_loss.args.ratio_consistency=0.0",
                    "train_loss.args.ratio_balance=0.0"]),
    "sop+": ("SOP+", ["train_loss.type=sop", "train_loss.args.ratio_consistency=0.9",
                      "train_loss.args.ratio_balance=0.1"]),
    # a reference, not a method: cross-entropy that only learns from the truly clean labels, i.e. a
    # network never trained on a wrong label (what SOP aims at); off by default (--methods ...,oracle)
    "oracle": ("oracle: cross-entropy on clean labels only", ["train_loss.type=oracle_cross_entropy"]),
}
DEFAULT_METHODS = ["ce", "sop", "sop+"]


def csv_choices(choices):
    def parse(text):
        names = [name.strip() for name in text.split(",") if name.strip()]
        bad = [name for name in names if name not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(choices)}; got {text!r}")
        return list(dict.fromkeys(names))   # a repeated name would train the same run twice at once
    return parse


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}")
    return value


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="data/", help="holds cifar-10-batches-py/")
    p.add_argument("--cifar-n-file", default=SHARED_CIFAR_N if os.path.isfile(SHARED_CIFAR_N) else None,
                   help="CIFAR-10_human.pt (default: the shared copy, else DATA_DIR/CIFAR-N/)")
    p.add_argument("--settings", type=csv_choices(SETTINGS), default=list(SETTINGS))
    p.add_argument("--methods", type=csv_choices(METHODS), default=DEFAULT_METHODS)
    p.add_argument("--subset", type=int, default=300, help="training images per class (0 = all 5,000)")
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--width", type=int, default=16, help="PreActResNet18 width (64 = the paper's network)")
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--lr-u", type=float, help="SOP's lr_u for every setting (default: per setting, SETTINGS)")
    p.add_argument("--lr-v", type=float, help="SOP's lr_v for every setting (default: per setting, SETTINGS)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-every", type=int, default=5, help="test every k epochs and at the last")
    p.add_argument("--seed", type=int, default=123, help="seeds training, the subset and the synthetic noise")
    p.add_argument("--threads", type=int, default=0,
                   help="OMP_NUM_THREADS of each run (0: torch's default); 1 degrades less on a busy shared CPU")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="runs trained at once (each with --threads threads; 2 jobs x 1 thread suits 2 cores)")
    p.add_argument("--config", default=os.path.join(REPO, "config_cifar10.json"))
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="passed to every train.py run, e.g. -o trainer.amp=bf16")
    p.add_argument("--work-dir", default="saved/accuracy_benchmark", help="where the runs are written")
    p.add_argument("--reuse", action="store_true",
                   help="take a finished run from --work-dir instead of training when its config is identical")
    p.add_argument("--out", default="saved/accuracy_benchmark/table.md", help="markdown table (and .json of the rows)")
    return p


def in_process_parser(doc, **defaults):
    """These flags for a script that trains its runs one after another in its own process
    (train.main); `start_in_process` parses them."""
    p = build_parser()
    p.description = doc.split("\n\n")[0]
    p.set_defaults(**defaults)
    for action in p._actions:
        if action.dest == "threads":
            action.help = "torch threads of this process, which trains every run (0: torch's default)"
    return p


def start_in_process(parser, argv):
    """Parsed arguments of an `in_process_parser`, with this process's torch threads set."""
    args = parser.parse_args(argv)
    if args.jobs != 1 or args.reuse:
        parser.error("--jobs / --reuse: the runs train one after another in this process, each as it comes; "
                     "start several invocations (other --settings / --methods / --work-dir) to use more cores")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    return args


def run_name(setting, method):
    return f"{setting}_{method.replace('+', '_plus')}"


def sop_lrs(args, setting):
    lr_u, lr_v = SETTINGS[setting][2]
    return (lr_u if args.lr_u is None else args.lr_u), (lr_v if args.lr_v is None else args.lr_v)


def train_argv(args, setting, method):
    lr_u, lr_v = sop_lrs(args, setting)
    overrides = [f"data_loader.data_dir={os.path.abspath(args.data_dir)}",
                 f"data_loader.train_subset={args.subset}", f"data_loader.batch_size={args.batch_size}",
                 f"arch.args.width={args.width}", f"trainer.epochs={args.epochs}",
                 f"trainer.eval_every={args.eval_every}", f"optimizer.args.lr={args.lr}",
                 f"train_loss.args.lr_u={lr_u}", f"train_loss.args.lr_v={lr_v}",
                 f"seed={args.seed}", f"noise.seed={args.seed}", "trainer.progress_bar=false",
                 "trainer.tensorboard=false", f"trainer.save_dir={os.path.abspath(args.work_dir)}",
                 f"name={run_name(setting, method)}"]
    overrides += SETTINGS[setting][1] + METHODS[method][1]
    if setting == "worst" and args.cifar_n_file:
        overrides.append(f"noise.file={os.path.abspath(args.cifar_n_file)}")
    overrides += args.override
    argv = ["-c", os.path.abspath(args.config)]
    for item in overrides:
        argv += ["-o", item]
    return argv


def result_keys(config):
    """Flattened config without the keys that cannot change a run's numbers: the evaluation batch
    size, and SOP's loss arguments when the loss is not SOP's."""
    from parse_config import flatten
    keys = flatten(config)
    keys.pop("data_loader.eval_batch_size", None)
    if keys.get("train_loss.type", "sop") != "sop":
        keys = {k: v for k, v in keys.items() if not k.startswith("train_loss.args.")}
    return keys


def same_run(stored, wanted):
    """Configs agree on every key both have that can change the results (keys added to the schema
    since the run are not compared; a network argument added since gets the value the run had)."""
    from model.networks import complete_arch_args
    if isinstance(stored.get("arch"), dict):
        stored = {**stored, "arch": complete_arch_args(copy.deepcopy(stored["arch"]), stored=True)}
    stored, wanted = result_keys(stored), result_keys(wanted)
    return all(stored[key] == wanted[key] for key in stored.keys() & wanted.keys())


def finished_run(argv):
    """The newest finished run directory whose config.json matches what ``argv`` would train, or None."""
    from parse_config import parse_args
    config, run_dir, _ = parse_args(argv)
    for results in sorted(glob.glob(os.path.join(os.path.dirname(run_dir), "*", "results.json")), reverse=True):
        with open(os.path.join(os.path.dirname(results), "config.json")) as f:
            if same_run(json.load(f), config):
                return os.path.dirname(results)
    return None


def read_run(run_dir):
    from model.label_issues import default_score
    with open(os.path.join(run_dir, "results.json")) as f:
        results = json.load(f)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    labels = np.load(os.path.join(run_dir, "labels.npz"))
    index = labels["train_index"]
    noise = float(np.mean(labels["noisy_labels"][index] != labels["clean_labels"][index]))
    # no noisy sample (clean labels): a null AUROC (NaN in runs before metrics.jsonl wrote null)
    candidates = {k.split("auroc_", 1)[1]: v if v is not None and math.isfinite(v) else None
                  for k, v in rows[-1].items() if k.startswith("noise_candidates/auroc_")}
    with open(os.path.join(run_dir, "label_issues.json")) as f:   # the end-of-run export
        issues = json.load(f)
    export = {key: issues.get(key) for key in ("score", "auroc", "precision", "recall", "f1", "estimated_rate")}
    return {"final": results["last_test_accuracy"], "best": results["best_test_accuracy"],
            "best_epoch": results["best_test_epoch"],
            "auroc": candidates.get(default_score(has_average=True)),   # today's default, on older runs too
            "train_fit": rows[-1]["accuracy/train"], "noise": noise, "epochs": rows[-1]["epoch"],
            "auroc_candidates": candidates, "export": export, "run_dir": run_dir}


def run_one(args, setting, method):
    argv = train_argv(args, setting, method)
    if args.reuse:
        run_dir = finished_run(argv)
        if run_dir is not None:
            row = read_run(run_dir)
            with open(os.path.join(run_dir, "benchmark_wall_s.txt")) as f:
                row["wall_s"] = float(f.read())
            return row
    runs = os.path.join(os.path.abspath(args.work_dir), run_name(setting, method), "*")
    before = set(glob.glob(runs))
    start = time.perf_counter()
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
    proc = subprocess.run([sys.executable, os.path.join(REPO, "train.py")] + argv, cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = round(time.perf_counter() - start, 3)
    new = sorted(set(glob.glob(runs)) - before)
    if proc.returncode != 0 or len(new) != 1:
        tail = proc.stdout.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"train.py exit {proc.returncode}: {tail[0]}", "wall_s": wall}
    with open(os.path.join(new[0], "benchmark_wall_s.txt"), "w") as f:
        f.write(str(wall))
    row = read_run(new[0])
    row["wall_s"] = wall
    return row


def pct(value):
    return "—" if value is None else f"{100 * value:.1f}"


def markdown_table(rows, seed):
    lines = ["| noise | realised noise (subset) | method | final test acc | best test acc (epoch) | "
             "detection AUROC | label_issues.csv AUROC / F1 | train acc on given labels | seed | wall time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        head = f"| {SETTINGS[row['setting']][0]} | "
        if "error" in row:
            lines.append(head + f"— | {METHODS[row['method']][0]} | {row['error']} | | | | | {seed} | "
                                f"{row['wall_s']:.0f} s |")
            continue
        auroc = "—" if row["auroc"] is None else f"{row['auroc']:.3f}"
        export = row.get("export") or {}
        exported = "—" if export.get("auroc") is None else f"{export['auroc']:.3f} / {export['f1']:.3f}"
        lines.append(head + f"{pct(row['noise'])}% | {METHODS[row['method']][0]} | {pct(row['final'])} | "
                            f"{pct(row['best'])} ({row['best_epoch']}) | {auroc} | {exported} | {pct(row['train_fit'])} | "
                            f"{seed} | {row['wall_s'] / 60:.1f} min |")
    return "\n".join(lines)


def margins_table(rows):
    """Per setting, in accuracy points: CE's drop from its best to its final epoch, and each method's
    final accuracy minus CE's final (and minus CE's best)."""
    lines = ["| noise | CE best − CE final | method | final − CE final | final − CE best |", "|---|---|---|---|---|"]
    done = [r for r in rows if "error" not in r]
    for ce in (r for r in done if r["method"] == "ce"):
        for row in (r for r in done if r["setting"] == ce["setting"] and r["method"] != "ce"):
            lines.append(f"| {SETTINGS[ce['setting']][0]} | {100 * (ce['best'] - ce['final']):.1f} | "
                         f"{METHODS[row['method']][0]} | {100 * (row['final'] - ce['final']):+.1f} | "
                         f"{100 * (row['final'] - ce['best']):+.1f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def write_outputs(out, text, rows):
    """Print the markdown ``text`` and write it to ``out``, with ``rows`` as JSON beside it (same name, .json)."""
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(rows, f, indent=2)


def machine():
    import torch
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    return f"{device}, {platform.platform()}, Python {platform.python_version()}, torch {torch.__version__}"


def main(argv=None):
    args = build_parser().parse_args(argv)
    pairs = [(setting, method) for setting in args.settings for method in args.methods]

    def one(pair):
        try:
            result = run_one(args, *pair)
        except Exception as err:   # one broken run must not lose the other rows of the table
            result = {"error": f"{type(err).__name__}: {err}", "wall_s": 0.0}
        row = dict(setting=pair[0], method=pair[1], **result)
        status = row.get("error") or f"final {pct(row['final'])} best {pct(row['best'])} auroc {row['auroc']}"
        print(f"[{pair[0]} / {pair[1]}] {status} | {row['wall_s']:.0f} s", flush=True)
        return row

    # SOP+ runs (twice the cost) first, so that parallel jobs finish together
    order = sorted(pairs, key=lambda pair: pair[1] != "sop+")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        finished = dict(zip(order, pool.map(one, order)))
    rows = [finished[pair] for pair in pairs]
    command = "python benchmarks/accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = (f"Command: `{command}`\n\nMachine: {machine()}\n\n"
            f"CIFAR-10 (slightly lossy JPEG copy), {args.subset or 'all'} training images per class, full 10,000-image "
            f"test set; PreActResNet18 width {args.width}, {args.epochs} epochs, batch {args.batch_size}, "
            f"SGD lr {args.lr} cosine, test every {args.eval_every} epochs; SOP's lr_u / lr_v: "
            f"{', '.join(f'{s} %g / %g' % sop_lrs(args, s) for s in args.settings)}. "
            f"Accuracies in %.\n\n{markdown_table(rows, args.seed)}\n\n{margins_table(rows)}\n")
    write_outputs(args.out, text, rows)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
