"""Architecture registry: config `arch.type` / `arch.args` -> nn.Module."""
import inspect

import torch.nn as nn

from model.preact_resnet import IDENTITY_SHORTCUTS, PreActResNet18, PreActResNet34
from model.resnet import ResNet34
from utils.errors import ConfigError

ARCHS = {
    "PreActResNet18": PreActResNet18,
    "PreActResNet34": PreActResNet34,
    "ResNet34": ResNet34,
}


def complete_arch_args(arch, stored):
    """Name the identity shortcut of a pre-activation network in ``arch["args"]`` when the config
    does not: the official "preactivated" one for a new run, "input" for a ``stored`` config (a
    checkpoint's or a finished run's), which names none only when it was written before the
    official block became the default, and so was trained with the input one."""
    ctor = ARCHS.get(arch.get("type"))
    if ctor is not None and isinstance(arch.get("args"), dict) \
            and "identity_shortcut" in inspect.signature(ctor).parameters:
        arch["args"].setdefault("identity_shortcut", "input" if stored else "preactivated")
    return arch


def arch_args_problems(type_name, args):
    """What is wrong with ``args`` for ``ARCHS[type_name]`` (a known type): one line each."""
    allowed = set(inspect.signature(ARCHS[type_name]).parameters) - {"num_classes"}
    problems = [f"'arch.args.{key}' is not an argument of arch (valid: {', '.join(sorted(allowed))})"
                for key in args if key not in allowed]
    width = args.get("width", 64)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        problems.append(f"'arch.args.width' must be a positive integer, got {width!r}")
    shortcut = args.get("identity_shortcut", IDENTITY_SHORTCUTS[0])
    if "identity_shortcut" in allowed and shortcut not in IDENTITY_SHORTCUTS:
        problems.append(f"'arch.args.identity_shortcut' must be one of {', '.join(IDENTITY_SHORTCUTS)}, "
                        f"got {shortcut!r}")
    return problems


def build_arch(type_name: str, num_classes: int, args: dict | None = None) -> nn.Module:
    """Build `ARCHS[type_name](num_classes=num_classes, **args)`; a ConfigError for an unknown
    type (`arch.type`) or bad arguments (`arch.args.<key>`)."""
    if type_name not in ARCHS:
        raise ConfigError(
            f"arch.type: unknown architecture {type_name!r}; valid: {', '.join(sorted(ARCHS))}"
        )
    args = dict(args or {})
    problems = arch_args_problems(type_name, args)
    if problems:
        raise ConfigError("; ".join(problems))
    return ARCHS[type_name](num_classes=num_classes, **args)
