"""Device, mixed precision and memory-format choices resolved from the config."""
import torch


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
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[setting]


def resolve_channels_last(setting, device):
    return device.type == "cuda" if setting == "auto" else bool(setting)
