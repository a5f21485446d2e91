"""Temporal localization metrics: does a relevance curve over frames find the action?

Inputs, shared by every function:

- `relevance`: a curve (T,) over the frames a model saw (temporal attention, or a
  map's per-frame mass), or a batch (V, T) of them; higher = more relevant.
- `gt`: the ground truth over the same T positions, either a mask of the same shape
  (`VideoAnnotation.frame_mask(sampled_frames)` gives one), or segments `[start, end)`
  in position units (per video for a batch): position i is inside when start <= i < end.

Functions of one video return a float (or a bool); given a batch they return one
value per video. NaN means "not defined here" (a video without ground truth) and is
left out by `np.nanmean`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Segments = Sequence[tuple[float, float]] | np.ndarray
TIOUS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # THUMOS'14 detection


def mask_from_segments(segments: Segments, frames: int | np.ndarray) -> np.ndarray:
    """Boolean mask over `frames` (a count T, or the frame numbers of T samples):
    position i is True when start <= frames[i] < end for any segment."""
    index = np.arange(frames) if np.ndim(frames) == 0 else np.asarray(frames)
    mask = np.zeros(index.shape, bool)
    for start, end in np.asarray(segments, np.float64).reshape(-1, 2):
        mask |= (index >= start) & (index < end)
    return mask


def segments_from_mask(mask: np.ndarray) -> np.ndarray:
    """Runs of True in a 1-D mask as an (R, 2) int array of `[start, end)`."""
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges.reshape(-1, 2)


def mass_in_segment(relevance: np.ndarray, gt: np.ndarray | Segments) -> float | np.ndarray:
    """Share of the positive relevance (curve clipped at 0) on ground-truth frames.

    0 when the curve has no positive mass; NaN without ground truth.
    """
    rel, mask, single = _batch(relevance, gt)
    pos = np.maximum(rel, 0)
    total = pos.sum(axis=1)
    share = np.divide((pos * mask).sum(axis=1), total, out=np.zeros(len(rel)), where=total > 0)
    return _out(np.where(mask.any(axis=1), share, np.nan), single)


def temporal_ap(relevance: np.ndarray, gt: np.ndarray | Segments) -> float | np.ndarray:
    """Frame-level average precision of the curve as a score for "inside the action".

    AP = sum_n (R_n - R_{n-1}) P_n over the distinct score values in decreasing order
    (no interpolation; tied frames enter together, as scikit-learn's
    `average_precision_score`). NaN without ground-truth frames.
    """
    rel, mask, single = _batch(relevance, gt)
    return _out(np.array([_ap(r, m) for r, m in zip(rel, mask)]), single)


def _ap(score: np.ndarray, positive: np.ndarray) -> float:
    if not positive.any():
        return float("nan")
    order = np.argsort(-score, kind="stable")
    score, positive = score[order], positive[order]
    last = np.r_[score[1:] != score[:-1], True]  # the last frame of each tie group
    tp = np.cumsum(positive)[last]
    seen = np.arange(1, len(score) + 1)[last]
    recall = tp / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0) * tp / seen))


def selected_frames(relevance: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Frames whose share of the curve's total exceeds `threshold` (default 1/T).

    On a curve normalized to sum 1 (softmax attention) that is weight > threshold;
    the default keeps the frames above the uniform weight, i.e. above the clip mean.
    """
    rel = np.asarray(relevance, np.float64)
    threshold = 1 / rel.shape[-1] if threshold is None else threshold
    return rel > threshold * rel.sum(axis=-1, keepdims=True)


def temporal_iou(relevance: np.ndarray, gt: np.ndarray | Segments, threshold: float | None = None,
                 longest: bool = False) -> float | np.ndarray:
    """tIoU (over frames) between the `selected_frames` and the ground-truth frames.

    The prediction is the union of the selected frames, or with `longest=True` only
    their longest run (first on ties). Nothing selected gives 0; NaN without ground truth.
    """
    rel, mask, single = _batch(relevance, gt)
    pred = selected_frames(rel, threshold)
    if longest:
        pred = np.array([_longest_run(p) for p in pred]).reshape(pred.shape)
    union = (pred | mask).sum(axis=1)
    out = np.divide((pred & mask).sum(axis=1), union, out=np.zeros(len(rel)), where=union > 0)
    return _out(np.where(mask.any(axis=1), out, np.nan), single)


def _longest_run(selected: np.ndarray) -> np.ndarray:
    runs = segments_from_mask(selected)
    out = np.zeros_like(selected)
    if len(runs):
        start, end = runs[np.argmax(runs[:, 1] - runs[:, 0])]
        out[start:end] = True
    return out


def paper_coverage(relevance: np.ndarray, gt: np.ndarray | Segments,
                   threshold: float | None = None) -> bool | np.ndarray:
    """The reference's temporal figure (Meng et al., ICCVW 2019), named for what it is.

    A video succeeds when its `selected_frames` (weight > `threshold`, default the
    uniform weight 1/T) cover MORE than half of its ground-truth frames. This is
    coverage, not IoU: selecting every frame always succeeds. A video without
    ground-truth frames fails. Average the booleans over videos for the figure.
    """
    rel, mask, single = _batch(relevance, gt)
    covered = (selected_frames(rel, threshold) & mask).sum(axis=1)
    out = covered * 2 > mask.sum(axis=1)
    out &= mask.any(axis=1)
    return bool(out[0]) if single else out


# ---------------------------------------------------------------- detection mAP

