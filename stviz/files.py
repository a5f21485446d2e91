"""Atomic output files: an interrupted run never leaves a half-written file,
and an existing file is only replaced when the caller says so.

Sets of files (what one `stviz explain` writes) are written into a temporary folder
and moved in together under an exclusive lock on the output folder (`output_set`),
so a folder always holds one run's complete set, even with two runs into one folder.
Every temporary file or folder is locked by its writer while it lives; one whose lock
is free was left by a killed run, and `clean_stale_temporaries` removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from stviz.errors import StvizError

TEMP_MARK = ".tmp"
# What `tempfile` makes of our prefixes and suffixes: ".NAME.<8 random chars>.tmp[.SUFFIX]";
# only such names are ever cleaned, never a user's own hidden files.
TEMP_NAME = re.compile(r"^\..*\.[a-z0-9_]{8}\.tmp(\.\w+)?$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def shown(path: str | Path) -> str:
    """A path as text that can always be printed (bytes that are not UTF-8 as \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_utf8(path: str | Path) -> Path:
    """Refuse a path whose name is not UTF-8: OpenCV crashes on it, and it cannot be
    printed or recorded in JSON as the same name."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise StvizError(f"{shown(path)}: the name is not valid UTF-8; rename it "
                         "(e.g. `convmv -f latin1 -t utf8`)") from None
    return Path(path)


def check_writable(dest: str | Path, overwrite: bool) -> Path:
    """Refuse to replace an existing file unless `overwrite` is set."""
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise StvizError(f"{dest}: file exists; pass --overwrite or choose another --out")
    return dest


def check_output_dir(out: str | Path) -> Path:
    """Check, before any work, that folder `out` can be created or written: its nearest
    existing ancestor must be a writable folder (tried by creating a file there)."""
    out = check_utf8(out)
    existing = out.absolute()
    try:
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            raise StvizError(f"{shown(existing)}: is a file, not a folder; pass another --out")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise StvizError(f"{shown(out)}: cannot write there ({exc.strerror or exc}); pass a "
                         "writable --out") from None
    return out


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on an existing folder (waits for other holders)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _locked_by_someone(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True  # gone, or not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def clean_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files and folders a killed run left in `folder` (those whose
    writer no longer holds their lock); returns what was removed."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in Path(folder).iterdir():
            if TEMP_NAME.match(entry.name) and not _locked_by_someone(entry):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(dest: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; rename it onto `dest` on success.

    The temporary file keeps `dest`'s suffix so that writers which pick a format
    from the extension (ffmpeg, matplotlib, numpy) still work.
    """
    dest = check_writable(dest, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f"{TEMP_MARK}{dest.suffix}",
                                    dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # alive: `clean_stale_temporaries` leaves it alone
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs follow the umask
        os.replace(tmp, dest)
    finally:
        os.close(fd)
        if tmp.exists():
            tmp.unlink()


def _remove(path: Path) -> None:
    """Remove a file or a whole folder, if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def output_set(out_dir: str | Path, names: Sequence[str], overwrite: bool = False,
               family: Iterable[str] = ()) -> Iterator[Path]:
    """Yield a temporary folder to write the files `names` into; when the block succeeds,
    move them all into `out_dir` under its lock, so the folder holds one run's complete
    set. Existing files of the set or its `family` (the names an earlier run may have
    written in other formats) are refused unless `overwrite`; with it, they are replaced
    or removed. On failure
    nothing of this run is left (nor `out_dir`, when this run created it)."""
    out = check_utf8(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".stviz.", suffix=TEMP_MARK, dir=out))
    fd = os.open(tmp, os.O_RDONLY)
    ok = False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield tmp
        with folder_lock(out):
            clean_stale_temporaries(out)
            for name in dict.fromkeys([*names, *family]):
                check_writable(out / name, overwrite)
                if name not in names:
                    _remove(out / name)
            for name in names:
                _remove(out / name)  # os.replace cannot replace a folder that holds files
                if (tmp / name).exists():  # planned but not made (e.g. no ground truth)
                    os.replace(tmp / name, out / name)
        ok = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(fd)
        if created and not ok:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty: another run may have written there meanwhile


def write_bytes(dest: str | Path, data: bytes, overwrite: bool = True) -> Path:
    with atomic_path(dest, overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | Path, text: str, overwrite: bool = True) -> Path:
    return write_bytes(dest, text.encode("utf-8"), overwrite)


def write_json(dest: str | Path, obj: Any, overwrite: bool = True) -> Path:
    return write_text(dest, json.dumps(obj, indent=2, sort_keys=False) + "\n", overwrite)
