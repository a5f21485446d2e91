"""ActivityNet JSON: `{"database": {video: {"duration" | "duration_seconds", "subset",
"resolution"?: "WxH", "annotations": [{"segment": [s, e], "label": "..."}]}}}`.

Times stay in seconds (`time_unit="seconds"`; `VideoAnnotation.resolved(fps)` gives
frames and `frames = round(duration * fps)`). Classes are the sorted labels in use.
Each segment keeps its class in `segment_labels`; `label` is the class with the most
annotated time (ties: the lower index); `subset` (training / validation / testing)
is the split. Testing videos have no annotations and so no label.
"""

from __future__ import annotations

import re

from stviz.datasets.annotations.model import AnnotationSet, VideoAnnotation, dominant_label
from stviz.datasets.annotations.source import Source, short

NAME = "activitynet"
_RESOLUTION = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


def sniff(src: Source) -> bool:
    return (src.kind == "json" and isinstance(src.json, dict)
            and isinstance(src.json.get("database"), dict))


def load(src: Source) -> AnnotationSet:
    database = src.need("", src.json, "database", "dict")
    raw = {}
    for vid, rec in database.items():
        where = f"video {vid!r}"
        segments, names = [], []
        for j, ann in enumerate(src.need(where, rec, "annotations", "list", [])):
            at = f"{where}: annotation {j}"
            seg = src.rows(at, "'segment'", [src.need(at, ann, "segment", "list")], columns=2)
            if not 0 <= seg[0, 0] <= seg[0, 1]:
                raise src.bad(at, f"segment {seg[0].tolist()} is not 0 <= start <= end")
            segments.append((float(seg[0, 0]), float(seg[0, 1])))
            names.append(src.need(at, ann, "label", "str"))
        raw[vid] = (rec, segments, names)
    classes = sorted({name for _, _, names in raw.values() for name in names})
    index = {name: i for i, name in enumerate(classes)}
    videos = {vid: _video(src, vid, rec, segments, [index[n] for n in names], classes)
              for vid, (rec, segments, names) in raw.items()}
    return AnnotationSet(NAME, src.path, classes, videos)


def _video(src: Source, vid: str, rec: dict, segments: list[tuple[float, float]],
           labels: list[int], classes: list[str]) -> VideoAnnotation:
    where = f"video {vid!r}"
    duration = src.need(where, rec, "duration", "number", None)
    if duration is None:
        duration = src.need(where, rec, "duration_seconds", "number", None)
    width = height = None
    resolution = src.need(where, rec, "resolution", "str", None)
    if resolution is not None:
        match = _RESOLUTION.match(resolution)
        if match is None:
            raise src.bad(where, f"'resolution' should be WIDTHxHEIGHT, got {short(resolution)}")
        width, height = int(match[1]), int(match[2])
    label = dominant_label(segments, labels)
    return VideoAnnotation(id=vid, label=label,
                           label_name=None if label is None else classes[label],
                           width=width, height=height, segments=segments, segment_labels=labels,
                           tubes=len(segments), split=src.need(where, rec, "subset", "str", None),
                           duration=None if duration is None else float(duration),
                           time_unit="seconds")
