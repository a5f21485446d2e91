"""What the PNG figures share: exact-size Agg figures, atomic saving, frame choice, captions.

Figures are `matplotlib.figure.Figure` objects on an Agg canvas, never pyplot:
no global state, no display needed, safe in worker threads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from stviz.explain.explanation import Explanation
from stviz.files import atomic_path
from stviz.render.colors import ColorScale
from stviz.render.overlay import Boxes, draw_boxes, video_length

# A power of two: px / DPI * DPI is exact in floating point, so a figure has exactly
# the pixel size asked for (Agg truncates, and 0.29 * 100 is 28.999...).
DPI = 128


def new_figure(width: int, height: int) -> Figure:
    """A white figure of exactly width x height pixels."""
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def add_axes(fig: Figure, x: float, y: float, w: float, h: float) -> Axes:
    """Axes at a pixel rectangle measured from the figure's top-left corner."""
    fw, fh = fig.bbox.width, fig.bbox.height
    return fig.add_axes((x / fw, 1.0 - (y + h) / fh, w / fw, h / fh))


def save_figure(fig: Figure, out: str | Path, overwrite: bool) -> Path:
    """Write the figure atomically; the format follows the suffix of `out`."""
    with atomic_path(out, overwrite) as tmp:
        fig.savefig(tmp, dpi=DPI, facecolor=fig.get_facecolor())
    return Path(out)


def key_positions(expl: Explanation, k: int, spread: bool = False) -> np.ndarray:
    """Positions (into `frame_indices`) of the frames a figure shows, in time order:
    the k most relevant sampled frames, or k evenly spaced ones when `spread`."""
    n = len(expl.frame_indices)
    if spread:
        return np.unique(np.round(np.linspace(0, n - 1, min(k, n))).astype(int))
    return np.sort(expl.top_frames(k))


def key_frames(expl: Explanation, k: int, spread: bool = False) -> list[int]:
    """The video frame indices `key_positions` picks: the frames to decode for a figure."""
    return [int(i) for i in expl.frame_indices[key_positions(expl, k, spread)]]


def caption(expl: Explanation, pos: int, relevance: bool = True) -> str:
    """'frame 123 · t=4.1s · rel 0.12' for the sampled frame at `pos`."""
    text = f"frame {expl.frame_indices[pos]} · t={expl.timestamps[pos]:.1f}s"
    return text + (f" · rel {expl.temporal[pos]:.2g}" if relevance else "")


def heat_frame(expl: Explanation, scale: ColorScale, frames: dict[int, np.ndarray],
               index: int, alpha: float, boxes: Boxes | None) -> np.ndarray:
    """Video frame `index` with its map blended over it (inside the crop the model saw,
    if any) and its GT boxes."""
    if index not in frames:
        raise ValueError(f"frames lacks video frame {index}; pass the frames of key_frames()")
    frame = frames[index]
    img = scale.overlay(frame, expl.map_at(index), alpha,
                        region=expl.region((frame.shape[1], frame.shape[0])))
    draw_boxes(img, (boxes or {}).get(index))
    return img


def show_image(ax: Axes, img: np.ndarray, title: str | None = None) -> None:
    """An image panel without ticks or frame."""
    ax.imshow(img, interpolation="antialiased")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=7, pad=3)


def relevance_curve(ax: Axes, expl: Explanation, marks: list[int] | None = None) -> None:
    """Temporal relevance over video frame index; dotted lines at the frames in `marks`."""
    x, y = expl.frame_indices, expl.temporal
    ax.fill_between(x, y, min(0.0, float(y.min())), color="#9ecae1", lw=0, zorder=1)
    ax.plot(x, y, "-o", color="#08519c", ms=2.5, lw=1.2, zorder=3, label="sampled frames")
    for m in marks or []:
        ax.axvline(m, color="0.4", ls=":", lw=0.8, zorder=2)
    ax.set_xlim(0, video_length(expl) - 1)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, lw=0.5)


def add_colorbar(fig: Figure, rect: tuple[float, float, float, float], scale: ColorScale,
                 label: str, relative: bool = False) -> None:
    """A vertical colour bar at a pixel rect; `relative` labels its ends low/high instead
    of values (for sheets where every row has its own scale)."""
    cax = add_axes(fig, *rect)
    mappable = ScalarMappable(Normalize(scale.lo, scale.hi), scale.cmap)
    bar = fig.colorbar(mappable, cax=cax)
    if relative:
        bar.set_ticks([scale.lo, scale.hi], labels=["low", "high"])
    bar.ax.tick_params(labelsize=7)
    bar.set_label(label, fontsize=8)


def grid_cell(width: int, reserved: int, columns: int, gap: int, aspect: float) -> tuple[int, int]:
    """(cell width, image height) of `columns` equal cells filling `width` less `reserved`
    pixels and the gaps; the height follows the frames' aspect (height / width)."""
    cell = (width - reserved - (columns - 1) * gap) // columns
    return cell, round(cell * aspect)
