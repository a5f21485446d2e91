"""`Explanation`: the one result type every method returns and every renderer
and metric consumes. Maps stay at feature resolution; frame-size maps are made
on demand, so a long video never holds full-size maps for all its frames."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stviz.errors import StvizError
from stviz.files import atomic_path, write_json

SUMMARY_FILE = "explanation.json"
ARRAYS_FILE = "explanation.npz"


@dataclass
class Explanation:
    """Where (`spatial`) and when (`temporal`) a model looked in one video.

    `spatial[i]` and `temporal[i]` belong to video frame `frame_indices[i]`.
    Both are relevance on one scale per clip (never normalized per frame).
    The maps cover `crop` = [x0, y0, x1, y1] (x1, y1 exclusive) of the frame, in video
    pixels, where the model saw only a centre crop; None: the whole frame. Outside the
    crop relevance is zero: the model never saw those pixels.
    """

    video: str
    frame_indices: np.ndarray  # (T,) int64, sorted video frame indices
    timestamps: np.ndarray  # (T,) float64 seconds
    spatial: np.ndarray  # (T, h, w) float32 relevance at feature resolution
    temporal: np.ndarray  # (T,) float32 relevance per sampled frame
    classes: list[str]
    probabilities: np.ndarray  # (K,) float32 softmax of the model's logits
    predicted: int
    target: int
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    video_frames: int = 0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    # How maps for frames that were not sampled are made: "linear" interpolation
    # between the nearest sampled frames, or "dense" when every frame has its own.
    fill: str = "linear"
    crop: list[int] | None = None

    def __post_init__(self) -> None:
        self.frame_indices = np.asarray(self.frame_indices, dtype=np.int64)
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
        self.spatial = np.asarray(self.spatial, dtype=np.float32)
        self.temporal = np.asarray(self.temporal, dtype=np.float32)
        self.probabilities = np.asarray(self.probabilities, dtype=np.float32)
        n = len(self.frame_indices)
        if self.spatial.ndim != 3 or len(self.spatial) != n or len(self.temporal) != n:
            raise ValueError(
                f"inconsistent explanation: {n} frames, spatial {self.spatial.shape}, "
                f"temporal {self.temporal.shape}"
            )
        if self.crop is not None:
            self.crop = _checked_crop(self.crop, self.width, self.height)

    @property
    def predicted_class(self) -> str:
        return self.classes[self.predicted]

    @property
    def target_class(self) -> str:
        return self.classes[self.target]

    def value_range(self) -> tuple[float, float]:
        """The clip's one colour scale: (min, max) over all spatial maps."""
        lo, hi = float(self.spatial.min()), float(self.spatial.max())
        return lo, (hi if hi > lo else lo + 1e-12)

    def map_at(self, frame: int) -> np.ndarray:
        """The (h, w) map of any video frame, interpolated between sampled frames."""
        idx = self.frame_indices
        pos = int(np.searchsorted(idx, frame))
        if pos < len(idx) and idx[pos] == frame:
            return self.spatial[pos]
        if pos == 0:
            return self.spatial[0]
        if pos >= len(idx):
            return self.spatial[-1]
        a, b = idx[pos - 1], idx[pos]
        w = (frame - a) / float(b - a)
        return (1.0 - w) * self.spatial[pos - 1] + w * self.spatial[pos]

    def relevance_at(self, frame: int) -> float:
        """Temporal relevance of any video frame, interpolated like `map_at`."""
        return float(np.interp(frame, self.frame_indices, self.temporal))

    def region(self, size: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
        """Where the maps lie on the frame drawn at `size` = (width, height) (the video's
        size by default): (x0, y0, x1, y1), x1 and y1 exclusive; the crop scaled like the
        frame, or the whole frame. Rounds half up, as the HTML page's script does."""
        w, h = (int(v) for v in (size or (self.width, self.height)))
        if self.crop is None:
            return 0, 0, w, h
        sx = w / self.width if self.width else 1.0
        sy = h / self.height if self.height else 1.0
        x0, y0, x1, y1 = (math.floor(v * s + 0.5) for v, s in zip(self.crop, (sx, sy) * 2))
        x0, y0 = min(x0, w - 1), min(y0, h - 1)  # at least one pixel, however small the frame
        return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)

    def upsampled(self, frame: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """The map of `frame` on a frame of `size` = (width, height), the video's size by
        default: resized into `region(size)`, zero outside it."""
        w, h = (int(v) for v in (size or (self.width, self.height)))
        x0, y0, x1, y1 = self.region((w, h))
        inside = cv2.resize(self.map_at(frame), (x1 - x0, y1 - y0),
                            interpolation=cv2.INTER_LINEAR)
        if inside.shape == (h, w):
            return inside
        out = np.zeros((h, w), inside.dtype)
        out[y0:y1, x0:x1] = inside
        return out

    def top_frames(self, k: int) -> np.ndarray:
        """Positions (into `frame_indices`) of the k most relevant sampled frames, best first."""
        order = np.argsort(-self.temporal, kind="stable")
        return order[: min(k, len(order))]

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary; arrays go to the .npz file."""
        d = {k: v for k, v in asdict(self).items() if not isinstance(v, np.ndarray)}
        d["predicted_class"] = self.predicted_class
        d["target_class"] = self.target_class
        d["probabilities"] = {c: round(float(p), 6)
                              for c, p in zip(self.classes, self.probabilities)}
        d["n_sampled"] = len(self.frame_indices)
        d["map_size"] = list(self.spatial.shape[1:])
        d["peak_frames"] = [int(self.frame_indices[i]) for i in self.top_frames(5)]
        return d

    def save(self, out_dir: str | Path, overwrite: bool = True) -> list[Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        npz = out_dir / ARRAYS_FILE
        with atomic_path(npz, overwrite) as tmp:
            np.savez_compressed(tmp, frame_indices=self.frame_indices, timestamps=self.timestamps,
                                spatial=self.spatial, temporal=self.temporal,
                                probabilities=self.probabilities)
        js = write_json(out_dir / SUMMARY_FILE, self.summary(), overwrite)
        return [js, npz]

    @classmethod
    def load(cls, out_dir: str | Path) -> Explanation:
        out_dir = Path(out_dir)
        try:
            meta = json.loads((out_dir / SUMMARY_FILE).read_text())
            arrays = np.load(out_dir / ARRAYS_FILE)
        except (OSError, ValueError) as exc:
            raise StvizError(f"{out_dir}: not a saved explanation ({exc}); "
                             "run `stviz explain`") from exc
        keep = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in meta.items() if k in keep and k not in arrays.files}
        kwargs.update({k: arrays[k] for k in arrays.files})
        return cls(**kwargs)


def _checked_crop(crop: Any, width: int, height: int) -> list[int]:
    """`crop` as [x0, y0, x1, y1] ints, a non-empty rectangle inside a width x height frame
    (when the size is known); ValueError otherwise."""
    values = list(crop) if isinstance(crop, (list, tuple, np.ndarray)) else [crop]
    if len(values) != 4 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                   for v in values):
        raise ValueError(f"crop {crop!r}: want 4 integers x0, y0, x1, y1 in frame pixels")
    x0, y0, x1, y1 = (int(v) for v in values)
    if not (0 <= x0 < x1 and 0 <= y0 < y1) or (width and x1 > width) or (height and y1 > height):
        raise ValueError(f"crop {[x0, y0, x1, y1]}: not a rectangle inside the "
                         f"{width}x{height} frame (want 0 <= x0 < x1 <= width, "
                         "0 <= y0 < y1 <= height)")
    return [x0, y0, x1, y1]
