"""Read a video data set, whatever its layout, into one in-memory form.

Layouts, detected from content by `open_dataset`, in this order:

- `synth`: a folder with `annotations.json` (format `stviz-synth`), or that file.
- `ucf101`: class folders (`root/<Class>/*.avi`) with UCF101 split lists
  `trainlist0K.txt` (`Class/v_x.avi 1`) and `testlist0K.txt` (`Class/v_x.avi`);
  `classInd.txt` (`1 ApplyEyeMakeup`, 1-based) fixes the class order when present.
- `hmdb51`: class folders with HMDB51 split files `<class>_test_splitK.txt`
  (`video.avi 1`: 1 = train, 2 = test, 0 = unused).
- `folders`: class folders without split files. Each video goes to `test` when the
  SHA-1 of its `Class/file` path, read as a number, is 0 mod 5, else to `train`: an
  80/20 split that never changes when videos are added or removed. It is per file,
  so it does not keep UCF101-style groups (same actor, different clips) together.
- `csv`: a manifest with a header naming `path` and `label` (and optionally `split`);
  paths are relative to the CSV's folder; labels are all integers (class `i` is named
  `"i"`) or else class names (sorted to give ids). Without a `split` column the
  videos are split as in `folders`.

Split lists are looked for in the root, in any folder beside the class folders
inside it (`splits/`, `ucfTrainTestlist/`, ...), and in `ucfTrainTestlist/` or
`testTrainMulti_7030_splits/` beside the root, where the official downloads put them.
Class names in lists, folders and `classInd.txt` are matched case-insensitively, the
folder's spelling winning; without `classInd.txt` the class order is sorted.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stviz.errors import StvizError, warn

VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"})
_SIBLING_SPLIT_DIRS = ("ucfTrainTestlist", "testTrainMulti_7030_splits")
_HMDB_SPLITS = {"1": "train", "2": "test"}  # "0": not used in this split


@dataclass(frozen=True)
class VideoItem:
    """One labelled video of a data set."""

    path: Path
    label: int
    split: str
    id: str


@dataclass
class VideoDataset:
    """Videos, their labels and splits, however the data set was laid out on disk."""

    root: Path
    classes: list[str]
    items: list[VideoItem]
    kind: str

    def split(self, name: str) -> list[VideoItem]:
        """The items of one split; asking for a split with no videos is a user error."""
        items = [item for item in self.items if item.split == name]
        if not items:
            have = sorted({item.split for item in self.items})
            raise StvizError(f"{self.root}: no videos in split {name!r}; "
                             f"choose one of: {', '.join(have) or '(none)'}")
        return items


def open_dataset(path: str | Path, split_id: int = 1) -> VideoDataset:
    """Open a data set folder, an `annotations.json` or a CSV manifest (see module doc).

    `split_id` picks the official split (1-3) of UCF101 / HMDB51 layouts.
    """
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".json":
            return _read_synth(path)
        if path.suffix.lower() == ".csv":
            return _read_csv(path)
        raise StvizError(f"{path}: not a data set; pass a folder, an annotations.json or a "
                         "CSV manifest")
    if not path.is_dir():
        raise StvizError(f"{path}: no such file or folder; check the data set path")
    if (path / "annotations.json").is_file():
        return _read_synth(path / "annotations.json")
    class_dirs = _class_dirs(path)
    if class_dirs:
        return _read_folders(path, class_dirs, split_id)
    manifests = [p for p in sorted(path.glob("*.csv")) if _is_manifest(p)]
    if len(manifests) == 1:
        return _read_csv(manifests[0])
    if manifests:
        raise StvizError(f"{path}: several CSV manifests ({', '.join(p.name for p in manifests)})"
                         "; pass the one to use")
    raise StvizError(f"{path}: no annotations.json, class folders with videos or CSV manifest "
                     "(path,label[,split]); point at one of these")


def check_videos(items: list[VideoItem]) -> tuple[list[VideoItem], list[tuple[VideoItem, str]]]:
    """Probe every video: return the readable ones and (item, reason) for the others.

    Each bad video is reported with a warning and left out, so that one broken file
    never stops a training or evaluation run.
    """
    from stviz.video import probe

    good, bad = [], []
    for item in items:
        try:
            probe(item.path)  # raises StvizError, naming the file, for what will not decode
        except StvizError as exc:
            warn(f"skipped {exc}")
            bad.append((item, str(exc)))
        else:
            good.append(item)
    return good, bad


# ---------------------------------------------------------------- synth

def _read_synth(path: Path) -> VideoDataset:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StvizError(f"{path}: unreadable JSON ({exc}); "
                         "regenerate it with `stviz synth`") from exc
    if not isinstance(data, dict) or data.get("format") != "stviz-synth":
        raise StvizError(f"{path}: not a stviz-synth annotations file (no \"format\": "
                         "\"stviz-synth\"); point at a data set folder instead")
    if data.get("version") != 1:
        raise StvizError(f"{path}: stviz-synth version {data.get('version')} is not supported; "
                         "regenerate it with this stviz")
    try:
        items = [VideoItem(path.parent / v["path"], int(v["label"]), str(v["split"]), str(v["id"]))
                 for v in data["videos"]]
        classes = [str(c) for c in data["classes"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise StvizError(f"{path}: malformed stviz-synth annotations ({exc!r}); "
                         "regenerate it with `stviz synth`") from exc
    return VideoDataset(path.parent, classes, items, "synth")


# ---------------------------------------------------------------- class folders

def _is_video(path: Path) -> bool:
    return (path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")
            and path.is_file())


def _class_dirs(root: Path) -> list[Path]:
    """Sub-folders that hold videos directly: the classes."""
    return [d for d in sorted(root.iterdir())
            if d.is_dir() and not d.name.startswith(".") and any(map(_is_video, d.iterdir()))]


def _stem(rel: str) -> str:
    """An item id: its relative path without the extension."""
    return str(PurePosixPath(rel).with_suffix(""))


def _hash_split(key: str) -> str:
    """Deterministic 80/20 train/test assignment of one video (see module doc)."""
    return "test" if int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % 5 == 0 else "train"


def _split_dirs(root: Path, class_dirs: list[Path]) -> list[Path]:
    """Where split lists may be: the root, folders in it without videos, known siblings."""
    inside = [d for d in sorted(root.iterdir())
              if d.is_dir() and not d.name.startswith(".") and d not in class_dirs]
    beside = [root.parent / name for name in _SIBLING_SPLIT_DIRS if (root.parent / name).is_dir()]
    return [root, *inside, *beside]


def _lines(path: Path) -> list[list[str]]:
    """Whitespace-split fields of the non-empty lines of a text file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise StvizError(f"{path}: unreadable ({exc.strerror}); check its permissions") from exc
    return [line.split() for line in text.splitlines() if line.strip()]


