"""Nuclear-medicine display of count images: inverted grey, anterior and posterior side by side.

Workstations show bone scans black-on-white with the upper window set well below the hottest
pixel, so that the skeleton fills the grey range and the bladder or an injection site saturates.
The window here is a high percentile of the counts inside the body, lightly smoothed first so
that a single noisy pixel cannot set it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

WINDOW_PERCENTILE = 99.0
"""Upper display level: this percentile of the smoothed counts inside the body (# assumption,
chosen by eye so that the spine is dark grey and bladder and hot lesions saturate)."""
WINDOW_GAIN = 1.15
"""The upper level is the percentile times this gain (# assumption)."""
BODY_FRACTION = 0.05
"""Pixels above this fraction of the 99.5th percentile of the smoothed counts count as body for the
window (# assumption): the percentile, unlike the maximum, ignores a hot bladder or injection site."""
GAP = 8
CAPTION_HEIGHT = 18
BACKGROUND = 255


def display_window(view: np.ndarray) -> float:
    """Counts shown as black: the upper level of the display window for one view."""
    smooth = ndimage.uniform_filter(np.asarray(view, dtype=np.float32), size=3)
    positive = smooth[smooth > 0]
    if positive.size == 0:
        return 1.0
    body = positive[positive > BODY_FRACTION * np.percentile(positive, 99.5)]
    return max(float(np.percentile(body, WINDOW_PERCENTILE)) * WINDOW_GAIN, 1e-6)


def display_image(view: np.ndarray) -> np.ndarray:
    """One view (rows, cols) of counts as uint8 inverted grey: 255 white background, 0 the hottest."""
    view = np.asarray(view, dtype=np.float32)
    level = display_window(view)
    return (255.0 - np.clip(view / level, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def render_study(counts: np.ndarray, caption: str) -> Image.Image:
    """Anterior (left) and posterior (right, as stored: seen from behind) with a caption line below."""
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[0] != 2:
        raise ValueError(f"counts must have shape (2, rows, columns), got {counts.shape}")
    rows, cols = counts.shape[1:]
    canvas = np.full((rows + CAPTION_HEIGHT, 2 * cols + GAP), BACKGROUND, dtype=np.uint8)
    canvas[:rows, :cols] = display_image(counts[0])
    canvas[:rows, cols + GAP :] = display_image(counts[1])
    canvas[:rows, cols : cols + GAP] = 200
    image = Image.fromarray(canvas, mode="L")
    draw = ImageDraw.Draw(image)
    draw.text((2, rows + 3), caption, fill=0, font=ImageFont.load_default())
    return image


def render_grid(items: Sequence[tuple[np.ndarray, str]], columns: int) -> Image.Image:
    """Studies rendered by :func:`render_study` in a grid, ``columns`` studies per row."""
    if not items:
        raise ValueError("render_grid needs at least one study")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    tiles = [render_study(counts, caption) for counts, caption in items]
    width = max(t.width for t in tiles)
    height = max(t.height for t in tiles)
    columns = min(columns, len(tiles))
    grid_rows = -(-len(tiles) // columns)
    sheet = Image.new(
        "L", (columns * width + (columns - 1) * GAP, grid_rows * height + (grid_rows - 1) * GAP), 160
    )
    for index, tile in enumerate(tiles):
        row, col = divmod(index, columns)
        sheet.paste(tile, (col * (width + GAP), row * (height + GAP)))
    return sheet
