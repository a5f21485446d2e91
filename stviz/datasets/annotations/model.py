"""The one in-memory form every annotation format is read into.

Conventions, whatever the source:

- Boxes are `x1, y1, x2, y2` with x2/y2 exclusive (width = x2 - x1), the convention of
  `stviz synth`; a box covers the pixels `x1 <= x < x2`, `y1 <= y < y2`.
- `boxes` maps a time to a (K, 4) float64 array (several actors per frame allowed);
  `box_labels`, when not empty, maps the same times to (K,) class indices. When it is
  empty every box belongs to the video's `label`.
- `segments` are `[start, end)` intervals; `segment_labels` gives each one's class.
- `time_unit` says whether times (box keys and segments) are 0-based frame indices
  (`"frames"`) or seconds (`"seconds"`: THUMOS, ActivityNet, AVA); `box_unit` whether
  boxes are in pixels or normalized to 0-1 (`"normalized"`: AVA). `resolved()` turns
  both into frames and pixels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stviz.errors import StvizError, warn


@dataclass
class VideoAnnotation:
    """Ground truth of one video (see the module doc for units)."""

    id: str
    label: int | None = None
    label_name: str | None = None
    frames: int | None = None
    width: int | None = None
    height: int | None = None
    boxes: dict[float, np.ndarray] = field(default_factory=dict)
    box_labels: dict[float, np.ndarray] = field(default_factory=dict)
    segments: list[tuple[float, float]] = field(default_factory=list)
    segment_labels: list[int] = field(default_factory=list)
    tubes: int = 0
    split: str | None = None
    path: str | None = None  # relative to the data set root, when the format says
    fps: float | None = None
    duration: float | None = None  # seconds, when the format says
    time_unit: str = "frames"
    box_unit: str = "pixels"

    def resolved(self, fps: float | None = None, width: int | None = None,
                 height: int | None = None, time_offset: float = 0.0) -> VideoAnnotation:
        """This annotation in frame indices and pixels.

        Seconds become frames with `fps` (default: the annotation's own): a box time
        `t` goes to frame `round((t - time_offset) * fps)` (halves round up; boxes
        landing on one frame are stacked), a segment `[s, e)` to
        `[(s - time_offset) * fps, (e - time_offset) * fps)` (not rounded: frame `i` lies
        inside when start <= i < end), `frames` defaults to `round(duration * fps)`.
        AVA v2 timestamps count from the start of the movie and its 15-minute clips
        start at 900 s: pass `time_offset=900` for videos cut to the clip. Normalized
        boxes are scaled by `width`, `height` (default: the annotation's own).
        Pixel and frame annotations are returned unchanged apart from filling in
        missing `fps`, `width` and `height`.
        """
        fps = fps if fps is not None else self.fps
        width = width if width is not None else self.width
        height = height if height is not None else self.height
        out = dataclasses.replace(self, fps=fps, width=width, height=height)
        if self.box_unit == "normalized":
            if width is None or height is None:
                raise ValueError(f"video {self.id!r}: normalized boxes need width and height")
            scale = np.array([width, height, width, height], np.float64)
            out.boxes = {t: b * scale for t, b in self.boxes.items()}
            out.box_unit = "pixels"
        if self.time_unit == "seconds":
            if fps is None:
                raise ValueError(f"video {self.id!r}: times in seconds need fps")
            keys = np.array(list(out.boxes), np.float64)
            frames = np.floor((keys - time_offset) * fps + 0.5).astype(np.int64)
            stack = np.concatenate(list(out.boxes.values())) if keys.size else np.zeros((0, 4))
            repeat = np.array([len(b) for b in out.boxes.values()], np.int64)
            labels = (np.concatenate(list(self.box_labels.values()))
                      if self.box_labels else None)
            out.boxes, out.box_labels = group_boxes(np.repeat(frames, repeat), stack, labels)
            out.segments = [((s - time_offset) * fps, (e - time_offset) * fps)
                            for s, e in self.segments]
            if out.frames is None and self.duration is not None:
                out.frames = int(np.floor(self.duration * fps + 0.5))
            out.time_unit = "frames"
        return out

    def frame_mask(self, frames: int | np.ndarray | None = None) -> np.ndarray:
        """Which frames lie inside a segment: frame `i` when start <= i < end of any.

        `frames` is a count (frames 0..n-1, default `self.frames`) or the frame indices
        a model sampled, so the mask lines up with a temporal curve over those frames.
        """
        self._need_frames("frame_mask")
        frames = self.frames if frames is None else frames
        if frames is None:
            raise ValueError(f"video {self.id!r}: frame count unknown; pass `frames`")
        index = np.arange(frames) if np.ndim(frames) == 0 else np.asarray(frames)
        mask = np.zeros(index.shape, bool)
        for start, end in self.segments:
            mask |= (index >= start) & (index < end)
        return mask

    def boxes_at(self, frames: np.ndarray | list[int]) -> np.ndarray:
        """Boxes of the given frames as an (N, K, 4) array padded with NaN rows.

        A frame without boxes is all NaN, which the spatial metrics score as NaN
        (not counted). K is the most boxes any of the frames has (at least 1).
        """
        self._need_frames("boxes_at")
        found = [self.boxes.get(int(f), _NO_BOXES) for f in np.asarray(frames).ravel()]
        out = np.full((len(found), max([1, *map(len, found)]), 4), np.nan)
        for i, b in enumerate(found):
            out[i, :len(b)] = b
        return out

    def _need_frames(self, what: str) -> None:
        if self.time_unit != "frames":
            raise ValueError(f"video {self.id!r}: {what} needs frame times; call resolved() first")


_NO_BOXES = np.zeros((0, 4))


@dataclass
class AnnotationSet:
    """All videos of one annotation file (or folder), with the class names.

    `class_ids` is the source's own id of each class where that differs from the
    index into `classes` (AVA action ids); otherwise None.
    """

    format: str
    source: Path
    classes: list[str]
    videos: dict[str, VideoAnnotation]
    class_ids: list[int] | None = None

    def find_video(self, video: str | Path) -> VideoAnnotation:
        """The record of `video`, matched by its file name without extension: an id, an
        id's last part, or the stem of a recorded path. None found is a user error."""
        stem = Path(video).stem
        for key, record in self.videos.items():
            if stem in (key, Path(key).name, Path(key).stem, Path(record.path or "").stem):
                return record
        examples = ", ".join(list(self.videos)[:3]) or "none"
        raise StvizError(f"{self.source}: no annotation for video {stem!r} (matched by file "
                         f"name without extension; ids there: {examples}); pass the "
                         "annotation file of this video's data set")


def clip_boxes(ann: AnnotationSet) -> None:
    """Clip every box of a video with a known frame size to the frame, in place (a box
    reaching past the frame would count pixels that do not exist); warn with the count,
    and refuse a file where most boxes lie entirely outside their frames (the wrong box
    format or frame size, whose scores would mean nothing)."""
    total = outside = clipped = 0
    for v in ann.videos.values():
        size = (1.0, 1.0) if v.box_unit == "normalized" else (v.width, v.height)
        if not (size[0] and size[1]) or not v.boxes:
            continue
        w, h = float(size[0]), float(size[1])
        keys = list(v.boxes)
        b = np.nan_to_num(np.concatenate([np.asarray(v.boxes[t], np.float64) for t in keys]),
                          nan=-1.0)
        off = (b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= w) | (b[:, 1] >= h) \
            | (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
        inside = np.clip(b, 0.0, [w, h, w, h])
        total += len(b)
        outside += int(off.sum())
        changed = (inside != b).any(axis=1)
        clipped += int(changed.sum())
        if changed.any():
            ends = np.cumsum([len(v.boxes[t]) for t in keys])[:-1]
            v.boxes = dict(zip(keys, np.split(inside, ends)))
    if total and outside > total / 2:
        raise StvizError(f"{ann.source}: {outside} of {total} boxes lie outside their frames "
                         "(or are empty); check the box format (x1, y1, x2, y2 in pixels) and "
                         "the frame sizes")
    if clipped:
        warn(f"{ann.source}: {clipped} of {total} boxes reach outside their frames "
             f"({outside} entirely or empty); clipped to the frame")


def group_boxes(times: np.ndarray, boxes: np.ndarray, labels: np.ndarray | None = None
                ) -> tuple[dict[Any, np.ndarray], dict[Any, np.ndarray]]:
    """Rows (time, box[, label]) -> ({time: (K, 4)}, {time: (K,)} or {}), times ascending."""
    times = np.asarray(times)
    order = np.argsort(times, kind="stable")
    times, boxes = times[order], np.asarray(boxes, np.float64)[order]
    keys, first = np.unique(times, return_index=True)
    spans = list(zip(keys.tolist(), first.tolist(), [*first[1:].tolist(), len(times)]))
    grouped = {k: boxes[a:b] for k, a, b in spans}
    if labels is None:
        return grouped, {}
    labels = np.asarray(labels, np.int64)[order]
    return grouped, {k: labels[a:b] for k, a, b in spans}


def dominant_label(segments: list[tuple[float, float]], labels: list[int]) -> int | None:
    """The class with the most annotated time over the segments (ties: the lower index)."""
    time: dict[int, float] = {}
    for (start, end), label in zip(segments, labels):
        time[label] = time.get(label, 0.0) + end - start
    return max(sorted(time), key=time.__getitem__) if time else None


def summarize(ann: AnnotationSet) -> dict[str, Any]:
    """Counts for a one-screen overview (`stviz annotations`).

    Keys: format, videos, classes, tubes, segments, annotated_frames (frames or
    keyframes with at least one box), boxes, splits (videos per split, when any split
    is known) and width_min/width_max/height_min/height_max (when any size is known).
    """
    videos = list(ann.videos.values())
    out: dict[str, Any] = {
        "format": ann.format,
        "videos": len(videos),
        "classes": len(ann.classes),
        "tubes": sum(v.tubes for v in videos),
        "segments": sum(len(v.segments) for v in videos),
        "annotated_frames": sum(len(v.boxes) for v in videos),
        "boxes": sum(sum(len(b) for b in v.boxes.values()) for v in videos),
    }
    splits: dict[str, int] = {}
    for v in videos:
        if v.split is not None:
            splits[v.split] = splits.get(v.split, 0) + 1
    if splits:
        out["splits"] = dict(sorted(splits.items()))
    for key in ("width", "height"):
        sizes = [getattr(v, key) for v in videos if getattr(v, key) is not None]
        if sizes:
            out[f"{key}_min"], out[f"{key}_max"] = min(sizes), max(sizes)
    return out
