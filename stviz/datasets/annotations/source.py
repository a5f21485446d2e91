"""The annotation file being read, and checks that name its first bad record.

Every check raises `StvizError("FILE: WHERE: WHAT")`, e.g.
`ann.json: video 'test_00003': 'boxes' has 31 rows but 'frames' is 32`.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from stviz.datasets.annotations.safe_pickle import load_pickle
from stviz.errors import StvizError

_PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".p"})
_KINDS = {
    "int": ("an integer", lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool)),
    "number": ("a number", lambda v: isinstance(v, (int, float, np.integer, np.floating))
               and not isinstance(v, bool) and bool(np.isfinite(v))),
    "str": ("a string", lambda v: isinstance(v, (str, bytes))),
    "list": ("a list", lambda v: isinstance(v, (list, tuple, np.ndarray))),
    "dict": ("an object", lambda v: isinstance(v, dict)),
}
_MISSING = object()


class Source:
    """One annotation file or folder, read lazily and at most once whatever asks."""

    def __init__(self, path: Path, label_map: Path | None = None, split_number: int = 1):
        self.path = path
        self.label_map = label_map
        self.split_number = split_number

    @cached_property
    def head(self) -> bytes:
        """The first bytes (empty for a folder), enough to tell JSON, pickle and text apart."""
        if self.path.is_dir():
            return b""
        with self.path.open("rb") as f:
            return f.read(4096)

    @property
    def kind(self) -> str:
        """`folder`, `json`, `pickle` or `text`, from the first bytes and the suffix."""
        if self.path.is_dir():
            return "folder"
        if self.head.lstrip()[:1] in (b"{", b"["):
            return "json"
        if self.head[:1] == b"\x80" or self.path.suffix.lower() in _PICKLE_SUFFIXES:
            return "pickle"
        return "text"

    @cached_property
    def json(self) -> Any:
        try:
            return json.loads(self.path.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StvizError(f"{self.path}: not valid JSON ({exc}); fix the file or check "
                             "--format") from exc

    @cached_property
    def pickle(self) -> Any:
        return load_pickle(self.path)

    @cached_property
    def text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise StvizError(f"{self.path}: not a UTF-8 text file ({exc}); check --format") \
                from exc

    def bad(self, where: str, what: str) -> StvizError:
        """The error for the first bad record: `FILE: WHERE: WHAT`."""
        return StvizError(f"{self.path}: {where}: {what}" if where else f"{self.path}: {what}")

    def need(self, where: str, record: Any, key: str, kind: str, default: Any = _MISSING) -> Any:
        """`record[key]`, checked to be of `kind` (int, number, str, list or dict).

        Without a default the key is required; with one, a missing key or None gives it.
        """
        if not isinstance(record, dict):
            raise self.bad(where, f"expected an object, got {short(record)}")
        value = record.get(key)
        if value is None:
            if default is _MISSING:
                raise self.bad(where, f"{key!r} is missing")
            return default
        desc, check = _KINDS[kind]
        if not check(value):
            raise self.bad(where, f"{key!r} should be {desc}, got {short(value)}")
        return text(value) if kind == "str" else value

    def rows(self, where: str, what: str, value: Any, columns: int = 4) -> np.ndarray:
        """`value` as an (N, columns) float64 array of finite numbers (N may be 0)."""
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise self.bad(where, f"{what} should be rows of {columns} numbers, got "
                                  f"{short(value)}") from None
        if arr.size == 0:
            return np.zeros((0, columns))
        if arr.ndim != 2 or arr.shape[1] != columns:
            raise self.bad(where, f"{what} should be rows of {columns} numbers, got shape "
                                  f"{arr.shape}")
        if not np.isfinite(arr).all():
            raise self.bad(where, f"{what} row {int(np.argwhere(~np.isfinite(arr))[0, 0])} "
                                  "is not finite")
        return arr

    def check_boxes(self, where: str, boxes: np.ndarray, frame_keys: np.ndarray | None = None
                    ) -> None:
        """x2 >= x1 and y2 >= y1 for every box (rows named by `frame_keys` when given)."""
        flipped = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if flipped.any():
            i = int(np.argmax(flipped))
            at = f"at {frame_keys[i]:g} " if frame_keys is not None else f"row {i} "
            raise self.bad(where, f"box {at}{boxes[i].tolist()} has x2 < x1 or y2 < y1; "
                                  "boxes are x1, y1, x2, y2")


def text(value: Any) -> str:
    """A key or name as `str`: Python 2 pickles give bytes and numpy strings."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("latin1")
    return str(value)


def str_keys(mapping: dict) -> dict[str, Any]:
    """A dict with its keys as `str` (see `text`)."""
    return {text(k): v for k, v in mapping.items()}


def short(value: Any, limit: int = 40) -> str:
    """A value's repr cut to `limit` characters, for messages."""
    r = repr(value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value)
    return r if len(r) <= limit else r[:limit - 3] + "..."
