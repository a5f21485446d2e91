"""Synthetic action clips with exact spatial and temporal ground truth.

Every clip shows one *actor* (a crisp-edged, high-contrast textured shape) among
1-4 *distractors* (soft-edged, smooth, untextured blobs that wander the whole
time) over a smooth-noise background. The class is defined only by how the actor
moves during the action window `segment = [start, end)`; before and after it the
actor rests (up to ±1 px jitter). A single frame therefore says *where* the actor
is, and only the motion says *what* it does, which is exactly what a spatial mask
plus temporal attention must find.

Ground truth, per clip:

- `segment`: frames `[start, end)` during which the actor moves; 30-60% of the clip,
  start >= 1. The actor is displaced between frame t-1 and t exactly when
  start <= t < end, so frame 0 shows the rest pose and frame T-1 the final one.
- `boxes`: per frame, the tight box `[x1, y1, x2, y2]` of the actor's rendered mask
  in pixels, x2/y2 exclusive (so width = x2 - x1), the full extent even where the
  actor is occluded. Boxes always lie inside the frame.

Class parameters (S = frame side, areas are box areas as a share of S*S):

- translations (`move_*`): path length 35-50% of S over the window, at constant
  speed; diagonals travel the same path length (1/√2 of it along each axis), so
  speed never gives the class away. Actor area 8-20%, aspect 0.8-1.25.
- `grow` / `shrink`: linear size changes by a factor 1.8-2.2 about a fixed centre
  (geometric interpolation); the small end has area 6-9% and the large end 19-36%
  (grow starts small, shrink starts large).

Size, placement and speed distributions are identical for every translation
class, and the actor's look (shape, colours, texture), the segment, the scene and
the noise are drawn from streams that do not depend on the label: rendering the
same seed with another label changes the actor's motion and nothing else.

Distractors wander at 1-3.5% of S per frame, about as fast as the actor moves
(2-5% at 32 frames), so neither motion nor speed singles the actor out: its kind does.

Sensor noise is Gaussian, a fixed pattern per clip (a sensor's per-pixel offsets)
plus noise that changes every frame; the latter is what costs H.264 bits and
encoding time, so it is kept moderate.

Difficulty: `easy` has one distractor and no sensor noise; `standard` has 1-4
distractors and sensor noise (sigma 2.5 fixed + 1.5 per frame, in grey levels);
`hard` raises the noise to 3 + 3, adds a camera pan (the whole scene, actor
included, drifts 10% of S over the clip, so there the resting actor drifts too) and
a foreground pole that sweeps across the frame once, hiding up to ~40% of the
actor's width in roughly 40% of the frames.
"""

from __future__ import annotations

import colorsys
import math
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stviz.errors import StvizError
from stviz.files import check_writable, write_json

MOTION_CLASSES: tuple[str, ...] = (
    "move_left", "move_right", "move_up", "move_down",
    "move_up_left", "move_up_right", "move_down_left", "move_down_right",
    "grow", "shrink",
)
ACTION_CLASSES: tuple[str, ...] = (
    "move_left", "move_right", "move_up", "move_down",
    "rotate", "pulse", "flash", "change_colour", "shake_horizontal", "shake_vertical",
)
CLASS_SETS: dict[str, tuple[str, ...]] = {"actions": ACTION_CLASSES, "motion": MOTION_CLASSES}
SPLITS: tuple[str, ...] = ("train", "test")

_TASK_CLIPS = 8  # clips per worker task: few enough to balance, enough to amortize IPC
_SHAPES = ("ellipse", "rectangle", "triangle", "diamond", "hexagon", "star", "cross")
_TEXTURES = ("stripes", "checker", "dots")


@dataclass(frozen=True)
class _Level:
    """What a difficulty adds to the scene."""

    distractors: tuple[int, int]  # inclusive range
    fixed_noise: float  # sigma of the per-clip fixed pattern, grey levels
    frame_noise: float  # sigma of the noise drawn anew for each frame
    pan: float  # camera travel over the clip, share of the frame side
    occluder: bool


_LEVELS = {
    "easy": _Level((1, 1), 0.0, 0.0, 0.0, False),
    "standard": _Level((1, 4), 2.5, 1.5, 0.0, False),
    "hard": _Level((1, 4), 3.0, 3.0, 0.10, True),
}


