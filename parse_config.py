"""Command line + JSON config -> one validated plain dict and a run directory.

Precedence: DEFAULTS < JSON file (or the config stored in a resumed checkpoint)
< official SOP flags (--lr, --percent, ...) < generic ``-o key.path=value``.
Every problem is reported at once as a `ConfigError` (exit code 2 in train.py).
"""
import argparse
import copy
import json
import os
import time

from utils.config_schema import DEFAULTS, makes_no_noise, validate
from utils.errors import ConfigError


def str2bool(text):
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes", "y", "on"):
        return True
    if lowered in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# flag -> (config path, type). Names follow the official SOP code.
FLAG_PATHS = {
    "lr": ("optimizer.args.lr", float),
    "lr_u": ("train_loss.args.lr_u", float),
    "lr_v": ("train_loss.args.lr_v", float),
    "bs": ("data_loader.batch_size", int),
    "percent": ("noise.rate", float),
    "name": ("name", str),
    "seed": ("seed", int),
    "std": ("train_loss.args.init_std", float),
    "consist": ("train_loss.args.ratio_consistency", float),
    "balance": ("train_loss.args.ratio_balance", float),
    "epochs": ("trainer.epochs", int),
    "data_dir": ("data_loader.data_dir", str),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise ConfigError(f"command line: {message}")


def build_arg_parser():
    parser = _Parser(description="Train a classifier on noisy labels with SOP / SOP+.")
    parser.add_argument("-c", "--config", help="JSON config file")
    parser.add_argument("-r", "--resume", help="checkpoint file or run directory to resume")
    parser.add_argument("-d", "--device", help="GPU indices to use, e.g. 0 or 0,1 (sets CUDA_VISIBLE_DEVICES)")
    for flag, (path, kind) in FLAG_PATHS.items():
        parser.add_argument(f"--{flag}", type=kind, help=f"sets {path}")
    parser.add_argument("--asym", type=str2bool, help="true: asymmetric noise (noise.type=asym)")
    parser.add_argument("--instance", type=str2bool, help="true: instance-dependent noise (noise.type=instance)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="set any config key, e.g. -o trainer.amp=off (value parsed as JSON when it can be)")
    return parser


# sections whose args go to a torch class named by their type: another type takes only its own args
# (in a JSON, and with -o before the flags and the other -o, so that their order does not matter)
TYPED_SECTIONS = ("optimizer", "lr_scheduler")


def deep_merge(base, update, path="", allow_new=False):
    """Recursively merge ``update`` into a copy of ``base``; unknown keys are errors
    except inside ``args`` blocks, whose keys go to constructors that check them. An
    optimizer or lr_scheduler whose ``type`` the update changes takes only the update's ``args``."""
    merged = copy.deepcopy(base)
    problems = []
    for key, value in update.items():
        where = f"{path}{key}"
        if key not in merged and not allow_new:
            problems.append(f"unknown key '{where}'")
            continue
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            section = merged[key]
            if not path and key in TYPED_SECTIONS and value.get("type", section.get("type")) != section.get("type"):
                section = {**section, "args": {}}   # another torch class's arguments are not this one's
            sub, sub_problems = deep_merge(section, value, where + ".", allow_new or key == "args")
            merged[key] = sub
            problems += sub_problems
        else:
            merged[key] = copy.deepcopy(value)
    return merged, problems


def set_path(config, dotted, value):
    """Set ``a.b.c`` in a nested dict; only existing keys (new ones inside ``args``)."""
    node = config
    keys = dotted.split(".")
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        inside_args = depth > 0 and keys[depth - 1] == "args"
        if not isinstance(node, dict) or (key not in node and not (last and inside_args)):
            raise ConfigError(f"unknown config key '{dotted}'")
        if last:
            node[key] = value
        else:
            node = node[key]


def parse_override(text):
    if "=" not in text:
        raise ConfigError(f"-o expects KEY.PATH=VALUE, got '{text}'")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def read_json(path):
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return data


def apply_flags(config, args):
    for key, value in (parse_override(text) for text in args.override):
        section, _, leaf = key.partition(".")
        if section in TYPED_SECTIONS and leaf == "type" and isinstance(config.get(section), dict) \
                and value != config[section].get("type"):
            config[section] = {"type": value, "args": {}}
    for flag, (path, _) in FLAG_PATHS.items():
        value = getattr(args, flag)
        if value is not None:
            set_path(config, path, value)
    if args.asym is not None:
        if args.asym:
            config["noise"]["type"] = "asym"
        elif config["noise"]["type"] == "asym":
            config["noise"]["type"] = "sym"
    if args.instance is not None:
        if args.instance:
            config["noise"]["type"] = "instance"
        elif config["noise"]["type"] == "instance":
            config["noise"]["type"] = "sym"
    for text in args.override:
        set_path(config, *parse_override(text))
    return config


def _with_defaults(base_json):
    config, problems = deep_merge(DEFAULTS, base_json)
    if problems:
        raise ConfigError("; ".join(problems))
    return config


def _validated(config):
    problems = validate(config)
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))
    return config


def _with_arch_defaults(config, stored):
    """`model.networks.complete_arch_args`: name the identity shortcut of a pre-activation network
    (a ``stored`` config that names none was trained with the input one)."""
    from model.networks import complete_arch_args  # imported late: networks pull in torch
    if isinstance(config.get("arch"), dict):   # else validation names the problem
        complete_arch_args(config["arch"], stored)
    return config


