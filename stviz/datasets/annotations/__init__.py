"""Ground-truth annotations of many data sets, read into one in-memory form.

`load_annotations(path)` tells the format from the content and returns an
`AnnotationSet` of `VideoAnnotation`s (units and conventions: `model.py`);
`summarize()` counts it. One module per format, each with `NAME`, `sniff(src)` and
`load(src)`: adding a format is one small file plus one line in `_FORMATS`.

| format        | source                                                      | module          |
| ------------- | ----------------------------------------------------------- | --------------- |
| `stviz`       | `annotations.json` of `stviz synth`, or generic stviz JSON   | stviz_json.py   |
| `ucf101-24`   | corrected UCF101-24 `pyannot.pkl` (flat or wrapped)         | ucf101_24.py    |
| `gttubes`     | JHMDB / UCF101-24 `*-GT.pkl` tube caches                    | gttubes.py      |
| `ava`         | AVA CSV (+ optional `label_map` pbtxt)                      | ava.py          |
| `thumos`      | THUMOS'14 `<Class>_val.txt` files or their folder          | thumos.py       |
| `activitynet` | ActivityNet JSON (`database`)                               | activitynet.py  |

Pickles are loaded with `safe_pickle`, which refuses anything but numpy arrays,
numbers, strings and containers.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from stviz.datasets.annotations import activitynet, ava, gttubes, stviz_json, thumos, ucf101_24
from stviz.datasets.annotations.model import (
    AnnotationSet,
    VideoAnnotation,
    clip_boxes,
    summarize,
)
from stviz.datasets.annotations.source import Source
from stviz.errors import StvizError

_FORMATS = (stviz_json, activitynet, ucf101_24, gttubes, ava, thumos)  # sniffed in this order
FORMATS: tuple[str, ...] = tuple(m.NAME for m in _FORMATS)

__all__ = ["FORMATS", "AnnotationSet", "VideoAnnotation", "load_annotations", "summarize"]


def load_annotations(path: str | Path, format: str | None = None, *,
                     label_map: str | Path | None = None, split_number: int = 1
                     ) -> AnnotationSet:
    """Read an annotation file in `format`, detected from the content when None.

    `path` may also be a folder of THUMOS class files, or a `stviz synth` output
    folder (its `annotations.json` is read).

    `label_map` names AVA's action-list pbtxt; `split_number` (1-based) picks the
    official split of files that hold several (`gttubes`).
    """
    path = Path(path).expanduser()
    if (path / "annotations.json").is_file():  # a `stviz synth` output folder
        path = path / "annotations.json"
    if not path.exists():
        raise StvizError(f"{path}: no such file or folder; check the annotation path")
    src = Source(path, None if label_map is None else Path(label_map).expanduser(),
                 split_number)
    try:
        ann = _pick(src, format).load(src)
    except OSError as exc:
        raise StvizError(f"{path}: cannot read ({exc.strerror or exc}); check the path and "
                         "its permissions") from exc
    clip_boxes(ann)
    return ann


def _pick(src: Source, format: str | None) -> ModuleType:
    """The format module named, or the first whose sniff accepts the content."""
    choices = ", ".join(FORMATS)
    if format is not None:
        module = next((m for m in _FORMATS if format == m.NAME), None)
        if module is None:
            raise StvizError(f"{src.path}: unknown annotation format {format!r}; pass --format "
                             f"with one of: {choices}")
        return module
    module = next((m for m in _FORMATS if m.sniff(src)), None)
    if module is None:
        raise StvizError(f"{src.path}: cannot tell the annotation format; pass --format with "
                         f"one of: {choices}")
    return module
