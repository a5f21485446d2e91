"""Faithfulness: does the model's score follow what the explanation ranks highest?

Deletion removes the most relevant content first and watches the target score fall
(lower area under the curve = more faithful); insertion starts from nothing and
reveals the most relevant content first (higher area = more faithful). Petsiuk et
al., "RISE: Randomized Input Sampling for Explanation of Black-box Models", BMVC 2018.

Every function is pure over a scoring callable, so any model fits:

- `batch_size=None`: `score_fn(clip)` takes one clip (T, H, W, 3), uint8 or float like
  the input frames, and returns the probability of the target class;
- `batch_size=B`: `score_fn(clips)` takes (b, T, H, W, 3) with b <= B and returns (b,).

Ranking ties (equal relevance) are broken by position (raster order, then time), so
curves are deterministic. "Remove a fraction f of n items" removes the top
floor(f * n + 0.5) of them.

Where the model saw only a crop of the frame, `region=(x0, y0, x1, y1)` (frame
pixels, x1/y1 exclusive; `Explanation.region`) is where the maps lie: only its pixels
are ranked and perturbed, and fractions are of its pixels, since pixels the model
never sees cannot change its score. The rest of every frame stays as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

ScoreFn = Callable[[np.ndarray], "float | np.ndarray"]
Region = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels


def auc(fractions: np.ndarray, scores: np.ndarray) -> float:
    """Area under a curve by the trapezoid rule."""
    x, y = np.asarray(fractions, np.float64), np.asarray(scores, np.float64)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def blurred(frames: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """Each frame Gaussian-blurred (default sigma: a tenth of the longer side), same dtype.

    A large blur keeps the colours and the coarse layout but not the shapes, so a
    "removed" region stays in distribution better than a black one.
    """
    frames = np.asarray(frames)
    sigma = max(frames.shape[1:3]) / 10 if sigma is None else sigma
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])


def deletion_curve(frames: np.ndarray, maps: np.ndarray, score_fn: ScoreFn, steps: int = 20,
                   baseline: np.ndarray | None = None, batch_size: int | None = None,
                   region: Region | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scores after replacing the top fraction of each frame's pixels by the baseline.

    `maps` (T, h, w) are upsampled bilinearly to the frame size (to `region`'s size when
    given: see the module doc) and rank the pixels of each frame separately; the same
    fraction is removed from every frame. Fractions are 0, 1/steps, ..., 1; `baseline`
    defaults to `blurred(frames)`. Returns (fractions, scores).
    """
    return _spatial(frames, maps, score_fn, steps, baseline, batch_size, region, insert=False)


