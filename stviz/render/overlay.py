"""Heatmap overlay videos: every frame of the video with its map, label and timeline.

Frames stream through one at a time, so memory does not grow with the video.
Everything that is the same on every frame (colour table, colour bar, timeline
strip, title) is drawn once; per frame only the blend, label, boxes and cursor are.

Panel layout, top to bottom (``h`` = frame height)::

    [title bar]   compare videos only: the method name
    frame         heatmap blended over it (only inside the crop the model saw, if it
                  saw one: the rest dimmed, the crop outlined), predicted label
                  top-left, GT boxes
    strip         max(24, 2 * round(0.1 * h)) px: temporal relevance of the whole
                  video as coloured bars, ticks at the sampled frames, a white
                  cursor at the current frame; the colour bar with the clip's
                  (lo, hi) at its right end
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from stviz.errors import StvizError, warn
from stviz.explain.explanation import Explanation
from stviz.render.colors import DEFAULT_ALPHA, DEFAULT_CMAP, GT_RGB, ColorScale, check_alpha

FONT = cv2.FONT_HERSHEY_SIMPLEX
PANEL_GAP = 2  # dark pixels between side-by-side panels
BACKGROUND = (24, 24, 24)
WHITE = (255, 255, 255)
TICK = (150, 150, 150)

Boxes = dict[int, np.ndarray]


def strip_height(frame_height: int) -> int:
    """Height of the timeline strip under a frame (even, so even frames stay even)."""
    return max(24, 2 * round(0.1 * frame_height))


def font_scale(frame_height: int) -> float:
    """Hershey font scale that stays legible from 64 px to 1080 px frames."""
    return float(np.clip(frame_height / 480.0, 0.35, 1.5))


def title_height(frame_height: int) -> int:
    """Height of the title bar a compare panel gets above its frame (even)."""
    (_, th), base = cv2.getTextSize("Mg", FONT, font_scale(frame_height), 1)
    return 2 * ((th + base + 6 + 1) // 2)


def draw_label(img: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    """White text on a black box whose top-left corner is `org`, legible over any map."""
    thickness = 1 if scale < 0.8 else 2
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
    x, y = org
    cv2.rectangle(img, (x, y), (x + tw + 4, y + th + base + 4), (0, 0, 0), cv2.FILLED)
    cv2.putText(img, text, (x + 2, y + th + 2), FONT, scale, WHITE, thickness, cv2.LINE_AA)


def draw_boxes(img: np.ndarray, boxes: np.ndarray | None) -> None:
    """Ground-truth boxes, (4,) or (M, 4) as x1, y1, x2, y2 in frame pixels."""
    if boxes is None:
        return
    thickness = max(1, round(img.shape[0] / 160))
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=float).reshape(-1, 4):
        cv2.rectangle(img, (round(x1), round(y1)), (round(x2), round(y2)), GT_RGB, thickness)


def video_length(expl: Explanation) -> int:
    """Frames in the explained video (the recorded count, or what the samples imply)."""
    return max(int(expl.video_frames), int(expl.frame_indices[-1]) + 1)


class OverlayPainter:
    """Draws one explanation's panel for any frame of its video, into one reused buffer."""

    def __init__(self, expl: Explanation, frame_size: tuple[int, int], *,
                 cmap: str = DEFAULT_CMAP, alpha: float = DEFAULT_ALPHA,
                 boxes: Boxes | None = None, title: str | None = None) -> None:
        w, h = frame_size
        self.expl = expl
        self.alpha = check_alpha(alpha)
        self.boxes = boxes or {}
        # boxes are in the video's pixels; frames may be drawn at another size
        self.box_scale = np.array([w / expl.width if expl.width else 1.0,
                                   h / expl.height if expl.height else 1.0] * 2)
        self.scale = ColorScale(*expl.value_range(), cmap=cmap)
        self.region = expl.region((w, h))
        self.font = font_scale(h)
        self.label = f"{expl.predicted_class} {expl.probabilities[expl.predicted]:.0%}"
        self.top = title_height(h) if title is not None else 0
        self.frame_rows = slice(self.top, self.top + h)
        self.strip_top = self.top + h
        self.buffer = np.full((self.strip_top + strip_height(h), w, 3), BACKGROUND, np.uint8)
        if title is not None:
            (tw, th), _ = cv2.getTextSize(title, FONT, self.font, 1)
            cv2.putText(self.buffer, title, ((w - tw) // 2, (self.top + th) // 2), FONT,
                        self.font, WHITE, 1, cv2.LINE_AA)
        self.strip = np.full((strip_height(h), w, 3), BACKGROUND, np.uint8)
        self.cursor_x = self._draw_timeline(self._draw_colorbar())

    def _draw_colorbar(self) -> int:
        """The clip's colour bar with its (lo, hi) at the strip's right end; returns its left x."""
        s, w = self.strip.shape[:2]
        pad = max(2, s // 10)
        lo_text, hi_text = (f"{v:.2g}" for v in (self.scale.lo, self.scale.hi))
        text_scale = max(0.3, s / 120.0)
        text_w = max(cv2.getTextSize(t, FONT, text_scale, 1)[0][0] for t in (lo_text, hi_text))
        text_h = cv2.getTextSize(hi_text, FONT, text_scale, 1)[0][1]
        bar_w = max(4, s // 6)
        bar_x = w - pad - bar_w
        if bar_x - 2 - text_w < w // 3:  # a tiny frame: the timeline gets the whole strip
            return w
        self.strip[pad:s - pad, bar_x:bar_x + bar_w] = self.scale.colorbar(bar_w, s - 2 * pad)
        text_x = bar_x - 2 - text_w
        for text, y in ((hi_text, pad + text_h), (lo_text, s - pad)):
            cv2.putText(self.strip, text, (text_x, y), FONT, text_scale, WHITE, 1, cv2.LINE_AA)
        return text_x

    def _draw_timeline(self, right: int) -> np.ndarray:
        """Temporal relevance of the whole video left of x = `right`, one coloured bar per
        column (scaled from 0, or from the minimum if negative), ticks at the sampled
        frames; returns the cursor column of every video frame."""
        s = len(self.strip)
        pad = max(2, s // 10)
        tick = max(2, s // 12)
        w = self.strip.shape[1]
        x0 = min(pad, w - 1)
        x1 = max(x0 + 1, min(w, right - 2 * pad))
        top, bottom = pad, s - pad - tick - 1
        n = video_length(self.expl)
        rel = np.interp(np.linspace(0, n - 1, x1 - x0), self.expl.frame_indices,
                        self.expl.temporal)
        tscale = ColorScale(min(0.0, float(self.expl.temporal.min())),
                            float(self.expl.temporal.max()), cmap=self.scale.cmap)
        levels = tscale.levels(rel)
        bar_tops = bottom - np.maximum(1, np.round(levels * (bottom - top)))
        area = self.strip[top:bottom, x0:x1]
        filled = np.arange(top, bottom)[:, None] >= bar_tops[None, :]
        area[filled] = np.broadcast_to(tscale.colors(levels)[None], area.shape)[filled]

        cursor_x = np.round(x0 + np.arange(n) * (x1 - x0 - 1) / max(n - 1, 1)).astype(int)
        self.strip[s - pad - tick:s - pad, cursor_x[self.expl.frame_indices]] = TICK
        return cursor_x

    def paint(self, index: int, frame: np.ndarray) -> np.ndarray:
        """The panel for video frame `index`; valid until the next call."""
        buf = self.buffer
        self.scale.overlay(frame, self.expl.map_at(index), self.alpha, out=buf[self.frame_rows],
                           region=self.region)
        boxes = self.boxes.get(index)
        draw_boxes(buf[self.frame_rows], None if boxes is None else
                   np.asarray(boxes, float).reshape(-1, 4) * self.box_scale)
        draw_label(buf, self.label, (2, self.top + 2), self.font)
        buf[self.strip_top:] = self.strip
        x = int(self.cursor_x[min(max(index, 0), len(self.cursor_x) - 1)])
        cv2.line(buf, (x, self.strip_top), (x, len(buf) - 1), WHITE, 1)
        return buf


def render_panels(expls: list[Explanation], frames: Iterable[tuple[int, np.ndarray]],
                  out: str | Path, *, cmap: str = DEFAULT_CMAP, alpha: float = DEFAULT_ALPHA,
                  boxes: Boxes | None = None, titled: bool = False,
                  overwrite: bool = False) -> Path:
    """One video of the explanations' panels side by side (PANEL_GAP px apart), at the
    first one's fps, at the frames' size (which may be smaller than the video's);
    `titled` puts each method's name above its panel. Encoded with what the machine
    has (`VideoWriter(reproducible=False)`)."""
    from stviz.video import VideoWriter

    fps = float(expls[0].fps)
    if fps <= 0:
        warn(f"{expls[0].video}: explanation records no frame rate; writing {out} at 25 fps")
        fps = 25.0
    stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise StvizError(f"{out}: no frames to render; is the video empty?")
    h, w = first[1].shape[:2]
    painters = [OverlayPainter(e, (w, h), cmap=cmap, alpha=alpha, boxes=boxes,
                               title=e.method if titled else None) for e in expls]
    canvas = np.zeros((len(painters[0].buffer), len(expls) * (w + PANEL_GAP) - PANEL_GAP, 3),
                      np.uint8)
    with VideoWriter(out, fps, overwrite=overwrite, reproducible=False) as writer:
        for index, frame in itertools.chain([first], stream):
            for i, painter in enumerate(painters):
                x = i * (w + PANEL_GAP)
                canvas[:, x:x + w] = painter.paint(index, frame)
            writer.append(canvas)
    return Path(out)


def render_overlay(expl: Explanation, frames: Iterable[tuple[int, np.ndarray]],
                   out: str | Path, *, cmap: str = DEFAULT_CMAP, alpha: float = DEFAULT_ALPHA,
                   boxes: Boxes | None = None, overwrite: bool = False) -> Path:
    """The heatmap over every (index, RGB frame) of the video, at the video's fps.

    Frames between sampled ones get interpolated maps (`Explanation.map_at`); all
    share the clip's one colour scale. `.mp4` or `.gif` by the suffix of `out`.
    `boxes` maps a frame index to its ground-truth boxes (x1, y1, x2, y2).
    """
    return render_panels([expl], frames, out, cmap=cmap, alpha=alpha, boxes=boxes,
                         overwrite=overwrite)