@dataclass(frozen=True)
class SynthConfig:
    """Clip geometry and difficulty, checked here since they usually come from the CLI."""

    frames: int = 32
    size: int = 128
    fps: int = 16
    difficulty: str = "standard"
    classes: str = "actions"  # a key of CLASS_SETS

    def __post_init__(self) -> None:
        if self.difficulty not in _LEVELS:
            raise StvizError(f"difficulty {self.difficulty!r} is unknown; "
                             f"choose one of {', '.join(_LEVELS)}")
        if self.classes not in CLASS_SETS:
            raise StvizError(f"class set {self.classes!r} is unknown; "
                             f"choose one of {', '.join(CLASS_SETS)}")
        if self.frames < 8 or self.size < 32 or self.fps < 1:
            raise StvizError(f"frames={self.frames}, size={self.size}, fps={self.fps}: synthetic "
                             "clips need frames >= 8, size >= 32 and fps >= 1")

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_SETS[self.classes]


@dataclass
class SynthClip:
    """One rendered clip and its ground truth (see the module docstring)."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    boxes: np.ndarray  # (T, 4) int64 x1, y1, x2, y2, x2/y2 exclusive
    segment: tuple[int, int]  # [start, end) frames
    label: int


@dataclass
class _Sprite:
    """An RGBA patch, its alpha kept with its complement for cv2.blendLinear."""

    rgb: np.ndarray  # (h, w, 3) uint8
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    box: tuple[int, int, int, int]  # tight box of alpha > 0 inside the patch
    keep: np.ndarray = field(init=False)  # 1 - alpha

    def __post_init__(self) -> None:
        self.keep = 1 - self.alpha


def _colour(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32) * 255


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# ---------------------------------------------------------------- the actor

def _polygon(shape: str) -> np.ndarray:
    """Vertices of a shape, normalized so that its bounding box is the unit square."""
    if shape == "rectangle":
        pts = [(0, 0), (1, 0), (1, 1), (0, 1)]
    elif shape == "triangle":
        pts = [(0.5, 0), (1, 1), (0, 1)]
    elif shape == "diamond":
        pts = [(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)]
    elif shape == "hexagon":
        pts = [(0.25, 0), (0.75, 0), (1, 0.5), (0.75, 1), (0.25, 1), (0, 0.5)]
    elif shape == "cross":
        a, b = 0.3, 0.7
        pts = [(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b), (0, b),
               (0, a), (a, a)]
    else:  # a fat five-pointed star
        ang = -np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.5)
        pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)
    pts = np.asarray(pts, np.float64)
    return (pts - pts.min(0)) / (pts.max(0) - pts.min(0))


@dataclass(frozen=True)
class _Look:
    """The actor's appearance, drawn independently of its class."""

    shape: str
    turns: int  # quarter turns of the shape
    texture: str
    period: float  # texture period, as a share of the sprite's mean side
    angle: float  # texture orientation, radians
    colours: tuple[np.ndarray, np.ndarray, np.ndarray]  # bright, dark, outline

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _Look:
        hue = rng.random()
        bright = _colour(hue, rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.0))
        dark = _colour(hue + rng.uniform(0.25, 0.75), rng.uniform(0.5, 1.0), rng.uniform(0.1, 0.35))
        outline = np.full(3, 15.0 if rng.random() < 0.5 else 240.0, np.float32)
        return cls(shape=str(rng.choice(_SHAPES)), turns=int(rng.integers(4)),
                   texture=str(rng.choice(_TEXTURES)), period=rng.uniform(0.2, 0.34),
                   angle=rng.uniform(0, np.pi), colours=(bright, dark, outline))

    def sprite(self, w: int, h: int) -> _Sprite:
        """Render at w x h pixels: a binary mask (crisp edges), texture, outline."""
        if self.shape == "ellipse":
            yy, xx = np.mgrid[0:h, 0:w]
            mask = ((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2 <= 1
        else:
            pts = _polygon(self.shape)
            for _ in range(self.turns):
                pts = np.stack([1 - pts[:, 1], pts[:, 0]], 1)
            pix = np.round(pts * [(w - 1) * 16, (h - 1) * 16]).astype(np.int32)
            canvas = np.zeros((h, w), np.uint8)
            cv2.fillPoly(canvas, [pix], 1, lineType=cv2.LINE_8, shift=4)
            mask = canvas.astype(bool)
        # Texture coordinates scale with the sprite, so a growing actor looks closer.
        ref = math.sqrt(w * h) * self.period
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        u, v = (xx - w / 2) / ref, (yy - h / 2) / ref
        a = u * math.cos(self.angle) + v * math.sin(self.angle)
        b = -u * math.sin(self.angle) + v * math.cos(self.angle)
        if self.texture == "stripes":
            dark = (a % 1.0) < 0.5
        elif self.texture == "checker":
            dark = (np.floor(a) + np.floor(b)) % 2 == 0
        else:
            dark = (a - np.round(a)) ** 2 + (b - np.round(b)) ** 2 < 0.09
        bright, dark_c, outline_c = self.colours
        rgb = np.where(dark[..., None], dark_c, bright)
        width = max(1, round(math.sqrt(w * h) / 24))
        inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=width)
        rgb[mask & ~inner.astype(bool)] = outline_c
        return _Sprite(rgb.astype(np.uint8), mask.astype(np.float32), _tight_box(mask))


def _direction(name: str) -> tuple[float, float]:
    """Unit displacement of a translation class, y pointing down."""
    dx = ("right" in name) - ("left" in name)
    dy = ("down" in name) - ("up" in name)
    norm = math.hypot(dx, dy)
    return dx / norm, dy / norm


def _plan_motion(rng: np.random.Generator, name: str, progress: np.ndarray, size: int,
                 margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame actor size (w, h) and top-left corner, before jitter and pan.

    The actor keeps at least `margin` pixels from every frame edge over the whole clip.
    """
    room = size - 2 * margin
    aspect = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
    if name in ("grow", "shrink"):
        factor = rng.uniform(1.8, 2.2)
        area = rng.uniform(0.06, min(0.09, 0.36 / factor**2))
        small = np.array([math.sqrt(area * aspect), math.sqrt(area / aspect)]) * size
        scale = factor ** (progress if name == "grow" else 1 - progress)
        wh = np.round(small[None] * scale[:, None]).astype(np.int64)
        big = wh.max(0)
        centre = margin + big / 2 + rng.random(2) * (room - big)
        return wh, np.round(centre - wh / 2).astype(np.int64)
    # Rejection sampling with the straight-move constraint for every translation
    # class, so sizes and speeds have the same distribution in all of them.
    while True:
        area = rng.uniform(0.08, 0.20)
        dist = rng.uniform(0.35, 0.50) * size
        wh = np.round(np.array([math.sqrt(area * aspect), math.sqrt(area / aspect)]) * size)
        if wh.max() + dist <= room:
            break
    shift = np.array(_direction(name)) * dist
    lo = margin - np.minimum(shift, 0)
    hi = size - margin - wh - np.maximum(shift, 0)
    start = lo + rng.random(2) * (hi - lo)
    corners = np.round(start[None] + progress[:, None] * shift[None]).astype(np.int64)
    return np.broadcast_to(wh.astype(np.int64), corners.shape), corners


@dataclass
class _Pose:
    """How a sprite is drawn on every frame: size before rotation, centre offset,
    rotation (degrees, counter-clockwise as OpenCV counts) and flash (blend to white)."""

    wh: np.ndarray  # (T, 2) float
    offset: np.ndarray  # (T, 2) float, pixels
    angle: np.ndarray  # (T,)
    flash: np.ndarray  # (T,) in [0, 1]
    hue: np.ndarray  # (T,) hue shift in turns

    @classmethod
    def still(cls, frames: int, wh: np.ndarray) -> _Pose:
        return cls(np.broadcast_to(wh, (frames, 2)).astype(float), np.zeros((frames, 2)),
                   np.zeros(frames), np.zeros(frames), np.zeros(frames))

    def extent(self) -> np.ndarray:
        """(T, 2) width and height of the rotated sprite's bounding box."""
        rad = np.deg2rad(self.angle)
        c, s = np.abs(np.cos(rad)), np.abs(np.sin(rad))
        w, h = self.wh[:, 0], self.wh[:, 1]
        return np.stack([w * c + h * s, w * s + h * c], 1)


IN_PLACE_ACTIONS = ("rotate", "pulse", "flash", "change_colour", "shake_horizontal",
                    "shake_vertical")


def _act(rng: np.random.Generator, name: str, progress: np.ndarray, wh: np.ndarray,
         size: int) -> _Pose:
    """The pose of an in-place action over `progress` (0 before the window, 1 after).

    Each action rests at both ends of its window: a rotation keeps its final angle and a
    colour change its new colour; pulse, flash and shakes come back to the rest pose, so
    only the window shows them. A rotation turns either way (90-150 degrees): which way
    is not a class, since frozen 7x7 ImageNet features barely tell the two apart.
    """
    pose = _Pose.still(len(progress), wh)
    envelope = np.sin(np.pi * progress)
    if name == "rotate":
        pose.angle = progress * rng.uniform(90, 150) * rng.choice((-1, 1))
    elif name == "change_colour":
        pose.hue = progress * rng.uniform(0.3, 0.7)
    elif name == "pulse":
        pose.wh = pose.wh * (1 + rng.uniform(0.6, 0.8) * envelope)[:, None]
    elif name == "flash":
        pose.flash = rng.uniform(0.7, 0.9) * envelope
    elif name in ("shake_horizontal", "shake_vertical"):
        # One and a half periods: slow enough to survive sampling every other frame.
        swing = rng.uniform(0.09, 0.13) * size * np.sin(3 * np.pi * progress)
        pose.offset[:, 0 if name == "shake_horizontal" else 1] = swing
    else:
        raise ValueError(f"{name!r} is not an in-place action")
    return pose


def _plan_in_place(rng: np.random.Generator, name: str, progress: np.ndarray, size: int,
                   margin: int) -> tuple[_Pose, np.ndarray]:
    """The actor's pose and its fixed centre, so that it stays `margin` px inside the frame."""
    aspect = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
    low, high = (0.05, 0.08) if name == "pulse" else (0.08, 0.16)
    while True:  # rejection sampling, so every class keeps the whole action in the frame
        area = rng.uniform(low, high)
        wh = np.array([math.sqrt(area * aspect), math.sqrt(area / aspect)]) * size
        pose = _act(rng, name, progress, wh, size)
        half = pose.extent() / 2
        lo = (margin + half - pose.offset).max(0)
        hi = (size - margin - half - pose.offset).min(0)
        if (lo <= hi).all():
            return pose, lo + rng.random(2) * (hi - lo)


def _transform(sprite: _Sprite, angle: float, flash: float, crisp: bool,
               hue: float = 0.0) -> _Sprite:
    """Rotate a sprite about its centre (into a patch that holds it whole), shift its hue
    by `hue` turns and flash it."""
    rgb, alpha = sprite.rgb, sprite.alpha
    if hue:
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
        hsv[..., 0] += np.uint8(round(hue * 256) % 256)  # wraps around: hue is circular
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    if angle:
        h, w = alpha.shape
        rad = math.radians(angle)
        c, s = abs(math.cos(rad)), abs(math.sin(rad))
        pw, ph = math.ceil(w * c + h * s) + 2, math.ceil(w * s + h * c) + 2
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        m[:, 2] += ((pw - w) / 2, (ph - h) / 2)
        interp = cv2.INTER_NEAREST if crisp else cv2.INTER_LINEAR
        rgb = cv2.warpAffine(rgb, m, (pw, ph), flags=interp)
        alpha = cv2.warpAffine(alpha, m, (pw, ph), flags=interp)
    if flash:
        rgb = (rgb + (255.0 - rgb) * flash).astype(np.uint8)
    if alpha is sprite.alpha and rgb is sprite.rgb:  # nothing to do
        return sprite
    return _Sprite(rgb, alpha, _tight_box(alpha > 0))


# ---------------------------------------------------------------- the scene

def _background(rng: np.random.Generator, side: int) -> np.ndarray:
    """Smooth multi-scale noise between two random, muted colours."""
    mix = np.zeros((side, side), np.float32)
    for cells, weight in ((3, 1.0), (8, 0.5), (20, 0.25)):
        grid = rng.random((cells, cells)).astype(np.float32)
        mix += weight * cv2.resize(grid, (side, side), interpolation=cv2.INTER_CUBIC)
    mix = (mix - mix.min()) / (mix.max() - mix.min())
    c1 = _colour(rng.random(), rng.uniform(0.05, 0.5), rng.uniform(0.25, 0.85))
    c2 = _colour(rng.random(), rng.uniform(0.05, 0.5), rng.uniform(0.25, 0.85))
    return (c1 + (c2 - c1) * mix[..., None]).astype(np.uint8)


def _blob(rng: np.random.Generator, size: int) -> _Sprite:
    """A distractor: soft-edged, smooth shaded ellipse of one colour, no texture."""
    area = rng.uniform(0.05, 0.15) * size * size
    aspect = math.exp(rng.uniform(math.log(0.6), math.log(1.67)))
    rx, ry = math.sqrt(area * aspect / math.pi), math.sqrt(area / aspect / math.pi)
    w, h = 2 * math.ceil(rx), 2 * math.ceil(ry)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = (xx + 0.5 - w / 2) / rx, (yy + 0.5 - h / 2) / ry
    rho = np.sqrt(dx**2 + dy**2)
    edge = np.clip((rho - 0.3) / 0.7, 0, 1)
    alpha = rng.uniform(0.8, 1.0) * (1 - edge * edge * (3 - 2 * edge))  # smoothstep falloff
    tilt = rng.uniform(0, 2 * np.pi)
    shade = 1 + 0.15 * (dx * math.cos(tilt) + dy * math.sin(tilt))
    colour = _colour(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.3, 1.0))
    rgb = np.clip(colour * shade[..., None], 0, 255).astype(np.uint8)
    return _Sprite(rgb, alpha.astype(np.float32), _tight_box(alpha > 0))


def _action_window(rng: np.random.Generator, frames: int) -> tuple[int, int, np.ndarray]:
    """An action window [start, start + length), 30-60% of the clip with start >= 1 (frame
    0 shows the rest pose), and the action's progress per frame: 0 before, 1 after."""
    length = int(rng.integers(math.ceil(0.3 * frames), math.floor(0.6 * frames) + 1))
    start = int(rng.integers(1, frames - length + 1))
    return start, length, np.clip((np.arange(frames) - start + 1) / length, 0.0, 1.0)


def _distractor_act(rng: np.random.Generator, blob: _Sprite, frames: int,
                    size: int) -> _Pose | None:
    """Three distractors in four perform one in-place action, at a time of their own,
    so that attending to everything gives conflicting evidence."""
    if rng.random() >= 0.75:
        return None
    name = str(rng.choice(IN_PLACE_ACTIONS))
    _, _, progress = _action_window(rng, frames)
    h, w = blob.alpha.shape
    return _act(rng, name, progress, np.array([w, h], float), size)


def _posed_blob(blob: _Sprite, pose: _Pose, t: int) -> _Sprite:
    """A distractor as its action shows it on frame t (smooth resampling: blobs are soft)."""
    w, h = (max(1, round(v)) for v in pose.wh[t])
    if (h, w) != blob.alpha.shape:
        blob = _Sprite(cv2.resize(blob.rgb, (w, h), interpolation=cv2.INTER_LINEAR),
                       cv2.resize(blob.alpha, (w, h), interpolation=cv2.INTER_LINEAR),
                       (0, 0, w, h))
    return _transform(blob, float(pose.angle[t]), float(pose.flash[t]), crisp=False,
                      hue=float(pose.hue[t]))


def _random_walks(rng: np.random.Generator, n: int, frames: int, size: int) -> np.ndarray:
    """(T, n, 2) centres: smooth random walks that keep moving and bounce off the edges."""
    vmax = 0.035 * size
    vel = rng.normal(0, 0.3 * vmax, (frames, n, 2))
    heading = rng.uniform(0, 2 * np.pi, n)
    vel[0] = np.stack([np.cos(heading), np.sin(heading)], 1) * rng.uniform(0.5, 1.0, (n, 1)) * vmax
    for t in range(1, frames):  # momentum: each step keeps most of the last one
        vel[t] += 0.8 * vel[t - 1]
    speed = np.hypot(vel[..., 0], vel[..., 1])[..., None]
    vel *= np.clip(speed, 0.3 * vmax, vmax) / np.maximum(speed, 1e-6)
    free = rng.uniform(0.1, 0.9, (n, 2)) * size + np.cumsum(vel, 0) - vel[0]
    return size - np.abs(free % (2 * size) - size)  # fold the free path back at every edge


def _blend(frame: np.ndarray, sprite: _Sprite, x: int, y: int) -> None:
    """Composite `sprite` with its top-left corner at (x, y), clipped to the frame."""
    h, w = sprite.alpha.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, frame.shape[1]), min(y + h, frame.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    roi = frame[y0:y1, x0:x1]
    sy, sx = slice(y0 - y, y1 - y), slice(x0 - x, x1 - x)
    cv2.blendLinear(roi, sprite.rgb[sy, sx], sprite.keep[sy, sx], sprite.alpha[sy, sx], dst=roi)


@dataclass
class _Occluder:
    """A foreground pole, spanning the frame, that sweeps across it once per clip."""

    vertical: bool
    positions: np.ndarray  # (T,) leading edge, pixels
    profile: np.ndarray  # (thickness, 3) uint8 colours across the pole

    @classmethod
    def draw(cls, rng: np.random.Generator, frames: int, size: int) -> _Occluder:
        thick = max(2, round(rng.uniform(0.06, 0.10) * size))
        path = np.linspace(-thick, size, frames)
        if rng.random() < 0.5:
            path = path[::-1]
        colour = _colour(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.2, 0.8))
        shade = 0.7 + 0.3 * np.sin(np.pi * (np.arange(thick) + 0.5) / thick)  # a round pole
        return cls(bool(rng.random() < 0.5), np.round(path).astype(np.int64),
                   (colour * shade[:, None]).astype(np.uint8))

    def draw_on(self, frame: np.ndarray, t: int, shift: int) -> None:
        """Paint the pole on frame t, moved `shift` pixels by the camera."""
        lo = int(self.positions[t]) + shift
        a, b = max(lo, 0), min(lo + len(self.profile), frame.shape[1])
        if a < b:
            band = self.profile[a - lo:b - lo]
            if self.vertical:
                frame[:, a:b] = band[None]
            else:
                frame[a:b, :] = band[:, None]


