"""Default values of every config key, and validation of a merged config.

`validate` returns a list of problems (empty when the config is fine), each
naming the offending key, so the user sees all of them in one message.
"""
import math
import numbers

DEFAULTS = {
    "name": "SOP",
    "seed": 123,
    "arch": {"type": "PreActResNet18", "args": {"width": 64}},
    "data_loader": {
        "dataset": "cifar10",
        "data_dir": "data/",
        "download": True,
        "batch_size": 128,
        "eval_batch_size": 512,
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
        "type": "sop",              # sop | cross_entropy
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
        "progress_bar": True,
    },
}

CHOICES = {
    "data_loader.dataset": ("cifar10", "cifar100"),
    "data_loader.pipeline": ("device", "pil"),
    "noise.type": ("clean", "sym", "asym", "instance", "human"),
    "optimizer.type": ("SGD", "Adam", "AdamW"),
    "lr_scheduler.type": ("CosineAnnealingLR", "MultiStepLR", "none"),
    "train_loss.type": ("sop", "cross_entropy"),
    "trainer.monitor": ("auto", "max val_accuracy", "max test_accuracy", "off"),
    "trainer.amp": ("auto", "bf16", "fp16", "off"),
    "trainer.channels_last": ("auto", True, False),
}

# key -> (low, high, low inclusive); None means unbounded on that side
RANGES = {
    "seed": (0, None, True),
    "data_loader.batch_size": (1, None, True),
    "data_loader.eval_batch_size": (1, None, True),
    "data_loader.validation_split": (0.0, 1.0, True),
    "data_loader.train_subset": (0, None, True),
    "data_loader.num_workers": (0, None, True),
    "noise.rate": (0.0, 1.0, True),
    "noise.seed": (0, None, True),
    "optimizer.args.lr": (0.0, None, False),
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


def _type_problem(path, value, default):
    if default is None or path.endswith(".args") or isinstance(default, dict):
        return None
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, type(default)) or path in CHOICES
    elif isinstance(default, numbers.Integral):
        ok = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
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
        bounds = f"[{low}, {high if high is not None else 'inf'})" if low_inclusive else f"> {low}"
        return f"'{path}' must be in {bounds}, got {value!r}"
    return None


def validate(config):
    """All problems of a merged config, as a list of one-line strings."""
    defaults = dict(flatten(DEFAULTS))
    values = dict(flatten(config))
    problems = []
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
    return problems