def _merged(base_json, args=None, stored=False):
    """DEFAULTS < base_json < flags < -o (``args``), with the network's identity shortcut named
    (``stored``: base_json is a checkpoint's config); not validated."""
    config = _with_defaults(base_json)
    if args is not None:
        apply_flags(config, args)
    return _with_arch_defaults(config, stored)


def merge_config(base_json, args):
    """DEFAULTS < base_json < flags < -o; returns a validated dict."""
    return _validated(_merged(base_json, args))


def complete_config(stored):
    """DEFAULTS < ``stored`` (a checkpoint's or a finished run's config), validated: keys added
    since it was saved get the values it was trained with, as when the run is resumed."""
    return _validated(_merged(stored, stored=True))


# What a resumed run may change: where its data and outputs are and how it computes and reports.
# Every other key defines the training its checkpoint is part of; the restored optimiser, scheduler
# and u/v states carry those settings, so a change would be recorded in config.json but not done.
RESUME_MAY_CHANGE = ("name", "data_loader.data_dir", "data_loader.download", "data_loader.eval_batch_size",
                     "data_loader.pipeline", "data_loader.num_workers", "noise.file", "trainer.save_dir",
                     "trainer.tensorboard", "trainer.eval_every", "trainer.amp", "trainer.channels_last",
                     "trainer.compile", "trainer.sync_bn", "trainer.progress_bar")


def flatten(config, prefix=""):
    """{"a.b.c": value} for every leaf of a nested dict (an empty dict has none)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _schedule_follows_epochs(config):
    """Whether the learning-rate schedule is stretched by trainer.epochs (cosine without its own
    T_max: train.py sets T_max = epochs); then a resume cannot change the number of epochs."""
    scheduler = config.get("lr_scheduler")
    return not isinstance(scheduler, dict) or not isinstance(scheduler.get("args"), dict) \
        or scheduler.get("type") == "CosineAnnealingLR" and "T_max" not in scheduler["args"]


def check_resume_changes(stored, config, checkpoint_path, epochs_done):
    """Refuse a resume whose ``config`` changes a key of the checkpoint's ``stored`` config that is
    not in RESUME_MAY_CHANGE (nor trainer.epochs under a schedule that does not depend on it),
    naming every such key, or whose changed epochs leave nothing to train after ``epochs_done``."""
    # not validated: the stored config's paths (noise.file, data_dir) may be the ones that moved
    before, after = flatten(_merged(stored, stored=True)), flatten(config)
    may_change = RESUME_MAY_CHANGE + (() if _schedule_follows_epochs(config) else ("trainer.epochs",))
    changed = [f"{key} {json.dumps(before.get(key))} -> {json.dumps(after.get(key))}"
               for key in sorted(set(before) | set(after))
               if key not in may_change and before.get(key) != after.get(key)]
    if changed:
        raise ConfigError(f"resuming {checkpoint_path}: a resumed run keeps the settings it was trained with, "
                          f"but this changes {', '.join(changed)}; start a new run (-c) to train with them")
    # a finished run resumed as it is re-exports; with fewer epochs, fit would train nothing and
    # report an epoch that was never the last one
    epochs = after.get("trainer.epochs")
    if isinstance(epochs, int) and epochs != before.get("trainer.epochs") and epochs <= epochs_done:
        raise ConfigError(f"{checkpoint_path} has finished epoch {epochs_done}, so --epochs {epochs} trains "
                          f"nothing; give --epochs {epochs_done + 1} or more")


def run_tag(config):
    """Directory name of a run: dataset, noise type and rate, start time."""
    noise = config["noise"]
    dataset = config["data_loader"]["dataset"]
    if noise["type"] == "human":
        tag = f"human-{noise['label_set']}"
    elif makes_no_noise(noise):
        tag = "given" if dataset == "folder" else "clean"   # a folder's labels may be wrong
    else:
        tag = f"{noise['type']}{round(noise['rate'] * 100):g}"
    return f"{dataset}_{tag}_{time.strftime('%m%d_%H%M%S')}"


def parse_args(argv=None):
    """Returns (config, run_dir, resume_checkpoint_path or None). Creates nothing."""
    args = build_arg_parser().parse_args(argv)
    if args.device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.device
    if args.resume:
        from trainer.checkpoint import find_resume_checkpoint, load_checkpoint
        checkpoint_path = find_resume_checkpoint(args.resume)
        state = load_checkpoint(checkpoint_path)
        base = stored = state["config"]
        if args.config:
            base, problems = deep_merge(stored, read_json(args.config))
            if problems:
                raise ConfigError("; ".join(problems))
        config = _merged(base, args, stored=True)
        # first: a refused change is the whole story
        check_resume_changes(stored, config, checkpoint_path, int(state["epoch"]))
        return _validated(config), os.path.dirname(checkpoint_path), checkpoint_path
    if not args.config:
        raise ConfigError("give a config with -c CONFIG.json or a checkpoint with -r")
    config = merge_config(read_json(args.config), args)
    run_dir = os.path.join(config["trainer"]["save_dir"], config["name"], run_tag(config))
    return config, run_dir, None
