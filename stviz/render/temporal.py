"""The 'when' figure: temporal relevance over the video, with key-frame thumbnails."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.patches import ConnectionPatch

from stviz.explain.explanation import Explanation
from stviz.render.colors import DEFAULT_ALPHA, DEFAULT_CMAP, SEGMENT_RGB, ColorScale, check_alpha
from stviz.render.figures import (
    add_axes,
    heat_frame,
    key_positions,
    new_figure,
    relevance_curve,
    save_figure,
    show_image,
)

# Pixel layout: header, thumbnail row (share of the height), room for connectors,
# curve; margins for tick labels and the second (seconds) axis below.
HEADER, GAP, LEFT, RIGHT, BOTTOM = 36, 40, 72, 24, 100
THUMB_SHARE = 0.32


def peaks(temporal: np.ndarray) -> np.ndarray:
    """Positions of the curve's peaks (ends included) that stand out by 10% of its range.

    Prominence as scipy.signal.find_peaks defines it (a plateau's peak is its middle),
    computed here because importing scipy.signal takes ~0.7 s of `stviz explain`.
    """
    x = np.asarray(temporal, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros(0, dtype=int)
    found = []
    i = 0
    while i < len(x):
        end = i
        while end + 1 < len(x) and x[end + 1] == x[i]:
            end += 1  # a plateau [i, end]
        rises = i == 0 or x[i - 1] < x[i]
        falls = end == len(x) - 1 or x[end + 1] < x[i]
        if rises and falls:
            left, right = x[:i][::-1], x[end + 1:]
            # the lowest point on each side before the curve climbs above this peak
            base = max(_lowest_until_higher(left, x[i]), _lowest_until_higher(right, x[i]))
            if x[i] - base >= 0.1 * (hi - lo):
                found.append((i + end) // 2)
        i = end + 1
    return np.array(found, dtype=int)


def _lowest_until_higher(side: np.ndarray, height: float) -> float:
    """Minimum of `side` (walking away from a peak) up to its first value above `height`;
    an end of the curve counts as a drop to below its minimum (so the ends can be peaks)."""
    higher = np.flatnonzero(side > height)
    if not len(higher):
        return -np.inf
    return float(side[:higher[0]].min(initial=np.inf))


def render_temporal(expl: Explanation, frames: dict[int, np.ndarray], out: str | Path, *,
                    k: int = 6,
                    segment: tuple[int, int] | Sequence[tuple[int, int]] | None = None,
                    cmap: str = DEFAULT_CMAP, alpha: float = DEFAULT_ALPHA,
                    size: tuple[int, int] = (1280, 640), overwrite: bool = False) -> Path:
    """A PNG of exactly `size` pixels: the relevance curve over video frames (and seconds),
    peaks marked, the ground-truth `segment` (first, last frame), or a list of such spans,
    shaded, and k evenly spaced sampled frames above it with their maps on the clip's one
    scale.

    `frames` maps video frame index to RGB frame and must hold `key_frames(expl, k,
    spread=True)`; evenly spaced thumbnails show the whole video, where the curve
    says which parts mattered.
    """
    alpha = check_alpha(alpha)
    width, height = size
    fig = new_figure(width, height)
    curve_w = width - LEFT - RIGHT
    thumbs_h = round(THUMB_SHARE * height)
    curve_top = HEADER + thumbs_h + GAP
    ax = add_axes(fig, LEFT, curve_top, curve_w, height - curve_top - BOTTOM)

    spans = [] if segment is None else np.asarray(segment, dtype=float).reshape(-1, 2)
    for i, (first, last) in enumerate(spans):
        ax.axvspan(first, last, color=np.array(SEGMENT_RGB) / 255, lw=0, zorder=0,
                   label="ground truth" if i == 0 else None)
    relevance_curve(ax, expl)
    top = peaks(expl.temporal)
    ax.plot(expl.frame_indices[top], expl.temporal[top], "v", color="#d62728", ms=7,
            zorder=5, label="peaks")
    ax.set_xlabel("video frame", fontsize=8)
    ax.set_ylabel("temporal relevance", fontsize=8)
    if expl.fps > 0:
        fps = float(expl.fps)
        sec = ax.secondary_xaxis(-54 / ax.bbox.height, functions=(lambda f: f / fps,
                                                                  lambda s: s * fps))
        sec.set_xlabel("seconds", fontsize=8)
        sec.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper right", framealpha=0.8)

    scale = ColorScale(*expl.value_range(), cmap=cmap)
    positions = key_positions(expl, k, spread=True)
    slot = curve_w / max(len(positions), 1)
    for i, pos in enumerate(positions):
        index = int(expl.frame_indices[pos])
        img = heat_frame(expl, scale, frames, index, alpha, None)
        aspect = img.shape[0] / img.shape[1]
        tw = min(slot - 8, (thumbs_h - 14) / aspect)
        th = tw * aspect
        thumb = add_axes(fig, LEFT + (i + 0.5) * slot - tw / 2, HEADER + thumbs_h - th, tw, th)
        show_image(thumb, img, f"frame {index} · {expl.timestamps[pos]:.1f}s")
        fig.add_artist(ConnectionPatch((0.5, 0.0), (index, expl.temporal[pos]),
                                       coordsA="axes fraction", coordsB="data", axesA=thumb,
                                       axesB=ax, color="0.5", lw=0.7, zorder=4))

    p = float(expl.probabilities[expl.predicted])
    fig.text(LEFT / width, 1 - 22 / height, f"when: {expl.method} · predicted "
             f"{expl.predicted_class} ({p:.0%}) · {Path(expl.video).name}", fontsize=9)
    return save_figure(fig, out, overwrite)
