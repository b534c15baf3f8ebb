"""Default values of every config key, and validation of a merged config.

`validate` returns a list of problems (empty when the config is fine), each
naming the offending key, so the user sees all of them in one message.
"""
import inspect
import math
import numbers
import os

DEFAULTS = {
    "name": "SOP",
    "seed": 123,
    "arch": {"type": "PreActResNet18", "args": {"width": 64}},
    "data_loader": {
        "dataset": "cifar10",       # cifar10 | cifar100 | folder (data_dir/train/<class>/, data_dir/test/<class>/)
        "data_dir": "data/",
        "download": True,
        "batch_size": 128,
        "eval_batch_size": "auto",   # auto: 512 on CUDA, 64 on CPU (faster there)
        "validation_split": 0.0,
        "train_subset": 0,          # images per class kept for training (0 = all)
        "pipeline": "device",       # "device": batched tensors on the training device; "pil": DataLoader workers
        "num_workers": 4,
    },
    "noise": {
        "type": "sym",              # clean | sym | asym | instance | human
        "rate": 0.5,
        "seed": None,               # None: use the top-level seed
        "label_set": "worst",       # human noise: aggre, random1-3, worst (CIFAR-10N); noisy (CIFAR-100N)
        "file": None,               # human noise: path of CIFAR-10_human.pt / CIFAR-100_human.pt
    },
    "optimizer": {"type": "SGD", "args": {"lr": 0.02, "momentum": 0.9, "weight_decay": 5e-4}},
    "lr_scheduler": {"type": "CosineAnnealingLR", "args": {"eta_min": 2e-4}},
    "train_loss": {
        "type": "sop",              # sop | cross_entropy | oracle_cross_entropy (clean labels only: a reference)
        "args": {"lr_u": 10.0, "lr_v": 10.0, "init_std": 1e-8,
                 "ratio_consistency": 0.0, "ratio_balance": 0.0},
    },
    "trainer": {
        "epochs": 300,
        "save_dir": "saved/",
        "monitor": "auto",          # auto | max val_accuracy | max test_accuracy
        "tensorboard": True,
        "eval_every": 1,
        "amp": "auto",              # auto | bf16 | fp16 | off
        "channels_last": "auto",    # auto | true | false
        "compile": False,
        "sync_bn": False,           # data-parallel only: batch statistics over all ranks
        "progress_bar": True,
    },
}

CHOICES = {
    "data_loader.dataset": ("cifar10", "cifar100", "folder"),
    "data_loader.pipeline": ("device", "pil"),
    "noise.type": ("clean", "sym", "asym", "instance", "human"),
    "optimizer.type": ("SGD", "Adam", "AdamW"),
    "lr_scheduler.type": ("CosineAnnealingLR", "MultiStepLR", "none"),
    "train_loss.type": ("sop", "cross_entropy", "oracle_cross_entropy"),
    "trainer.monitor": ("auto", "max val_accuracy", "max test_accuracy", "off"),
    "trainer.amp": ("auto", "bf16", "fp16", "off"),
    "trainer.channels_last": ("auto", True, False),
}

# keys whose default is None: the type they take otherwise
OPTIONAL_TYPES = {"noise.seed": numbers.Integral, "noise.file": str}

# the keys train_loss.args may hold (the SOP loss reads these; cross-entropy ignores them)
LOSS_ARGS = ("lr_u", "lr_v", "init_std", "ratio_consistency", "ratio_balance")

CIFAR_N_SETS = {"cifar10": ("aggre", "random1", "random2", "random3", "worst"), "cifar100": ("noisy",)}

# keys that take "auto" or an integer
AUTO_OR_INT = ("data_loader.eval_batch_size",)

