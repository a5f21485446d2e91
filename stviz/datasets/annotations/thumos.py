"""THUMOS'14 temporal annotations: `<Class>_val.txt` / `<Class>_test.txt`, one
`video_name start end` line (seconds) per action instance.

The path is one such file (its class from the file name) or a folder of them. Classes
are the sorted class names (the 20 detection classes in their usual order).
`Ambiguous_*.txt` lists segments THUMOS leaves out of evaluation: it is skipped.
Times stay in seconds (`time_unit="seconds"`): `VideoAnnotation.resolved(fps)` gives
frames. A video may hold several classes (CliffDiving inside Diving): each segment
keeps its class in `segment_labels`, and `label` is the class with the most annotated
time (ties: the lower index). The split is `val` or `test` from the file name.
"""

from __future__ import annotations

import re
from pathlib import Path

from stviz.datasets.annotations.model import AnnotationSet, VideoAnnotation, dominant_label
from stviz.datasets.annotations.source import Source

NAME = "thumos"
_FILE = re.compile(r"^(?P<cls>.+?)_(?P<split>val|validation|test)\.txt$", re.I)


def sniff(src: Source) -> bool:
    if src.kind == "folder":
        return bool(_class_files(src.path))
    if src.kind != "text":
        return False
    line = next((ln for ln in src.head.decode("utf-8", "replace").splitlines() if ln.strip()),
                "")
    fields = line.split()
    try:
        [float(x) for x in fields[1:]]
    except ValueError:
        return False
    return len(fields) == 3


def load(src: Source) -> AnnotationSet:
    files = _class_files(src.path) if src.kind == "folder" else [src.path]
    if not files:
        raise src.bad("", "has no <Class>_val.txt or <Class>_test.txt files; point at the "
                          "THUMOS'14 annotation folder")
    if src.kind != "folder" and files[0].name.lower().startswith("ambiguous_"):
        raise src.bad("", "lists ambiguous segments, which THUMOS does not evaluate; pass a "
                          "class file or the folder")
    per_file = [(f, *_class_and_split(f)) for f in files]
    classes = sorted({cls for _, cls, _ in per_file})
    videos: dict[str, VideoAnnotation] = {}
    for path, cls, split in per_file:
        label = classes.index(cls)
        lines = (src.text if path == src.path else Source(path).text).splitlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path.name} line {n}" if path != src.path else f"line {n}"
            fields = line.split()
            try:
                start, end = float(fields[1]), float(fields[2])
            except (ValueError, IndexError):
                raise src.bad(where, f"expected `video_name start end` (seconds), got "
                                     f"{line.strip()!r}") from None
            if len(fields) != 3 or not 0 <= start <= end:
                raise src.bad(where, f"expected `video_name start end` with 0 <= start <= end, "
                                     f"got {line.strip()!r}")
            video = videos.setdefault(fields[0], VideoAnnotation(
                id=fields[0], split=split, time_unit="seconds"))
            video.segments.append((start, end))
            video.segment_labels.append(label)
    for v in videos.values():
        v.label = dominant_label(v.segments, v.segment_labels)
        v.label_name = classes[v.label]
        v.tubes = len(v.segments)
    return AnnotationSet(NAME, src.path, classes, dict(sorted(videos.items())))


def _class_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _FILE.match(p.name)
                  and not p.name.lower().startswith("ambiguous_"))


def _class_and_split(path: Path) -> tuple[str, str | None]:
    match = _FILE.match(path.name)
    if match is None:
        return path.stem, None
    split = match["split"].lower()
    return match["cls"], "val" if split == "validation" else split
