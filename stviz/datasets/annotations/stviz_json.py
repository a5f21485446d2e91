"""stviz JSON: `annotations.json` as written by `stviz synth`, and a generic variant.

`{"classes": [...], "videos": [{"id", "label", "class", "frames", "fps", "width",
"height", "split", "path", "segment": [s, e] | "segments": [[s, e], ...],
"boxes": ..., "tubes"}]}`; only `id` is required. Frames are 0-based, segments
`[start, end)` in frames, boxes `x1, y1, x2, y2` pixels with x2/y2 exclusive.

`boxes` is either a list with one entry per frame (`stviz synth`: a box per frame,
so its length must equal `frames`), each entry a box, a list of boxes, or null/[]
for no box; or an object mapping a frame index ("12") to a box or a list of boxes.

Classes: `classes` when given (then `label` indexes it and `class` must agree);
otherwise the sorted `class` names, or `str(label)` when there are only labels.
`tubes` defaults to the most boxes on any one frame (1 for a synth clip).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stviz.datasets.annotations.model import AnnotationSet, VideoAnnotation, group_boxes
from stviz.datasets.annotations.source import Source, short

NAME = "stviz"


def sniff(src: Source) -> bool:
    return (src.kind == "json" and isinstance(src.json, dict)
            and isinstance(src.json.get("videos"), list))


def load(src: Source) -> AnnotationSet:
    data = src.json
    records = src.need("", data, "videos", "list")
    classes = list(src.need("", data, "classes", "list", []))
    if not all(isinstance(c, str) for c in classes):
        raise src.bad("'classes'", "should be a list of class names (strings)")
    videos: dict[str, VideoAnnotation] = {}
    for i, rec in enumerate(records):
        where = f"video #{i}"
        vid = src.need(where, rec, "id", "str")
        where = f"video {vid!r}"
        if vid in videos:
            raise src.bad(where, "appears twice; ids must be unique")
        videos[vid] = _video(src, where, vid, rec)
        if classes:
            _name(src, classes, videos[vid])
    if not classes:
        classes = _classes_from_videos(videos)
        for v in videos.values():
            _name(src, classes, v)
    return AnnotationSet(NAME, src.path, classes, videos)


def _video(src: Source, where: str, vid: str, rec: dict) -> VideoAnnotation:
    frames = src.need(where, rec, "frames", "int", None)
    times, boxes = _boxes(src, where, rec.get("boxes"), frames)
    grouped, _ = group_boxes(times, boxes)
    raw = [rec["segment"]] if rec.get("segment") is not None else \
        src.need(where, rec, "segments", "list", [])
    segments = [_segment(src, where, s, frames) for s in raw]
    most = max((len(b) for b in grouped.values()), default=int(bool(segments)))
    fps = src.need(where, rec, "fps", "number", None)
    return VideoAnnotation(
        id=vid, label=src.need(where, rec, "label", "int", None),
        label_name=src.need(where, rec, "class", "str", None), frames=frames,
        width=src.need(where, rec, "width", "int", None),
        height=src.need(where, rec, "height", "int", None),
        boxes=grouped, segments=segments, tubes=src.need(where, rec, "tubes", "int", most),
        split=src.need(where, rec, "split", "str", None),
        path=src.need(where, rec, "path", "str", None),
        fps=None if fps is None else float(fps))


def _boxes(src: Source, where: str, value: Any, frames: int | None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame boxes in either layout -> (frame of each box, (M, 4) boxes)."""
    if value is None:
        return np.zeros(0, np.int64), np.zeros((0, 4))
    if isinstance(value, dict):
        items = []
        for key, entry in value.items():
            try:
                items.append((int(key), entry))
            except ValueError:
                raise src.bad(where, f"'boxes' key {key!r} is not a frame index") from None
    elif isinstance(value, list):
        if frames is not None and len(value) != frames:
            raise src.bad(where, f"'boxes' has {len(value)} rows but 'frames' is {frames}")
        try:  # fast path: exactly one box per frame, as `stviz synth` writes
            arr = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is not None and arr.ndim == 2 and arr.shape[1] == 4:
            return _checked(src, where, np.arange(len(arr)), src.rows(where, "'boxes'", arr),
                            frames)
        items = list(enumerate(value))
    else:
        raise src.bad(where, f"'boxes' should be a list or an object, got {short(value)}")
    times, rows = [], []
    for frame, entry in items:
        if entry is None or entry == []:
            continue
        # A flat list of 4 numbers is one box; anything else must be a list of boxes.
        one = isinstance(entry, list) and not any(isinstance(x, list) for x in entry)
        got = src.rows(where, f"'boxes' at frame {frame}", [entry] if one else entry)
        times.append(np.full(len(got), frame))
        rows.append(got)
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 4))
    return _checked(src, where, np.concatenate(times), np.concatenate(rows), frames)


def _checked(src: Source, where: str, times: np.ndarray, boxes: np.ndarray, frames: int | None
             ) -> tuple[np.ndarray, np.ndarray]:
    outside = (times < 0) | (times >= frames if frames is not None else False)
    if outside.any():
        raise src.bad(where, f"'boxes' has frame {int(times[np.argmax(outside)])} outside "
                             f"0..{'frames-1' if frames is None else frames - 1}")
    src.check_boxes(where, boxes, times)
    return times, boxes


def _segment(src: Source, where: str, value: Any, frames: int | None) -> tuple[float, float]:
    seg = src.rows(where, "segment", [value], columns=2)
    if len(seg) != 1:
        raise src.bad(where, f"segment should be [start, end], got {short(value)}")
    start, end = seg[0].tolist()
    if not 0 <= start <= end or (frames is not None and end > frames):
        raise src.bad(where, f"segment {[start, end]} is not 0 <= start <= end <= frames")
    return start, end


def _classes_from_videos(videos: dict[str, VideoAnnotation]) -> list[str]:
    """Without a `classes` list: names by label index, else the sorted names."""
    labels = [v.label for v in videos.values() if v.label is not None]
    named = {v.label: v.label_name for v in videos.values()
             if v.label is not None and v.label_name is not None}
    if labels:
        return [named.get(i, str(i)) for i in range(max(labels) + 1)]
    return sorted({v.label_name for v in videos.values() if v.label_name})


def _name(src: Source, classes: list[str], v: VideoAnnotation) -> None:
    """Check a video's label and class name against the class list; fill in the other."""
    where = f"video {v.id!r}"
    if v.label is None and v.label_name is not None:
        if v.label_name not in classes:
            raise src.bad(where, f"class {v.label_name!r} is not in 'classes'")
        v.label = classes.index(v.label_name)
    if v.label is not None:
        if not 0 <= v.label < len(classes):
            raise src.bad(where, f"label {v.label} is outside 0..{len(classes) - 1}")
        if v.label_name is not None and v.label_name != classes[v.label]:
            raise src.bad(where, f"label {v.label} is class {classes[v.label]!r} but "
                                 f"'class' says {v.label_name!r}")
        v.label_name = classes[v.label]
        v.segment_labels = [v.label] * len(v.segments)