@dataclass
class _Scene:
    """Everything but the actor: background, distractors, camera pan, occluder, noise."""

    canvas: np.ndarray  # background, `pad` pixels larger than the frame on every side
    pad: int  # the largest camera offset
    pan: np.ndarray  # (T, 2) camera offset (x, y) per frame, pixels
    blobs: list[_Sprite]
    walks: np.ndarray  # (T, n, 2) distractor centres
    occluder: _Occluder | None
    fixed: np.ndarray  # (H, W, 3) int16 fixed-pattern sensor noise
    planes: np.ndarray  # (2, H + 8, W + 8, 3) int16 per-frame sensor noise
    picks: np.ndarray  # (T, 3) noise plane and crop offset per frame
    acts: list[_Pose | None] = field(default_factory=list)  # per blob: its action, if any

    @classmethod
    def draw(cls, rng: np.random.Generator, level: _Level, frames: int, size: int,
             acting: bool = False) -> _Scene:
        pad = math.ceil(level.pan * size / 2)
        canvas = _background(rng, size + 2 * pad)
        heading = rng.uniform(0, 2 * np.pi)
        ramp = np.linspace(-1.0, 1.0, frames)[:, None]
        pan = np.round(ramp * pad * np.array([math.cos(heading), math.sin(heading)]))
        count = int(rng.integers(level.distractors[0], level.distractors[1] + 1))
        blobs = [_blob(rng, size) for _ in range(count)]
        walks = _random_walks(rng, count, frames, size)
        occluder = _Occluder.draw(rng, frames, size) if level.occluder else None
        fixed = rng.standard_normal((size, size, 3), np.float32) * level.fixed_noise
        # Two planes of per-frame noise, re-cropped at a random offset for every frame:
        # as good as fresh noise at this scale, and far cheaper to draw.
        planes = rng.standard_normal((2, size + 8, size + 8, 3), np.float32) * level.frame_noise
        picks = rng.integers(0, (2, 9, 9), (frames, 3))
        acts = [_distractor_act(rng, blob, frames, size) for blob in blobs] if acting else []
        return cls(canvas, pad, pan.astype(np.int64), blobs, walks, occluder,
                   np.rint(fixed).astype(np.int16), np.rint(planes).astype(np.int16), picks,
                   acts)

    def behind(self, frame: np.ndarray, t: int) -> None:
        """Paint the background and the distractors of frame t."""
        size = frame.shape[0]
        px, py = (int(v) for v in self.pan[t])
        top, left = self.pad - py, self.pad - px
        frame[:] = self.canvas[top:top + size, left:left + size]
        for i, (blob, (cx, cy)) in enumerate(zip(self.blobs, self.walks[t])):
            act = self.acts[i] if self.acts else None
            if act is not None:
                blob = _posed_blob(blob, act, t)
                cx, cy = cx + act.offset[t, 0], cy + act.offset[t, 1]
            h, w = blob.alpha.shape
            _blend(frame, blob, round(cx - w / 2) + px, round(cy - h / 2) + py)

    def in_front(self, frame: np.ndarray, t: int) -> None:
        """Paint the occluder and add sensor noise to frame t."""
        if self.occluder is not None:
            self.occluder.draw_on(frame, t, int(self.pan[t, 0 if self.occluder.vertical else 1]))
        k, oy, ox = self.picks[t]
        noise = self.fixed + self.planes[k, oy:oy + frame.shape[0], ox:ox + frame.shape[1]]
        cv2.add(frame, noise, dst=frame, dtype=cv2.CV_8U)


