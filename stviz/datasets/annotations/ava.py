"""AVA-style CSV: `video_id, timestamp, x1, y1, x2, y2, action_id[, person_id]`, no header.

Timestamps are keyframe times in seconds (AVA v2: 902..1798, counted from the start
of the movie), boxes are normalized to 0-1; both are kept as given
(`time_unit="seconds"`, `box_unit="normalized"`): `VideoAnnotation.resolved(fps,
width, height, time_offset)` converts them. Each CSV row is one (person box, action)
pair, so a person doing two actions appears as two rows with the same box; the rows
are kept, `box_labels` giving each one's action as an index into `classes`.

Classes are the action ids (named `"12"`), or, with a `label_map` (the
`ava_action_list_v2.2.pbtxt` format: `item { name: "..." id: N }`), its names in id
order; `class_ids` holds the ids either way. Videos have no single `label`. `tubes`
counts distinct person ids, or without that column the most distinct boxes on one
keyframe. The split is `train`, `val` or `test` when the file name says so.
"""

from __future__ import annotations

import csv
import io
import re

import numpy as np

from stviz.datasets.annotations.model import AnnotationSet, VideoAnnotation, group_boxes
from stviz.datasets.annotations.source import Source

NAME = "ava"
_ITEM = re.compile(r"item\s*\{(.*?)\}", re.S)
_NAME = re.compile(r"""(?:display_)?name:\s*["']([^"']*)["']""")
_ID = re.compile(r"\bid:\s*(-?\d+)")


def sniff(src: Source) -> bool:
    if src.kind != "text":
        return False
    line = next((ln for ln in src.head.decode("utf-8", "replace").splitlines() if ln.strip()),
                "")
    fields = line.split(",")
    try:
        [float(x) for x in fields[1:6]]
        int(fields[6])
    except (ValueError, IndexError):
        return False
    return len(fields) in (7, 8)


def load(src: Source) -> AnnotationSet:
    rows = [(n, r) for n, r in enumerate(csv.reader(io.StringIO(src.text)), 1) if r]
    if not rows:
        raise src.bad("", "has no annotation lines; check the path")
    for n, r in rows:
        if len(r) not in (7, 8) or len(r) != len(rows[0][1]):
            raise src.bad(f"line {n}", f"has {len(r)} fields; expected video_id, timestamp, "
                                       "x1, y1, x2, y2, action_id[, person_id] on every line")
    try:
        numbers = np.array([r[1:] for _, r in rows], np.float64).reshape(len(rows), -1)
    except ValueError:
        numbers = None
    if numbers is None or not np.isfinite(numbers).all() or \
            (numbers[:, 5:] != np.round(numbers[:, 5:])).any():
        raise _first_bad(src, rows)
    stamps, boxes, actions = numbers[:, 0], numbers[:, 1:5], numbers[:, 5].astype(np.int64)
    bad = ((boxes < 0) | (boxes > 1)).any(axis=1) | (boxes[:, 2] < boxes[:, 0]) \
        | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        i = int(np.argmax(bad))
        raise src.bad(f"line {rows[i][0]}", f"box {boxes[i].tolist()} should be x1, y1, x2, y2 "
                                            "normalized to 0-1 with x1 <= x2 and y1 <= y2")
    classes, ids = _classes(src, actions)
    labels = np.searchsorted(ids, actions)
    unknown = (labels >= len(ids)) | (ids[np.minimum(labels, len(ids) - 1)] != actions)
    if unknown.any():
        i = int(np.argmax(unknown))
        raise src.bad(f"line {rows[i][0]}", f"action {actions[i]} is not in {src.label_map}")
    persons = numbers[:, 6].astype(np.int64) if numbers.shape[1] == 7 else None
    names = np.array([r[0] for _, r in rows])
    split = next((s for s in ("train", "val", "test") if s in src.path.name.lower()), None)
    order = np.argsort(names, kind="stable")
    vids, first = np.unique(names[order], return_index=True)
    videos = {}
    for vid, mine in zip(vids.tolist(), np.split(order, first[1:])):
        grouped, box_labels = group_boxes(stamps[mine], boxes[mine], labels[mine])
        tubes = (len(set(persons[mine].tolist())) if persons is not None
                 else max(len(np.unique(b, axis=0)) for b in grouped.values()))
        videos[vid] = VideoAnnotation(id=vid, boxes=grouped, box_labels=box_labels,
                                      tubes=tubes, split=split, time_unit="seconds",
                                      box_unit="normalized")
    return AnnotationSet(NAME, src.path, classes, videos, class_ids=ids.tolist())


def _first_bad(src: Source, rows: list[tuple[int, list[str]]]) -> Exception:
    for n, r in rows:
        for col, value in zip(("timestamp", "x1", "y1", "x2", "y2", "action_id", "person_id"),
                              r[1:]):
            try:
                number = float(value)
            except ValueError:
                return src.bad(f"line {n}", f"{col} {value!r} is not a number")
            if not np.isfinite(number) or (col.endswith("_id") and number != round(number)):
                return src.bad(f"line {n}", f"{col} {value!r} is not a finite "
                                            f"{'integer' if col.endswith('_id') else 'number'}")
    raise AssertionError("no bad row found")  # only reached on a bug


def _classes(src: Source, actions: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Class names and their sorted action ids, from the label map or the ids seen."""
    if src.label_map is None:
        ids = np.unique(actions)
        return [str(i) for i in ids.tolist()], ids
    try:
        text = src.label_map.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise src.bad("", f"label map {src.label_map} is unreadable ({exc}); pass the "
                          "ava_action_list .pbtxt file") from exc
    items = {}
    for k, item in enumerate(_ITEM.findall(text)):
        name, num = _NAME.search(item), _ID.search(item)
        if name is None or num is None:
            raise src.bad("", f"label map {src.label_map}: item {k} lacks a name or an id")
        items[int(num.group(1))] = name.group(1)
    if not items:
        raise src.bad("", f"label map {src.label_map} has no `item {{ name: ... id: ... }}`")
    ids = np.array(sorted(items), np.int64)
    return [items[i] for i in ids.tolist()], ids