# key -> (low, high, low inclusive); None means unbounded on that side
MAX_SEED = 2 ** 64 - 1   # torch.manual_seed takes no larger one
RANGES = {
    "seed": (0, MAX_SEED, True),
    "data_loader.batch_size": (1, None, True),
    "data_loader.eval_batch_size": (1, None, True),
    "data_loader.validation_split": (0.0, 1.0, True),
    "data_loader.train_subset": (0, None, True),
    "data_loader.num_workers": (0, None, True),
    "noise.rate": (0.0, 1.0, True),
    "noise.seed": (0, MAX_SEED, True),
    "optimizer.args.lr": (0.0, None, False),
    "optimizer.args.momentum": (0.0, 1.0, True),
    "optimizer.args.weight_decay": (0.0, None, True),
    "optimizer.args.eps": (0.0, None, False),
    "lr_scheduler.args.eta_min": (0.0, None, True),
    "lr_scheduler.args.T_max": (1, None, True),
    "lr_scheduler.args.gamma": (0.0, None, False),
    "train_loss.args.lr_u": (0.0, None, True),
    "train_loss.args.lr_v": (0.0, None, True),
    "train_loss.args.init_std": (0.0, None, True),
    "train_loss.args.ratio_consistency": (0.0, None, True),
    "train_loss.args.ratio_balance": (0.0, None, True),
    "trainer.epochs": (1, None, True),
    "trainer.eval_every": (1, None, True),
}


def flatten(config, prefix=""):
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and not path.endswith("args"):
            yield from flatten(value, path + ".")
        elif isinstance(value, dict):
            yield path, value
            yield from flatten(value, path + ".")
        else:
            yield path, value


def _shape_problems(defaults, config, prefix=""):
    """Every section that is an object in DEFAULTS must be one in the config."""
    for key, default in defaults.items():
        if isinstance(default, dict):
            if not isinstance(config.get(key), dict):
                yield f"'{prefix}{key}' must be an object, got {config.get(key)!r}"
            else:
                yield from _shape_problems(default, config[key], f"{prefix}{key}.")


def _type_problem(path, value, default):
    if isinstance(default, dict):
        return None
    if path in AUTO_OR_INT:
        if value == "auto" or (isinstance(value, numbers.Integral) and not isinstance(value, bool)):
            return None
        return f"'{path}' must be \"auto\" or an integer, got {value!r}"
    if default is None:
        kind = OPTIONAL_TYPES.get(path)
        if kind is None or value is None or (isinstance(value, kind) and not isinstance(value, bool)):
            return None
        return f"'{path}' must be {'an integer' if kind is numbers.Integral else 'a string'} or null, got {value!r}"
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, type(default)) or path in CHOICES
        if isinstance(value, bool) and not isinstance(default, bool) and path not in CHOICES:
            ok = False  # true/false is not a number
    elif isinstance(default, numbers.Integral):
        ok = isinstance(value, numbers.Integral)  # 64.0 would break range()/indexing later
    elif isinstance(default, numbers.Real):
        ok = isinstance(value, numbers.Real)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        return f"'{path}' must be {type(default).__name__}, got {value!r}"
    return None


def _range_problem(path, value, low, high, low_inclusive):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"'{path}' must be finite, got {value!r}"
    below = value < low if low_inclusive else value <= low
    if (low is not None and below) or (high is not None and value > high):
        bounds = (f"in [{low}, {high}]" if high is not None else f">= {low}") if low_inclusive else f"> {low}"
        return f"'{path}' must be {bounds}, got {value!r}"
    return None


def validate(config):
    """All problems of a merged config, as a list of one-line strings."""
    problems = list(_shape_problems(DEFAULTS, config))
    if problems:
        return problems  # a section replaced by a scalar: the checks below would only add noise
    defaults = dict(flatten(DEFAULTS))
    values = dict(flatten(config))
    for path, value in values.items():
        if path in defaults:
            problem = _type_problem(path, value, defaults[path])
            if problem:
                problems.append(problem)
    for path, choices in CHOICES.items():
        if path in values and values[path] not in choices:
            problems.append(f"'{path}' must be one of {', '.join(map(str, choices))}; got {values[path]!r}")
    for path, (low, high, inclusive) in RANGES.items():
        if path in values and values[path] is not None and not any(p.startswith(f"'{path}'") for p in problems):
            problem = _range_problem(path, values[path], low, high, inclusive)
            if problem:
                problems.append(problem)
    from model.networks import ARCHS  # imported late: networks pull in torch
    if values.get("arch.type") not in ARCHS:
        problems.append(f"'arch.type' must be one of {', '.join(ARCHS)}; got {values.get('arch.type')!r}")
    if not isinstance(values.get("name"), str) or not values.get("name") or "/" in values.get("name", ""):
        problems.append(f"'name' must be a non-empty string without '/'; got {values.get('name')!r}")
    if values.get("data_loader.validation_split") == 1.0:
        problems.append("'data_loader.validation_split' must be below 1 (nothing left to train on)")
    return problems + _args_problems(config) + _cross_problems(config)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _unknown_args(section, args, allowed):
    return [f"'{section}.args.{key}' is not an argument of {section} (valid: {', '.join(sorted(allowed))})"
            for key in args if key not in allowed]


