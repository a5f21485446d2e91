"""The key-frame sheet: the most relevant sampled frames with their maps, one PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from stviz.explain.explanation import Explanation
from stviz.render.colors import DEFAULT_ALPHA, DEFAULT_CMAP, ColorScale, check_alpha
from stviz.render.figures import (
    add_axes,
    add_colorbar,
    caption,
    grid_cell,
    heat_frame,
    key_positions,
    new_figure,
    save_figure,
    show_image,
)
from stviz.render.overlay import Boxes

# Pixel layout: header line, a caption above every image, gaps between cells,
# outer margin, and room on the right for the colour bar and its labels.
HEADER, TITLE, GAP, MARGIN, COLORBAR = 40, 20, 12, 16, 96
MAX_COLUMNS = 3


def keyframes_size(n: int, frame_size: tuple[int, int], width: int) -> tuple[int, int]:
    """(width, height) in pixels of a sheet of n frames of `frame_size` = (w, h)."""
    cols = min(n, MAX_COLUMNS)
    rows = math.ceil(n / cols)
    _, img_h = grid_cell(width, 2 * MARGIN + COLORBAR, cols, GAP, frame_size[1] / frame_size[0])
    return width, HEADER + rows * (TITLE + img_h + GAP) - GAP + MARGIN


def render_keyframes(expl: Explanation, frames: dict[int, np.ndarray], out: str | Path, *,
                     k: int = 6, cmap: str = DEFAULT_CMAP, alpha: float = DEFAULT_ALPHA,
                     boxes: Boxes | None = None, width: int = 1280,
                     overwrite: bool = False) -> Path:
    """The k most relevant sampled frames in time order, in up to 3 columns, each with its
    map on the clip's one scale, a 'frame · t · rel' caption and its GT boxes.

    `frames` maps video frame index to RGB frame and must hold `key_frames(expl, k)`.
    The size is `keyframes_size(k, frame size, width)`.
    """
    alpha = check_alpha(alpha)
    positions = key_positions(expl, k)
    scale = ColorScale(*expl.value_range(), cmap=cmap)
    images = [heat_frame(expl, scale, frames, int(expl.frame_indices[pos]), alpha, boxes)
              for pos in positions]
    fh, fw = images[0].shape[:2]
    size = keyframes_size(len(images), (fw, fh), width)
    fig = new_figure(*size)
    cols = min(len(images), MAX_COLUMNS)
    cell, img_h = grid_cell(width, 2 * MARGIN + COLORBAR, cols, GAP, fh / fw)
    for i, (pos, img) in enumerate(zip(positions, images)):
        row, col = divmod(i, cols)
        ax = add_axes(fig, MARGIN + col * (cell + GAP),
                      HEADER + row * (TITLE + img_h + GAP) + TITLE, cell, img_h)
        show_image(ax, img, caption(expl, pos))

    add_colorbar(fig, (width - COLORBAR + 16, HEADER + TITLE, 14, size[1] - HEADER - TITLE
                       - MARGIN), scale, "spatial relevance (one scale per clip)")
    p = float(expl.probabilities[expl.predicted])
    fig.text(MARGIN / width, 1 - 24 / size[1], f"where: {expl.method} · predicted "
             f"{expl.predicted_class} ({p:.0%}) · top {len(positions)} of "
             f"{len(expl.frame_indices)} sampled frames · {Path(expl.video).name}", fontsize=9)
    return save_figure(fig, out, overwrite)
