"""`*-GT.pkl` tube files of JHMDB and UCF101-24 (ACT-detector / MOC-detector caches).

`{'labels': [names], 'gttubes': {video: {label: [array (N, 5)]}}, 'nframes': {video: n},
'train_videos': [[...] per split], 'test_videos': [[...] per split],
'resolution': {video: (h, w)}}`. Each tube row is `frame, x1, y1, x2, y2` in pixels.

Frame numbers in these files are 1-based (the loaders index `range(1, nframes + 1)`):
they are converted to 0-based here, so a tube over frames f..g becomes the segment
`[f - 1, g)`. Boxes are kept as given. Splits: `split_number` (1-based, default 1)
picks which of the per-split lists give `train` / `test`; a file whose lists hold
video names directly has one split. A video with several labels takes the one
with the most tubes as its `label`; `box_labels` then records each box's class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stviz.datasets.annotations.model import AnnotationSet, VideoAnnotation, group_boxes
from stviz.datasets.annotations.source import Source, short, str_keys, text

NAME = "gttubes"


def sniff(src: Source) -> bool:
    return (src.kind == "pickle" and isinstance(src.pickle, dict)
            and "gttubes" in str_keys(src.pickle))


def load(src: Source) -> AnnotationSet:
    data = src.pickle
    if not isinstance(data, dict):
        raise src.bad("", f"expected a dict with 'gttubes', got a {type(data).__name__}")
    data = str_keys(data)
    classes = [text(c) for c in src.need("", data, "labels", "list")]
    nframes = str_keys(src.need("", data, "nframes", "dict"))
    resolution = str_keys(src.need("", data, "resolution", "dict", {}))
    splits = {**{v: "train" for v in _split_list(src, data, "train_videos")},
              **{v: "test" for v in _split_list(src, data, "test_videos")}}
    videos = {}
    for key, tubes in src.need("", data, "gttubes", "dict").items():
        vid = text(key)
        where = f"video {vid!r}"
        if vid not in nframes:
            raise src.bad(where, "has tubes but no entry in 'nframes'")
        size = resolution.get(vid)
        if size is not None and (len(size) != 2 or not all(int(x) > 0 for x in size)):
            raise src.bad(where, f"'resolution' should be (height, width), got {short(size)}")
        videos[vid] = _video(src, where, vid, tubes, int(nframes[vid]), classes, size)
        videos[vid].split = splits.get(vid)
    return AnnotationSet(NAME, src.path, classes, videos)


def _split_list(src: Source, data: dict, key: str) -> list[str]:
    lists = src.need("", data, key, "list", [])
    if not lists or all(isinstance(v, (str, bytes)) for v in lists):
        return [text(v) for v in lists]  # a single split
    if not 1 <= src.split_number <= len(lists):
        raise src.bad(f"'{key}'", f"has {len(lists)} splits; choose a split from 1 to "
                                  f"{len(lists)}, not {src.split_number}")
    return [text(v) for v in lists[src.split_number - 1]]


def _video(src: Source, where: str, vid: str, tubes: Any, nframes: int, classes: list[str],
           size: Any) -> VideoAnnotation:
    if not isinstance(tubes, dict):
        raise src.bad(where, f"tubes should be a dict label -> list of arrays, got {short(tubes)}")
    times, rows, labels, segments = [], [], [], []
    for label, arrays in tubes.items():
        if not isinstance(label, (int, np.integer)) or not 0 <= label < len(classes):
            raise src.bad(where, f"label {short(label)} is not an index into 'labels' "
                                 f"(0..{len(classes) - 1})")
        for j, arr in enumerate(arrays if isinstance(arrays, list) else [arrays]):
            at = f"{where}: label {label} tube {j}"
            tube = src.rows(at, "tube", arr, columns=5)
            frames = tube[:, 0]
            if len(tube) == 0 or not (frames == np.round(frames)).all() \
                    or frames.min() < 1 or frames.max() > nframes:
                raise src.bad(at, f"frame numbers should be integers in 1..{nframes} "
                                  f"(1-based), got {short(frames)}")
            frames = frames.astype(np.int64) - 1
            src.check_boxes(at, tube[:, 1:], frames)
            times.append(frames)
            rows.append(tube[:, 1:])
            labels.append(int(label))
            segments.append((float(frames.min()), float(frames.max() + 1)))
    main = max(sorted(set(labels)), key=labels.count) if labels else None
    boxes, box_labels = group_boxes(
        np.concatenate(times) if times else np.zeros(0, np.int64),
        np.concatenate(rows) if rows else np.zeros((0, 4)),
        np.repeat(labels, [len(t) for t in times]) if len(set(labels)) > 1 else None)
    height, width = (int(size[0]), int(size[1])) if size is not None else (None, None)
    return VideoAnnotation(id=vid, label=main, label_name=None if main is None else classes[main],
                           frames=nframes, width=width, height=height, boxes=boxes,
                           box_labels=box_labels, segments=segments, segment_labels=labels,
                           tubes=len(labels))