def _args_problems(config):
    """Keys and values inside the args blocks, checked against what their constructors take."""
    import torch  # late: only needed here
    from model.networks import ARCHS, arch_args_problems
    problems = []
    arch, args = config["arch"], config["arch"].get("args")
    if arch.get("type") in ARCHS and isinstance(args, dict):
        problems += arch_args_problems(arch["type"], args)
    for section, module, skip in (("optimizer", torch.optim, {"params"}),
                                  ("lr_scheduler", torch.optim.lr_scheduler, {"optimizer", "last_epoch"})):
        spec = config[section]
        if spec.get("type") not in CHOICES[f"{section}.type"] or spec["type"] == "none":
            continue
        allowed = set(inspect.signature(getattr(module, spec["type"])).parameters) - skip
        problems += _unknown_args(section, spec["args"], allowed)
        for key, value in spec["args"].items():
            if key in ("lr", "momentum", "weight_decay", "eps", "eta_min", "gamma") and not _is_number(value):
                problems.append(f"'{section}.args.{key}' must be a number, got {value!r}")
            if key == "T_max" and (isinstance(value, bool) or not isinstance(value, int)):
                problems.append(f"'{section}.args.T_max' must be an integer, got {value!r}")
    if config["lr_scheduler"].get("type") == "MultiStepLR":
        milestones = config["lr_scheduler"]["args"].get("milestones")
        if not (isinstance(milestones, list) and milestones and all(
                isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in milestones)):
            problems.append(f"'lr_scheduler.args.milestones' must be a list of positive epochs, got {milestones!r}")
    problems += _unknown_args("train_loss", config["train_loss"]["args"], LOSS_ARGS)
    return problems


def makes_no_noise(noise):
    """The ``noise`` section leaves the labels as they are: type clean, or a synthetic type at rate 0."""
    return noise.get("type") == "clean" or (noise.get("type") != "human" and noise.get("rate") == 0)


def _folder_problems(noise, train_loss):
    """A folder dataset's labels are the given ones: no CIFAR-specific noise, and no clean-label
    reference unless synthetic noise is made on top of them."""
    problems = []
    if noise.get("type") in ("asym", "human"):
        problems.append(f"'noise.type' {noise['type']} is defined for CIFAR only; a folder dataset takes "
                        f"clean (its labels as given), sym or instance (synthetic noise on top of them)")
    if makes_no_noise(noise) and train_loss.get("type") == "oracle_cross_entropy":
        problems.append("'train_loss.type' oracle_cross_entropy needs the true labels; a folder dataset "
                        "without synthetic noise (noise.type clean or noise.rate 0) has none")
    return problems


def _cross_problems(config):
    """Rules that join several keys, and files that must exist."""
    problems = []
    noise, loader, trainer = config["noise"], config["data_loader"], config["trainer"]
    if noise.get("type") == "human":
        sets = CIFAR_N_SETS.get(loader.get("dataset"), ())
        if sets and noise.get("label_set") not in sets:
            problems.append(f"'noise.label_set' for {loader['dataset']} must be one of {', '.join(sets)}; "
                            f"got {noise.get('label_set')!r}")
    if loader.get("dataset") == "folder":
        problems += _folder_problems(noise, config["train_loss"])
    if isinstance(noise.get("file"), str) and not os.path.isfile(noise["file"]):
        problems.append(f"'noise.file' not found: {noise['file']}")
    if trainer.get("monitor") == "max val_accuracy" and loader.get("validation_split") == 0:
        problems.append("'trainer.monitor' is max val_accuracy but data_loader.validation_split is 0 "
                        "(no validation set)")
    save_dir = trainer.get("save_dir")
    if isinstance(save_dir, str) and os.path.exists(save_dir) and not os.path.isdir(save_dir):
        problems.append(f"'trainer.save_dir' is a file, not a directory: {save_dir}")
    if config.get("name") in (".", ".."):
        problems.append(f"'name' must name a directory, got {config['name']!r}")
    return problems
