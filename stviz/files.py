"""Atomic output files: an interrupted run never leaves a half-written file,
and an existing file is only replaced when the caller says so."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stviz.errors import StvizError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(dest: str | Path, overwrite: bool) -> Path:
    """Refuse to replace an existing file unless `overwrite` is set."""
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise StvizError(f"{dest}: file exists; pass --overwrite or choose another --out")
    return dest


@contextlib.contextmanager
def atomic_path(dest: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; rename it onto `dest` on success.

    The temporary file keeps `dest`'s suffix so that writers which pick a format
    from the extension (ffmpeg, matplotlib, numpy) still work.
    """
    dest = check_writable(dest, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}",
                                    dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs follow the umask
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(dest: str | Path, data: bytes, overwrite: bool = True) -> Path:
    with atomic_path(dest, overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | Path, text: str, overwrite: bool = True) -> Path:
    return write_bytes(dest, text.encode("utf-8"), overwrite)


def write_json(dest: str | Path, obj: Any, overwrite: bool = True) -> Path:
    return write_text(dest, json.dumps(obj, indent=2, sort_keys=False) + "\n", overwrite)