def _class_index(names: list[str], class_ind: Path | None, origin: Path) -> list[str]:
    """The class list: classInd.txt order when present, else the sorted names."""
    if class_ind is None:
        return sorted(set(names))
    rows = _lines(class_ind)
    try:
        ordered = sorted((int(num), name) for num, name in rows)
    except ValueError:
        raise StvizError(f"{class_ind}: expected lines `<id> <ClassName>`; "
                         "fix or remove it") from None
    if [num for num, _ in ordered] != list(range(1, len(ordered) + 1)):
        raise StvizError(f"{class_ind}: class ids must be 1..N without gaps; fix or remove it")
    known = {name.lower() for _, name in ordered}
    missing = sorted({n for n in names if n.lower() not in known})
    if missing:
        raise StvizError(f"{origin}: classes {', '.join(missing[:5])} are not in {class_ind}; "
                         "fix the split list or classInd.txt")
    return [name for _, name in ordered]


def _find(dirs: list[Path], pattern: str) -> list[Path]:
    """Files matching `pattern` in `dirs`; a name found twice counts where it is seen first."""
    found: dict[str, Path] = {}
    for d in dirs:
        for p in sorted(d.glob(pattern)):
            if p.is_file():
                found.setdefault(p.name, p)
    return list(found.values())


