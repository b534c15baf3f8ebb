"""Device, mixed precision and memory-format choices resolved from the config."""
import contextlib
import warnings

import torch

from utils.errors import ConfigError


def resolve_device():
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def resolve_amp(setting, device):
    """Autocast dtype or None. "auto": bf16 on CUDA when supported, else fp32."""
    if setting == "off":
        return None
    if setting == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[setting]
    check_autocast(dtype, device, f"trainer.amp={setting}")
    return dtype


def check_autocast(dtype, device, key):
    """ConfigError unless autocast to ``dtype`` works on ``device`` (torch only warns and runs in fp32)."""
    problem = None
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        problem = "this GPU has no bf16 support"
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with torch.autocast(device.type, dtype=dtype):
                    pass
            except (RuntimeError, AssertionError, ValueError) as err:
                problem = str(err).splitlines()[0]
        problem = problem or next((str(w.message) for w in caught if "autocast" in str(w.message).lower()), None)
    if problem:
        raise ConfigError(f"{key}: {dtype} autocast is not supported on {device.type} ({problem}); use off or bf16")


def autocast(device, dtype):
    """The forward-pass context: autocast to ``dtype``, or nothing when it is None (fp32)."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def to_layout(x, channels_last):
    """A 4-d tensor or a module in channels_last memory format when asked, else unchanged."""
    return x.to(memory_format=torch.channels_last) if channels_last else x


def resolve_channels_last(setting, device):
    """"auto": on CUDA only. On CPU, with torch 2.14.1, the backward pass of a width-8
    PreActResNet18 in channels_last corrupts the heap ("double free or corruption") for odd batch
    sizes such as 49."""
    return device.type == "cuda" if setting == "auto" else bool(setting)


# CPU inference is fastest with batches that stay in cache (benchmarks/speed.py, section 5);
# GPUs want big batches
AUTO_EVAL_BATCH = {"cuda": 512, "cpu": 64}


def resolve_eval_batch_size(setting, device):
    return AUTO_EVAL_BATCH.get(device.type, 512) if setting == "auto" else int(setting)
