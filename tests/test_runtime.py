"""Mixed-precision / channels_last resolution from the config."""
import warnings

import pytest
import torch

from utils import runtime
from utils.errors import ConfigError

CPU = torch.device("cpu")


def test_auto_is_fp32_on_cpu_and_explicit_modes_resolve():
    assert runtime.resolve_amp("auto", CPU) is None and runtime.resolve_amp("off", CPU) is None
    assert runtime.resolve_amp("bf16", CPU) is torch.bfloat16  # CPU autocast supports bf16
    assert runtime.resolve_channels_last("auto", CPU) is False and runtime.resolve_channels_last(True, CPU) is True
    assert runtime.resolve_channels_last("auto", torch.device("cuda")) is True


def test_auto_eval_batch_is_small_on_cpu_and_large_on_cuda():
    assert runtime.resolve_eval_batch_size("auto", CPU) == 64
    assert runtime.resolve_eval_batch_size("auto", torch.device("cuda")) == 512
    assert runtime.resolve_eval_batch_size(100, CPU) == 100


def test_unsupported_autocast_is_a_config_error(monkeypatch):
    class WarningAutocast:  # what torch does for an unsupported dtype: warn, then run without autocast
        def __init__(self, device_type, dtype):
            warnings.warn("In CPU autocast, but the target dtype is not supported. Disabling autocast.")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(runtime.torch, "autocast", WarningAutocast)
    with pytest.raises(ConfigError, match=r"^trainer.amp=fp16: torch.float16 autocast is not supported on cpu"):
        runtime.resolve_amp("fp16", CPU)


def test_to_layout_converts_tensors_and_modules_only_when_asked():
    x, conv = torch.randn(2, 3, 4, 4), torch.nn.Conv2d(3, 5, 3)
    assert runtime.to_layout(x, False) is x and runtime.to_layout(conv, False) is conv
    assert runtime.to_layout(x, True).is_contiguous(memory_format=torch.channels_last)
    assert not x.is_contiguous(memory_format=torch.channels_last)
    assert runtime.to_layout(conv, True).weight.is_contiguous(memory_format=torch.channels_last)


def test_autocast_context_sets_the_dtype_or_leaves_fp32():
    a = torch.randn(4, 4)
    with runtime.autocast(CPU, torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16
    with runtime.autocast(CPU, None):
        assert (a @ a).dtype == torch.float32