def render_clip(seed: np.random.SeedSequence | np.random.Generator | int, label: int,
                cfg: SynthConfig) -> SynthClip:
    """Render one clip of class `cfg.class_names[label]`; the same seed always gives the
    same clip."""
    names = cfg.class_names
    if not 0 <= label < len(names):
        raise ValueError(f"label {label} is outside 0..{len(names) - 1}")
    n_t, size = cfg.frames, cfg.size
    # Separate streams, so that the label changes the actor's motion and nothing else.
    scene_rng, actor_rng, motion_rng = (
        np.random.default_rng(s) for s in np.random.default_rng(seed).integers(0, 2**63, 3))
    scene = _Scene.draw(scene_rng, _LEVELS[cfg.difficulty], n_t, size,
                        acting=cfg.classes != "motion")

    start, length, progress = _action_window(actor_rng, n_t)
    look = _Look.draw(actor_rng)
    jitter = actor_rng.integers(-1, 2, (n_t, 2))
    margin = 2 + scene.pad  # one pixel for jitter, one for rounding, then the pan
    name = names[label]
    if name in IN_PLACE_ACTIONS:
        pose, centre = _plan_in_place(motion_rng, name, progress, size, margin)
    else:
        wh, corners = _plan_motion(motion_rng, name, progress, size, margin)
        pose, centre = _Pose.still(n_t, wh), np.zeros(2)
        pose.offset = corners + wh / 2

    sprites: dict[tuple[int, int, float, float, float], _Sprite] = {}
    frames = np.empty((n_t, size, size, 3), np.uint8)
    boxes = np.empty((n_t, 4), np.int64)
    for t in range(n_t):
        w, h = (round(float(v)) for v in pose.wh[t])
        key = (w, h, round(float(pose.angle[t]), 1), round(float(pose.flash[t]), 2),
               round(float(pose.hue[t]), 3))
        if key not in sprites:
            sprites[key] = _transform(look.sprite(w, h), key[2], key[3], crisp=True,
                                      hue=key[4])
        sprite = sprites[key]
        ph, pw = sprite.alpha.shape
        cx, cy = centre + pose.offset[t]
        x = round(float(cx) - pw / 2) + int(jitter[t, 0] + scene.pan[t, 0])
        y = round(float(cy) - ph / 2) + int(jitter[t, 1] + scene.pan[t, 1])
        scene.behind(frames[t], t)
        _blend(frames[t], sprite, x, y)
        scene.in_front(frames[t], t)
        boxes[t] = np.add(sprite.box, (x, y, x, y))
    return SynthClip(frames, boxes, (start, start + length), label)


