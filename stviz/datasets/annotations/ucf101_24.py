"""UCF101-24 corrected annotations (gurkirt/corrected-UCF101-Annots `pyannot.pkl`).

Flat form `{video: {numf, label, annotations: [{sf, ef, label, boxes}]}}`, or wrapped
`{'db': <flat>, 'trainvideos': [...], 'testvideos'?: [...], 'classes'?: [...]}`.
Video ids are `Class/v_Class_gXX_cYY`, the UCF101 path without `.avi`.

Conventions, checked on the real file (3194 videos, 4458 tubes): `sf` is a 0-based
first frame (2904 tubes start at 0) and `ef` is exclusive: every tube has exactly
`ef - sf` box rows and `ef <= numf` (equal for 2744 tubes). A tube therefore covers
frames `sf .. ef-1` and becomes the segment `[sf, ef)`. Box rows are x, y, w, h in
pixels of the 320x240 videos (x >= 1, x + w <= 320), read as x1 = x, y1 = y,
x2 = x + w, y2 = y + h. Values are numpy scalars and uint8/uint16 arrays, converted
to int/float64 before any arithmetic (x + w overflows uint8 in 60k rows). Tube labels
equal the video label in the real file; `segment_labels` keeps each tube's.

Splits: videos in `trainvideos` are `train`, those in `testvideos` (or, without that
list, all others) `test`; the flat form has no split. Class names come from
`classes`, else from the id prefixes ordered by label index.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stviz.datasets.annotations.model import AnnotationSet, VideoAnnotation, group_boxes
from stviz.datasets.annotations.source import Source, str_keys, text

NAME = "ucf101-24"
WIDTH, HEIGHT = 320, 240  # every UCF101 video; the pickle does not record it


def sniff(src: Source) -> bool:
    if src.kind != "pickle" or not isinstance(src.pickle, dict):
        return False
    data = str_keys(src.pickle)
    if "db" in data:
        return True
    first = next(iter(data.values()), None)
    return isinstance(first, dict) and {"annotations", "numf"} <= set(str_keys(first))


def load(src: Source) -> AnnotationSet:
    data = src.pickle
    if not isinstance(data, dict):
        raise src.bad("", f"expected a dict of videos, got a {type(data).__name__}")
    data = str_keys(data)
    meta = data if "db" in data else {}  # the flat form is all videos, no lists
    db = src.need("", data, "db", "dict") if meta else data
    train = {text(v) for v in src.need("", meta, "trainvideos", "list", [])}
    test = {text(v) for v in src.need("", meta, "testvideos", "list", [])}
    videos = {}
    for key, rec in db.items():
        vid = text(key)
        in_test = vid in test if test else bool(train)  # without a test list: all non-train
        split = "train" if vid in train else "test" if in_test else None
        videos[vid] = _video(src, vid, rec, split)
    classes = [text(c) for c in src.need("", meta, "classes", "list", [])]
    return _named(src, classes or _names_from_ids(src, videos), videos)


def _video(src: Source, vid: str, rec: Any, split: str | None) -> VideoAnnotation:
    where = f"video {vid!r}"
    rec = str_keys(rec) if isinstance(rec, dict) else rec
    numf = int(src.need(where, rec, "numf", "int"))
    label = int(src.need(where, rec, "label", "int"))
    tubes = src.need(where, rec, "annotations", "list")
    times, rows, segments, labels = [], [], [], []
    for j, tube in enumerate(tubes):
        at = f"{where}: tube {j}"
        tube = str_keys(tube) if isinstance(tube, dict) else tube
        sf, ef = int(src.need(at, tube, "sf", "int")), int(src.need(at, tube, "ef", "int"))
        if not 0 <= sf < ef <= numf:
            raise src.bad(at, f"frames sf={sf}, ef={ef} are not 0 <= sf < ef <= numf={numf}")
        xywh = src.rows(at, "'boxes'", src.need(at, tube, "boxes", "list"))
        if len(xywh) != ef - sf:
            raise src.bad(at, f"'boxes' has {len(xywh)} rows but ef - sf is {ef - sf}")
        box = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        src.check_boxes(at, box, np.arange(sf, ef))
        times.append(np.arange(sf, ef))
        rows.append(box)
        segments.append((float(sf), float(ef)))
        labels.append(int(src.need(at, tube, "label", "int", label)))
    boxes, box_labels = group_boxes(
        np.concatenate(times) if times else np.zeros(0, np.int64),
        np.concatenate(rows) if rows else np.zeros((0, 4)),
        # per-box labels only where a tube disagrees with its video
        np.repeat(labels, [len(t) for t in times]) if set(labels) - {label} else None)
    return VideoAnnotation(id=vid, label=label, frames=numf, width=WIDTH, height=HEIGHT,
                           boxes=boxes, box_labels=box_labels, segments=segments,
                           segment_labels=labels, tubes=len(tubes), split=split)


def _names_from_ids(src: Source, videos: dict[str, VideoAnnotation]) -> list[str]:
    """Class names from the `Class/v_Class_gXX_cYY` ids, ordered by label index."""
    names: dict[int, str] = {}
    for v in videos.values():
        name = v.id.split("/")[0]
        if names.setdefault(v.label, name) != name:
            raise src.bad(f"video {v.id!r}", f"label {v.label} is class {names[v.label]!r} "
                                             f"in other videos")
    return [names.get(i, str(i)) for i in range(max(names, default=-1) + 1)]


def _named(src: Source, classes: list[str], videos: dict[str, VideoAnnotation]) -> AnnotationSet:
    for v in videos.values():
        if not 0 <= v.label < len(classes):
            raise src.bad(f"video {v.id!r}", f"label {v.label} is outside 0..{len(classes) - 1}")
        v.label_name = classes[v.label]
    return AnnotationSet(NAME, src.path, classes, videos)