def insertion_curve(frames: np.ndarray, maps: np.ndarray, score_fn: ScoreFn, steps: int = 20,
                    baseline: np.ndarray | None = None, batch_size: int | None = None,
                    region: Region | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scores after revealing the top fraction of each frame's pixels on the baseline
    (default `blurred(frames)`); see `deletion_curve`."""
    return _spatial(frames, maps, score_fn, steps, baseline, batch_size, region, insert=True)


def deletion_auc(frames: np.ndarray, maps: np.ndarray, score_fn: ScoreFn, **options: Any
                 ) -> float:
    """`auc` of the `deletion_curve` (lower is more faithful)."""
    return auc(*deletion_curve(frames, maps, score_fn, **options))


def insertion_auc(frames: np.ndarray, maps: np.ndarray, score_fn: ScoreFn, **options: Any
                  ) -> float:
    """`auc` of the `insertion_curve` (higher is more faithful)."""
    return auc(*insertion_curve(frames, maps, score_fn, **options))


def temporal_deletion_curve(frames: np.ndarray, relevance: np.ndarray, score_fn: ScoreFn,
                            baseline: np.ndarray | None = None, batch_size: int | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Scores after replacing the k most relevant whole frames, k = 0..T.

    A removed frame becomes the clip's mean frame (default `baseline`): that erases
    what happens at that moment while keeping the scene, whereas a blurred frame
    would still carry the motion. Returns (k / T, scores).
    """
    return _temporal(frames, relevance, score_fn, baseline, batch_size, insert=False)


def temporal_insertion_curve(frames: np.ndarray, relevance: np.ndarray, score_fn: ScoreFn,
                             baseline: np.ndarray | None = None, batch_size: int | None = None
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Scores after putting back the k most relevant frames into a clip of mean frames;
    see `temporal_deletion_curve`."""
    return _temporal(frames, relevance, score_fn, baseline, batch_size, insert=True)


# ---------------------------------------------------------------- shared machinery

def _spatial(frames: np.ndarray, maps: np.ndarray, score_fn: ScoreFn, steps: int,
             baseline: np.ndarray | None, batch_size: int | None, region: Region | None,
             insert: bool) -> tuple[np.ndarray, np.ndarray]:
    frames = np.asarray(frames)
    n_t, height, width = frames.shape[:3]
    maps = np.asarray(maps, np.float32)
    if len(maps) != n_t:
        raise ValueError(f"{len(maps)} maps for {n_t} frames")
    x0, y0, x1, y1 = region or (0, 0, width, height)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"region {region} is not inside the {width}x{height} frames")
    if maps.shape[1:] != (y1 - y0, x1 - x0):
        maps = np.stack([cv2.resize(m, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
                         for m in maps])
    n = (y1 - y0) * (x1 - x0)
    # Pixels outside the region are never perturbed: ranked before all others when
    # inserting (always the frames'), after all others when deleting.
    rank = np.full((n_t, height, width), -1 if insert else n, np.int64)
    rank[:, y0:y1, x0:x1] = _rank(maps.reshape(n_t, -1)).reshape(maps.shape)
    rank = rank.reshape(n_t, height, width, *[1] * (frames.ndim - 3))
    base = blurred(frames) if baseline is None else np.asarray(baseline, frames.dtype)
    fractions = np.linspace(0, 1, steps + 1)
    return fractions, _scores(frames, base, rank, n, fractions, score_fn, batch_size, insert)


def _temporal(frames: np.ndarray, relevance: np.ndarray, score_fn: ScoreFn,
              baseline: np.ndarray | None, batch_size: int | None, insert: bool
              ) -> tuple[np.ndarray, np.ndarray]:
    frames = np.asarray(frames)
    n_t = len(frames)
    relevance = np.asarray(relevance, np.float64).ravel()
    if len(relevance) != n_t:
        raise ValueError(f"{len(relevance)} relevance values for {n_t} frames")
    if baseline is None:
        mean = frames.mean(axis=0)
        mean = np.rint(mean) if np.issubdtype(frames.dtype, np.integer) else mean
        baseline = np.broadcast_to(mean.astype(frames.dtype), frames.shape)
    rank = _rank(relevance[None])[0].reshape(n_t, *[1] * (frames.ndim - 1))
    fractions = np.arange(n_t + 1) / n_t
    return fractions, _scores(frames, np.asarray(baseline, frames.dtype), rank, n_t, fractions,
                              score_fn, batch_size, insert)


def _rank(values: np.ndarray) -> np.ndarray:
    """Per row, each element's rank by decreasing value (0 = most relevant; ties by index)."""
    order = np.argsort(-values, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(values.shape[1])[None], axis=1)
    return rank


def _scores(frames: np.ndarray, baseline: np.ndarray, rank: np.ndarray, n: int,
            fractions: np.ndarray, score_fn: ScoreFn, batch_size: int | None, insert: bool
            ) -> np.ndarray:
    """Score the clip with the top-k items (rank < k) from the frames (insert) or the
    baseline (delete) and the rest from the other, for each fraction."""
    counts = np.floor(fractions * n + 0.5).astype(np.int64)
    first, second = (frames, baseline) if insert else (baseline, frames)

    def clip(k: int) -> np.ndarray:
        return np.where(rank < k, first, second)

    if batch_size is None:
        return np.array([float(score_fn(clip(k))) for k in counts])
    out = []
    for start in range(0, len(counts), batch_size):
        batch = np.stack([clip(k) for k in counts[start:start + batch_size]])
        out.append(np.asarray(score_fn(batch), np.float64).reshape(len(batch)))
    return np.concatenate(out)
