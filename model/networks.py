"""Architecture registry: config `arch.type` / `arch.args` -> nn.Module."""
import inspect

import torch.nn as nn

from model.preact_resnet import PreActResNet18, PreActResNet34
from model.resnet import ResNet34
from utils.errors import ConfigError

ARCHS = {
    "PreActResNet18": PreActResNet18,
    "PreActResNet34": PreActResNet34,
    "ResNet34": ResNet34,
}


def build_arch(type_name: str, num_classes: int, args: dict | None = None) -> nn.Module:
    """Build `ARCHS[type_name](num_classes=num_classes, **args)`.

    Raises ConfigError for an unknown type (`arch.type`) or an argument the
    constructor does not take (`arch.args.<key>`).
    """
    if type_name not in ARCHS:
        raise ConfigError(
            f"arch.type: unknown architecture {type_name!r}; valid: {', '.join(sorted(ARCHS))}"
        )
    ctor = ARCHS[type_name]
    args = dict(args or {})
    valid = set(inspect.signature(ctor).parameters) - {"num_classes"}
    for key in args:
        if key not in valid:
            raise ConfigError(
                f"arch.args.{key}: not an argument of {type_name}; valid: {', '.join(sorted(valid))}"
            )
    width = args.get("width", 64)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ConfigError(f"arch.args.width: must be a positive integer, got {width!r}")
    return ctor(num_classes=num_classes, **args)