def _read_folders(root: Path, class_dirs: list[Path], split_id: int) -> VideoDataset:
    dirs = _split_dirs(root, class_dirs)
    ucf = _find(dirs, f"trainlist{split_id:02d}.txt")
    hmdb = _find(dirs, f"*_test_split{split_id}.txt")
    if ucf:
        entries, kind = _ucf_entries(ucf[0], split_id), "ucf101"
    elif hmdb:
        entries, kind = _hmdb_entries(hmdb), "hmdb51"
    else:
        others = _find(dirs, "trainlist*.txt") + _find(dirs, "*_test_split*.txt")
        if others:
            ids = sorted({m.group(1) for p in others
                          if (m := re.search(r"(?:trainlist|_test_split)0*(\d+)\.txt$", p.name))})
            raise StvizError(f"{others[0].parent}: no split {split_id} lists; "
                             f"choose a split id among {', '.join(ids)}")
        entries = [(d.name, f.name, _hash_split(f"{d.name}/{f.name}"))
                   for d in class_dirs for f in sorted(d.iterdir()) if _is_video(f)]
        kind = "folders"
    # Lists and folders may spell a class differently: the folder's spelling wins.
    folders = {d.name.lower(): d.name for d in root.iterdir() if d.is_dir()}
    entries = [(folders.get(cls.lower(), cls), name, split) for cls, name, split in entries]
    class_ind = _find(dirs, "classInd.txt")
    classes = _class_index([c for c, _, _ in entries], class_ind[0] if class_ind else None,
                           ucf[0] if ucf else root)
    lookup = {name.lower(): i for i, name in enumerate(classes)}
    items = [VideoItem(root / cls / name, lookup[cls.lower()], split, _stem(f"{cls}/{name}"))
             for cls, name, split in entries]
    if not items:
        raise StvizError(f"{root}: the split lists name no videos; check them")
    return VideoDataset(root, classes, items, kind)


def _ucf_entries(trainlist: Path, split_id: int) -> list[tuple[str, str, str]]:
    """(class, file, split) rows of a UCF101 train list and its test list."""
    testlist = trainlist.with_name(f"testlist{split_id:02d}.txt")
    if not testlist.is_file():
        raise StvizError(f"{testlist}: missing beside {trainlist.name}; add it from the "
                         "UCF101 split archive")
    entries = []
    for listing, split in ((trainlist, "train"), (testlist, "test")):
        for fields in _lines(listing):
            cls, sep, name = fields[0].replace("\\", "/").partition("/")
            if not sep or not name:
                raise StvizError(f"{listing}: line {' '.join(fields)!r} is not `Class/video.avi`;"
                                 " fix the split list")
            entries.append((cls, name, split))
    return entries


def _hmdb_entries(files: list[Path]) -> list[tuple[str, str, str]]:
    """(class, file, split) rows of the HMDB51 split files of one split id."""
    entries = []
    for listing in files:
        cls = listing.name.rsplit("_test_split", 1)[0]
        for fields in _lines(listing):
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise StvizError(f"{listing}: line {' '.join(fields)!r} is not `video.avi 0|1|2`;"
                                 " fix the split file")
            if fields[1] in _HMDB_SPLITS:
                entries.append((cls, fields[0], _HMDB_SPLITS[fields[1]]))
    return entries


# ---------------------------------------------------------------- CSV manifest

def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        return [h.strip().lower() for h in next(csv.reader(fh), [])]


def _is_manifest(path: Path) -> bool:
    return {"path", "label"} <= set(_header(path))


def _read_csv(path: Path) -> VideoDataset:
    if not _is_manifest(path):
        raise StvizError(f"{path}: a manifest needs a header with `path` and `label` columns "
                         "(and optionally `split`); add it")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        reader.fieldnames = [h.strip().lower() for h in reader.fieldnames or []]
        rows = [(n, {k: (v or "").strip() for k, v in row.items() if k}) for n, row
                in enumerate(reader, start=2)]
    for n, row in rows:
        if not row.get("path") or not row.get("label"):
            raise StvizError(f"{path}: line {n} has an empty path or label; fill it in or "
                             "remove the line")
    labels = [row["label"] for _, row in rows]
    if all(label.isdigit() for label in labels):
        ids = [int(label) for label in labels]
        classes = [str(i) for i in range(max(ids, default=-1) + 1)]
    else:
        classes = sorted(set(labels))
        ids = [classes.index(label) for label in labels]
    items = []
    for (_, row), label in zip(rows, ids):
        rel = row["path"].replace("\\", "/")
        split = row.get("split") or _hash_split(rel)
        items.append(VideoItem(path.parent / rel, label, split, _stem(rel)))
    if not items:
        raise StvizError(f"{path}: the manifest lists no videos; add rows `path,label`")
    return VideoDataset(path.parent, classes, items, "csv")