# ---------------------------------------------------------------- the data set

def clip_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The seed of one clip: train and test streams never overlap, and a clip does
    not depend on how many clips were generated before it."""
    return np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index, 0))


def clip_label(seed: int, split: str, index: int, classes: int = len(ACTION_CLASSES)) -> int:
    """Labels cycle through the `classes` classes in blocks, each block shuffled:
    balanced for any count, and a prefix of a larger set is the smaller set."""
    block, pos = divmod(index, classes)
    key = (SPLITS.index(split), block, 1)
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
    return int(order.permutation(classes)[pos])


def _make_videos(out: Path, seed: int, cfg: SynthConfig,
                 jobs: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Render and encode a few clips (one worker task); return their annotation records."""
    from stviz.video import write_video

    records = []
    for split, index in jobs:
        label = clip_label(seed, split, index, len(cfg.class_names))
        clip = render_clip(clip_seed(seed, split, index), label, cfg)
        vid = f"{split}_{index:05d}"
        rel = f"videos/{vid}.mp4"
        # An OUT without annotations.json is an interrupted run: its videos may be replaced.
        write_video(out / rel, clip.frames, cfg.fps, overwrite=True)
        records.append({"id": vid, "path": rel, "split": split, "label": label,
                        "class": cfg.class_names[label], "frames": cfg.frames, "fps": cfg.fps,
                        "width": cfg.size, "height": cfg.size, "segment": list(clip.segment),
                        "boxes": clip.boxes.tolist()})
    return records


