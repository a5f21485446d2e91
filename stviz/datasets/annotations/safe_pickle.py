"""Load untrusted pickles without running anything they name.

A pickle can call any importable function while it loads (`os.system` is the
classic), so annotation pickles are read with an unpickler whose `find_class`
admits only what numpy arrays, numpy scalars and plain containers need. Every
other global is refused before it is imported, let alone called.
"""

from __future__ import annotations

import codecs
import collections
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from stviz.errors import StvizError

try:  # numpy >= 2 moved the pickle helpers to numpy._core; pickles name either place
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

_ALLOWED: dict[tuple[str, str], Any] = {
    **{(f"{pkg}.multiarray", "_reconstruct"): _multiarray._reconstruct  # ndarray.__reduce__
       for pkg in ("numpy.core", "numpy._core")},
    **{(f"{pkg}.multiarray", "scalar"): _multiarray.scalar  # numpy scalars: np.uint8(164)
       for pkg in ("numpy.core", "numpy._core")},
    **{(f"{pkg}.numeric", "_frombuffer"): _numeric._frombuffer  # arrays in protocol 5
       for pkg in ("numpy.core", "numpy._core")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # bytes pickled with protocol < 3
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{(module, t.__name__): t  # __builtin__: Python 2, and Python 3 with protocol < 3
       for module in ("builtins", "__builtin__")
       for t in (set, frozenset, list, dict, tuple, bytearray, complex, slice)},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, source: Path):
        # latin1 decodes Python 2 `str` losslessly, which is what numpy's arrays need.
        super().__init__(io.BytesIO(data), encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise StvizError(
                f"{self._source}: pickle refers to {module}.{name}, which stviz refuses to load; "
                "only numpy arrays, numbers, strings and containers are allowed: re-save the "
                "annotations with those, or as JSON") from None


def load_pickle(path: str | Path, data: bytes | None = None) -> Any:
    """Unpickle `path` (or its already-read bytes `data`), admitting only the allowlist."""
    path = Path(path)
    if data is None:
        data = path.read_bytes()
    try:
        return _RestrictedUnpickler(data, path).load()
    except StvizError:
        raise
    except Exception as exc:  # a damaged pickle raises any of a dozen types
        raise StvizError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); "
                         "check that the file is complete") from exc
