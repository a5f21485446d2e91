"""Do two explanations agree? Rank correlation of their temporal curves ("when") and
overlap of their most relevant spatial cells ("where"). Pure functions over arrays,
except `agreement_table`, which pairs up `Explanation`s."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from stviz.errors import StvizError
from stviz.explain.explanation import Explanation

TOP_FRACTION = 0.15


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two temporal curves (ties get average ranks).

    NaN when either curve is constant or shorter than 2: a constant curve has no
    ranking (e.g. frame-ablation of a model that ignores time), so the correlation is
    undefined rather than 0. `agreement_table` reports it as None.
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"curves of different lengths: {len(a)} and {len(b)}")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


def top_region(values: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """Boolean mask of a map's top `fraction` of cells: those >= the k-th largest value,
    k = round(fraction * cells) (at least 1). Cells tied at the threshold all belong, so
    a flat map's region is the whole map (no spatial preference), never an arbitrary
    subset."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    flat = np.asarray(values, np.float64).ravel()
    k = max(1, math.floor(fraction * flat.size + 0.5))
    threshold = np.partition(flat, flat.size - k)[flat.size - k]
    return np.asarray(values) >= threshold


def top_region_iou(map_a: np.ndarray, map_b: np.ndarray, fraction: float = TOP_FRACTION
                   ) -> float:
    """IoU of the top-`fraction` regions of two maps (h, w) or map stacks (T, h, w),
    per frame, averaged over frames. Maps must share the grid (all stviz methods do)."""
    a, b = np.asarray(map_a), np.asarray(map_b)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ValueError(f"maps must both be (h, w) or (T, h, w), got {a.shape} and {b.shape}")
    if a.ndim == 2:
        a, b = a[None], b[None]
    ious = []
    for fa, fb in zip(a, b):
        ra, rb = top_region(fa, fraction), top_region(fb, fraction)
        ious.append((ra & rb).sum() / (ra | rb).sum())
    return float(np.mean(ious))


def agreement_table(expls: Sequence[Explanation], fraction: float = TOP_FRACTION
                    ) -> dict[str, Any]:
    """Spearman of temporal curves and top-region IoU of maps for every pair, on the
    frames all explanations share. JSON-ready: an undefined correlation is None."""
    if len(expls) < 2:
        raise ValueError("need at least two explanations to compare")
    common = expls[0].frame_indices
    for e in expls[1:]:
        common = np.intersect1d(common, e.frame_indices)
    if common.size == 0:
        raise StvizError("the explanations share no frame; explain the same frames "
                         "(e.g. with compare_methods) before comparing them")
    names = [e.method for e in expls]
    names = [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]
    rows = [np.searchsorted(e.frame_indices, common) for e in expls]
    pairs = []
    for i in range(len(expls)):
        for j in range(i + 1, len(expls)):
            a, b = expls[i], expls[j]
            rho = spearman(a.temporal[rows[i]], b.temporal[rows[j]])
            pairs.append({
                "a": names[i], "b": names[j],
                "spearman": None if math.isnan(rho) else round(rho, 6),
                "top_region_iou": round(top_region_iou(a.spatial[rows[i]], b.spatial[rows[j]],
                                                       fraction), 6),
            })
    return {"methods": names, "frames": [int(f) for f in common], "fraction": fraction,
            "pairs": pairs}