def segments_from_curve(relevance: np.ndarray, thresholds: Sequence[float] | None = None,
                        nms_tiou: float | None = None) -> np.ndarray:
    """Action proposals from one curve: (P, 3) rows `start, end, score`, `[start, end)`.

    For each threshold (default 0.1, 0.2, ..., 0.9) on the min-max normalized curve,
    every run of positions above it is a proposal; its score is the mean relevance
    inside divided by the clip mean (1 = no better than uniform, comparable across
    videos). Identical runs from several thresholds count once. With `nms_tiou`,
    greedy non-maximum suppression drops a proposal overlapping a better one by more.
    """
    rel = np.asarray(relevance, np.float64)
    thresholds = np.arange(1, 10) / 10 if thresholds is None else np.asarray(thresholds)
    lo, hi = rel.min(), rel.max()
    norm = (rel - lo) / (hi - lo) if hi > lo else np.zeros_like(rel)
    runs = np.unique(np.concatenate([segments_from_mask(norm > t) for t in thresholds]
                                    + [np.zeros((0, 2), np.int64)]), axis=0)
    mean = rel.mean()
    score = np.array([rel[s:e].mean() for s, e in runs]) / (mean if mean != 0 else 1)
    order = np.argsort(-score, kind="stable")
    proposals = np.column_stack([runs[order], score[order]]).astype(np.float64)
    if nms_tiou is None:
        return proposals
    keep: list[int] = []
    for i in range(len(proposals)):
        if not keep or segment_iou(proposals[i:i + 1, :2], proposals[keep, :2]).max() <= nms_tiou:
            keep.append(i)
    return proposals[keep]


def segment_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """tIoU of every segment in `a` (P, 2) with every one in `b` (G, 2) -> (P, G)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 2), np.asarray(b, np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1])
                    - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def tmap(proposals: Sequence[np.ndarray], gt_segments: Sequence[Segments],
         tious: Sequence[float] = TIOUS,
         labels: Sequence[int] | None = None) -> tuple[float, dict[float, float]]:
    """Detection mAP over tIoU thresholds, THUMOS'14 style.

    `proposals[v]` is (P, 3) `start, end, score` for video v (`segments_from_curve`),
    `gt_segments[v]` its ground truth in the same units. All proposals are ranked by
    score; each is a true positive when its best still-unmatched ground truth in the
    same video reaches the tIoU (a ground truth matches at most once). AP =
    sum of the precision at each true positive / number of ground truths (no
    interpolation, as THUMOS'14's `TH14evalDet`). Without `labels` the proposals of a
    video are taken to be for its ground-truth class and one AP is computed over all
    videos; with `labels` (one class per video) AP is computed per class and averaged.
    Returns (mean over tIoUs, {tIoU: mAP}).
    """
    if len(proposals) != len(gt_segments):
        raise ValueError(f"{len(proposals)} proposal lists for {len(gt_segments)} videos")
    labels = np.zeros(len(proposals), int) if labels is None else np.asarray(labels)
    per_class = [_ap_detection([proposals[v] for v in np.flatnonzero(labels == c)],
                               [gt_segments[v] for v in np.flatnonzero(labels == c)], tious)
                 for c in np.unique(labels)]
    per_tiou = np.nanmean(per_class, axis=0) if per_class else np.full(len(tious), np.nan)
    return float(np.mean(per_tiou)), {float(t): float(a) for t, a in zip(tious, per_tiou)}


def _ap_detection(proposals: list[np.ndarray], gt_segments: list[Segments],
                  tious: Sequence[float]) -> np.ndarray:
    gts = [np.asarray(g, np.float64).reshape(-1, 2) for g in gt_segments]
    total = sum(len(g) for g in gts)
    props = [np.asarray(p, np.float64).reshape(-1, 3) for p in proposals]
    video = np.repeat(np.arange(len(props)), [len(p) for p in props])
    rows = np.concatenate([*props, np.zeros((0, 3))])
    order = np.argsort(-rows[:, 2], kind="stable")
    overlaps = [segment_iou(rows[i, :2], gts[video[i]])[0] for i in order]
    out = np.full(len(tious), np.nan)
    if total == 0:
        return out
    for k, tiou in enumerate(tious):
        matched = [np.zeros(len(g), bool) for g in gts]
        tp = np.zeros(len(order))
        for rank, i in enumerate(order):
            ious = np.where(matched[video[i]], -1.0, overlaps[rank])
            if len(ious) and ious.max() >= tiou:
                matched[video[i]][np.argmax(ious)] = True
                tp[rank] = 1
        precision = np.cumsum(tp) / np.arange(1, len(tp) + 1)
        out[k] = float(np.sum(precision * tp) / total)
    return out


# ---------------------------------------------------------------- plumbing

def _batch(relevance: np.ndarray, gt: np.ndarray | Segments
           ) -> tuple[np.ndarray, np.ndarray, bool]:
    """(V, T) curves, (V, T) bool ground truth, and whether the input was one curve."""
    rel = np.asarray(relevance, np.float64)
    single = rel.ndim == 1
    rel = rel.reshape(-1, rel.shape[-1])
    arr = gt if isinstance(gt, np.ndarray) else np.asarray(gt, dtype=object)
    if arr.shape == ((rel.shape[1],) if single else rel.shape):  # a mask, not segments
        mask = np.asarray(gt, np.float64).astype(bool).reshape(rel.shape)
    else:
        per_video = [gt] if single else gt
        mask = np.array([mask_from_segments(g, rel.shape[1]) for g in per_video]
                        ).reshape(rel.shape)
    return rel, mask, single


def _out(values: np.ndarray, single: bool) -> float | np.ndarray:
    return float(values[0]) if single else values
