"""Several explanation methods on the same video: side-by-side video and a PNG sheet.

Each method keeps its own colour scale (its clip's range): methods' relevance has
different units, so one shared scale would wash out all but the largest.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    relevance_curve,
    save_figure,
    show_image,
)
from stviz.render.overlay import Boxes, render_panels

# Pixel layout: method names on the left, captions above the first row, the
# colour bar on the right, the curves' frame axis at the bottom; each temporal curve
# spans CURVE_CELLS image cells.
HEADER, TITLE, GAP, MARGIN, BOTTOM, LABEL, COLORBAR = 40, 20, 10, 16, 44, 120, 112
CURVE_CELLS = 2


def render_compare_video(expls: list[Explanation], frames: Iterable[tuple[int, np.ndarray]],
                         out: str | Path, *, cmap: str = DEFAULT_CMAP,
                         alpha: float = DEFAULT_ALPHA, boxes: Boxes | None = None,
                         overwrite: bool = False) -> Path:
    """The methods' overlay panels side by side on every frame, each titled with its method
    (panel = title bar + overlay panel; panels 2 px apart). `.mp4` or `.gif` by suffix."""
    return render_panels(expls, frames, out, cmap=cmap, alpha=alpha, boxes=boxes,
                         titled=True, overwrite=overwrite)


def compare_sheet_size(methods: int, n: int, frame_size: tuple[int, int],
                       width: int) -> tuple[int, int]:
    """(width, height) in pixels of a sheet of `methods` rows of n frames of `frame_size`."""
    _, img_h = grid_cell(width, LABEL + MARGIN + COLORBAR, n + CURVE_CELLS, GAP,
                         frame_size[1] / frame_size[0])
    return width, HEADER + TITLE + methods * (img_h + GAP) - GAP + BOTTOM


def render_compare_sheet(expls: list[Explanation], frames: dict[int, np.ndarray],
                         out: str | Path, *, k: int = 6, cmap: str = DEFAULT_CMAP,
                         alpha: float = DEFAULT_ALPHA, boxes: Boxes | None = None,
                         width: int = 1600, overwrite: bool = False) -> Path:
    """Rows = methods, columns = the same k frames, then each method's temporal curve.

    The frames are the first explanation's k most relevant sampled frames, in time
    order: list the reference method (the model's own attention, say) first. Maps of
    the other methods at those frames come from `map_at`, so their sampling may
    differ. `frames` must hold `key_frames(expls[0], k)`. The size is
    `compare_sheet_size(len(expls), k, frame size, width)`.
    """
    alpha = check_alpha(alpha)
    ref = expls[0]
    positions = key_positions(ref, k)
    indices = [int(i) for i in ref.frame_indices[positions]]
    scales = [ColorScale(*e.value_range(), cmap=cmap) for e in expls]
    rows = [[heat_frame(e, s, frames, i, alpha, boxes) for i in indices]
            for e, s in zip(expls, scales)]
    fh, fw = rows[0][0].shape[:2]
    size = compare_sheet_size(len(expls), len(indices), (fw, fh), width)
    fig = new_figure(*size)
    cell, img_h = grid_cell(width, LABEL + MARGIN + COLORBAR, len(indices) + CURVE_CELLS, GAP,
                            fh / fw)
    for r, (expl, images) in enumerate(zip(expls, rows)):
        y = HEADER + TITLE + r * (img_h + GAP)
        fig.text((LABEL - 8) / width, 1 - (y + img_h / 2) / size[1], expl.method, ha="right",
                 va="center", fontsize=8, wrap=True)
        for c, img in enumerate(images):
            title = caption(ref, positions[c], relevance=False) if r == 0 else None
            show_image(add_axes(fig, LABEL + c * (cell + GAP), y, cell, img_h), img, title)
        ax = add_axes(fig, LABEL + len(indices) * (cell + GAP), y,
                      CURVE_CELLS * cell + (CURVE_CELLS - 1) * GAP, img_h)
        relevance_curve(ax, expl, marks=indices)
        ax.yaxis.tick_right()
        if r == 0:
            ax.set_title("temporal relevance (dotted: frames shown)", fontsize=7, pad=3)
        if r < len(expls) - 1:
            ax.tick_params(labelbottom=False)
        else:
            ax.set_xlabel("video frame", fontsize=7, labelpad=1)

    add_colorbar(fig, (width - COLORBAR + 56, HEADER + TITLE, 14,
                       size[1] - HEADER - TITLE - BOTTOM), ColorScale(0.0, 1.0, cmap),
                 "relevance (each method: own clip scale)", relative=True)
    p = float(ref.probabilities[ref.predicted])
    fig.text(MARGIN / width, 1 - 24 / size[1], f"compare: {Path(ref.video).name} · predicted "
             f"{ref.predicted_class} ({p:.0%}) · frames: top {len(indices)} of {ref.method}",
             fontsize=9)
    return save_figure(fig, out, overwrite)
