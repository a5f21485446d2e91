"""Colour scales: one (lo, hi) per clip mapped through a matplotlib colormap.

The colormap becomes a 256-entry lookup table once, so colouring a frame is an
upsample plus a table lookup (OpenCV), cheap enough for every frame of a video.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import matplotlib
import numpy as np

from stviz.errors import StvizError

# Perceptually uniform and monotonic in brightness (jet's brightest colours sit in
# the middle of its scale); its dark cold end dims what the model ignored instead
# of tinting it blue.
DEFAULT_CMAP = "inferno"
DEFAULT_ALPHA = 0.45
GT_RGB = (40, 220, 40)  # ground-truth boxes and segments
SEGMENT_RGB = (200, 240, 200)  # ground-truth time span shaded in figures (GT_RGB, lightened)
# Where the model saw only a crop of the frame: the rest of the frame is dimmed by this
# factor and the crop outlined, just outside it, in CROP_RGB.
OUTSIDE_DIM = 0.7
CROP_RGB = (255, 255, 255)


def colormap_lut(name: str) -> np.ndarray:
    """The (256, 1, 3) uint8 RGB table of a matplotlib colormap, cold end first."""
    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise StvizError(f"unknown colormap {name!r}; use a matplotlib name such as "
                         f"{DEFAULT_CMAP!r}, 'jet' or 'viridis'") from None
    rgb = cmap(np.linspace(0.0, 1.0, 256))[:, :3]
    return np.round(rgb * 255).astype(np.uint8).reshape(256, 1, 3)


@dataclass
class ColorScale:
    """Values in [lo, hi] coloured through one colormap; values outside are clipped."""

    lo: float
    hi: float
    cmap: str = DEFAULT_CMAP
    lut: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.lut = colormap_lut(self.cmap)
        if not self.hi > self.lo:
            self.hi = self.lo + 1e-12

    def levels(self, values: np.ndarray) -> np.ndarray:
        """Values as float32 in [0, 1] on this scale."""
        scaled = (np.asarray(values, dtype=np.float32) - self.lo) / (self.hi - self.lo)
        return np.clip(scaled, 0.0, 1.0)

    def colors(self, levels: np.ndarray) -> np.ndarray:
        """RGB uint8 for an array of levels in [0, 1] (any shape; adds a last axis of 3)."""
        idx = np.round(np.asarray(levels) * 255).astype(np.intp)
        return self.lut[idx, 0]

    def heatmap(self, values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """A small map coloured at `size` = (width, height).

        Scaling happens at map resolution, before the bilinear upsample: both are
        linear, so the result is the same as scaling the full-size map, at a
        fraction of the cost.
        """
        up = cv2.resize(self.levels(values), size, interpolation=cv2.INTER_LINEAR)
        return cv2.applyColorMap(cv2.convertScaleAbs(up, alpha=255.0), self.lut)

    def overlay(self, frame: np.ndarray, values: np.ndarray, alpha: float,
                out: np.ndarray | None = None,
                region: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """`frame` with the coloured map blended over it (into `out` when given).

        `region` (x0, y0, x1, y1 in the frame's pixels, `Explanation.region`) is where the
        map lies when the model saw only a crop: the map is blended there, the rest of
        the frame dimmed by OUTSIDE_DIM and the region outlined just outside its edge.
        """
        h, w = frame.shape[:2]
        if region is None or tuple(region) == (0, 0, w, h):
            heat = self.heatmap(values, (w, h))
            return cv2.addWeighted(frame, 1.0 - alpha, heat, alpha, 0.0, dst=out)
        x0, y0, x1, y1 = region
        out = cv2.convertScaleAbs(frame, alpha=OUTSIDE_DIM, dst=out)
        heat = self.heatmap(values, (x1 - x0, y1 - y0))
        out[y0:y1, x0:x1] = cv2.addWeighted(frame[y0:y1, x0:x1], 1.0 - alpha, heat, alpha, 0.0)
        cv2.rectangle(out, (x0 - 1, y0 - 1), (x1, y1), CROP_RGB, 1)
        return out

    def colorbar(self, width: int, height: int) -> np.ndarray:
        """A vertical (height, width, 3) colour bar, hot end at the top."""
        ramp = np.linspace(1.0, 0.0, max(height, 1))
        return np.repeat(self.colors(ramp)[:, None, :], max(width, 1), axis=1)


def check_alpha(alpha: float) -> float:
    """Blending weight of the heatmap: 0 shows only the frame, 1 only the map."""
    if not 0.0 <= alpha <= 1.0:
        raise StvizError(f"alpha {alpha} is outside [0, 1]; try {DEFAULT_ALPHA}")
    return float(alpha)