def _quiet_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already; threads would only contend


def generate(out: Path, n_train: int, n_test: int, seed: int, cfg: SynthConfig = SynthConfig(),
             workers: int | None = None, overwrite: bool = False,
             progress: Callable[[int, int], None] | None = None) -> Path:
    """Write clips to `out/videos/<split>_<index>.mp4` and their ground truth to
    `out/annotations.json`; return the annotations path.

    The bytes depend only on (seed, counts, cfg), never on `workers`, and the first
    n clips of a split are the same whatever the count. annotations.json is written
    last, so its presence means "complete"; `overwrite` replaces it (videos left over
    from a larger earlier run stay, unlisted). Workers are spawned processes, so a
    script that calls this with workers > 1 needs the `if __name__ == "__main__":` guard.
    """
    out = Path(out)
    annotations = check_writable(out / "annotations.json", overwrite)
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise StvizError(f"{out}: asked for {n_train} train and {n_test} test clips; "
                         "ask for at least one clip and no negative counts")
    if seed < 0:
        raise StvizError(f"seed {seed} is negative; use a seed >= 0")
    jobs = [("train", i) for i in range(n_train)] + [("test", i) for i in range(n_test)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    step = min(_TASK_CLIPS, math.ceil(len(jobs) / workers))
    tasks = [jobs[i:i + step] for i in range(0, len(jobs), step)]
    work = partial(_make_videos, out, seed, cfg)
    records: list[dict[str, Any]] = []
    pool = None
    try:
        if workers == 1:
            results = map(work, tasks)
        else:
            # spawn: safe whatever threads the caller runs (torch, OpenCV); a dead worker
            # raises BrokenProcessPool rather than hanging like multiprocessing.Pool.
            pool = ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"),
                                       initializer=_quiet_worker)
            results = pool.map(work, tasks)
        for chunk in results:
            records.extend(chunk)
            if progress is not None:
                progress(len(records), len(jobs))
    except BrokenProcessPool as exc:
        raise RuntimeError("a synth worker process died: out of memory, or a script called "
                           "generate(workers > 1) outside `if __name__ == '__main__':`") from exc
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return write_json(annotations, {
        "format": "stviz-synth", "version": 1, "class_set": cfg.classes,
        "classes": list(cfg.class_names), "seed": seed, "difficulty": cfg.difficulty,
        "frames": cfg.frames, "size": cfg.size, "fps": cfg.fps, "videos": records}, overwrite=True)
