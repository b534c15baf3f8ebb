"""Tensorboard pictures for the noise monitor, as CHW uint8 arrays (numpy + PIL only)."""
import numpy as np
from PIL import Image, ImageDraw

CELL = 16          # pixels per transition-matrix entry
GAP = 8
TILE_SCALE = 3     # 32x32 CIFAR image -> 96x96 tile
CAPTION = 12
BORDER = 2


def _heatmap(matrix):
    """White (0) to dark blue (1), one CELL x CELL square per entry."""
    m = np.clip(np.asarray(matrix, np.float64), 0, 1)
    rgb = 1 - m[..., None] * np.array([0.9, 0.7, 0.3])
    return np.kron(rgb, np.ones((CELL, CELL, 1)))


def transition_image(estimated, true=None):
    """Estimated transition matrix (left) next to the true one (right, when known)."""
    panels = [_heatmap(estimated)]
    if true is not None:
        panels += [np.ones((panels[0].shape[0], GAP, 3)), _heatmap(true)]
    return (np.concatenate(panels, axis=1) * 255).round().astype(np.uint8).transpose(2, 0, 1)


def _tile(image_hwc, caption, truly_noisy):
    size = image_hwc.shape[0] * TILE_SCALE
    tile = Image.new("RGB", (size + 2 * BORDER, size + CAPTION + 2 * BORDER), "white")
    if truly_noisy is not None:  # red frame: the label really is wrong; green: it was right
        tile.paste((200, 30, 30) if truly_noisy else (30, 160, 30), (0, 0, tile.width, size + 2 * BORDER))
    tile.paste(Image.fromarray(image_hwc).resize((size, size), Image.NEAREST), (BORDER, BORDER))
    ImageDraw.Draw(tile).text((BORDER, size + 2 * BORDER), caption, fill="black")
    return np.asarray(tile)


def suspects_grid(images_hwc, captions, truly_noisy=None, columns=8):
    """Tiles of the given images with "given>suggested" captions, ``columns`` per row."""
    tiles = [_tile(img, cap, None if truly_noisy is None else bool(truly_noisy[k]))
             for k, (img, cap) in enumerate(zip(images_hwc, captions))]
    rows = -(-len(tiles) // columns)
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (rows * columns - len(tiles))
    grid = np.concatenate([np.concatenate(tiles[r * columns:(r + 1) * columns], axis=1) for r in range(rows)])
    return grid.transpose(2, 0, 1)
