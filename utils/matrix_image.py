"""Render a (C, C) matrix of values in [0, 1] as an RGB image tensor for tensorboard."""
import numpy as np
import torch


def matrix_image(matrix, cell=None, size=320):
    """CHW float tensor in [0, 1]: white (0) to dark blue (1), one square per entry,
    with a grey grid line between entries when cells are large enough to show it."""
    values = np.clip(np.asarray(matrix, dtype=np.float32), 0.0, 1.0)
    rows, cols = values.shape
    cell = cell or max(1, size // max(rows, cols))
    low = np.array([1.0, 1.0, 1.0], dtype=np.float32)
    high = np.array([0.03, 0.19, 0.42], dtype=np.float32)
    rgb = low + values[..., None] * (high - low)                  # (rows, cols, 3)
    image = np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)
    if cell >= 4:
        image[::cell, :, :] = 0.6
        image[:, ::cell, :] = 0.6
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
