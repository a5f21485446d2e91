"""Spatial localization metrics: does a saliency map point at the ground-truth boxes?

Every function is pure and works on a batch of annotated frames:

- `maps`: (N, h, w) float, one saliency map per frame. Maps at a lower resolution than
  the frames (7x7 features) are upsampled to `frame_size=(H, W)` bilinearly with
  half-pixel centres (`cv2.resize` INTER_LINEAR), in chunks, on all cores.
- `boxes`: the ground truth per frame, x1, y1, x2, y2 in frame pixels with x2/y2
  exclusive (a box covers pixels x1 <= x < x2): an (N, K, 4) array padded with NaN
  rows, or a sequence of N (K_i, 4) arrays. Several boxes per frame: a frame counts
  as correct when ANY ground-truth box is matched.
- Maps that cover only a crop of the frame (a model that saw a centre crop) are
  scored at the crop's size against `shift_boxes` of the frame's boxes: shifted by
  the crop's corner and not clipped, so relevance outside the crop counts as zero
  (the model never saw it). Every metric takes boxes reaching past the map: the
  pointing game measures the distance to the whole box, mass in box counts the map
  pixels inside it, IoUs use the whole box. Min-max normalizations (paper boxes,
  MaxBoxAccV2) and the pointing game's maximum are the crop's map's own.
- Box-based metrics find predicted boxes at `work_size=(h', w')` when given (then
  scale them to the frame) instead of at the frame size: far faster, within a few
  pixels of the exact boxes for upsampled feature maps.

Per-frame results are float arrays (1.0 hit / 0.0 miss for accuracies) with NaN for
frames that have no ground-truth box, so that `aggregate_per_class` can average per
class and then over classes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Boxes = np.ndarray | Sequence[np.ndarray]
Size = tuple[int, int]  # (height, width)
BoxConvention = Literal["stviz", "wsolevaluation"]
BOX_CONVENTIONS = ("stviz", "wsolevaluation")

_CHUNK = 32  # frames per work item: small enough to stay in cache at 320x240
_NO_BOX = np.full(4, np.nan)


# ---------------------------------------------------------------- boxes

def pad_boxes(boxes: Boxes, n: int | None = None) -> np.ndarray:
    """Per-frame boxes as one (N, K, 4) float64 array, missing rows NaN (K >= 1)."""
    if isinstance(boxes, np.ndarray) and boxes.ndim == 3:
        out = boxes.astype(np.float64)
    else:
        rows = [np.asarray(b, np.float64).reshape(-1, 4) for b in boxes]
        out = np.full((len(rows), max([1, *map(len, rows)]), 4), np.nan)
        for i, b in enumerate(rows):
            out[i, :len(b)] = b
    if n is not None and len(out) != n:
        raise ValueError(f"boxes for {len(out)} frames, maps for {n}")
    if out.shape[1] == 0:
        out = np.full((len(out), 1, 4), np.nan)
    return out


def shift_boxes(boxes: Boxes, origin: tuple[float, float]) -> np.ndarray:
    """Boxes in frame pixels as (N, K, 4) boxes in the pixels of a map whose top-left
    corner lies at `origin` = (x0, y0) of the frame (a crop): shifted, never clipped."""
    x0, y0 = origin
    return pad_boxes(boxes) - np.array([x0, y0, x0, y0], np.float64)


def iou(boxes_a: np.ndarray, boxes_b: np.ndarray, inclusive: bool = False) -> np.ndarray:
    """Intersection over union of boxes broadcast against each other (`...`, 4) -> (`...`).

    The overlap width and height are clamped at 0 EACH (the reference clamped their
    product, so two disjoint boxes with both sides negative scored an overlap).
    Zero-area unions give 0; NaN boxes give NaN. `inclusive`: x2/y2 are the last
    pixel, so every width and height gets +1 (the convention of `wsolevaluation`).
    """
    a, b = np.asarray(boxes_a, np.float64), np.asarray(boxes_b, np.float64)
    one = 1.0 if inclusive else 0.0
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + one, 0,
                None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + one, 0,
                None)
    inter = w * h
    union = ((a[..., 2] - a[..., 0] + one) * (a[..., 3] - a[..., 1] + one)
             + (b[..., 2] - b[..., 0] + one) * (b[..., 3] - b[..., 1] + one) - inter)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.where(np.isnan(union), np.nan, 0.0))


def best_iou(pred: np.ndarray, gt: Boxes) -> np.ndarray:
    """Per frame, the best IoU between any predicted and any ground-truth box.

    `pred` is (N, 4) or (N, P, 4) with NaN rows for "no box"; a frame without a
    prediction scores 0, a frame without ground truth NaN.
    """
    gt = pad_boxes(gt)
    pred = np.asarray(pred, np.float64)
    pred = pred.reshape(len(gt), -1, 4) if len(gt) else np.zeros((0, 1, 4))
    pairs = iou(pred[:, :, None], gt[:, None])
    out = np.where(np.isnan(pairs), 0.0, pairs).max(axis=(1, 2), initial=0.0)
    return np.where(_has_gt(gt), out, np.nan)


def _has_gt(gt: np.ndarray) -> np.ndarray:
    return ~np.isnan(gt).any(axis=-1).all(axis=-1)


def _hits(values: np.ndarray, threshold: float) -> np.ndarray:
    """1.0 where values >= threshold, 0.0 below, NaN stays NaN."""
    return np.where(np.isnan(values), np.nan, (values >= threshold).astype(np.float64))


# ---------------------------------------------------------------- per-frame metrics

def pointing_game(maps: np.ndarray, boxes: Boxes, tolerance: float = 15,
                  frame_size: Size | None = None) -> np.ndarray:
    """Hit when the map's maximum lies closer than `tolerance` pixels to a ground-truth box.

    The maximum is taken on the map at frame resolution (first pixel on ties); its
    distance to a box is the Euclidean distance from that pixel to the nearest pixel
    the box covers. A hit needs distance < tolerance, strictly, as TorchRay's
    acceptance disc (Zhang et al., "Top-down neural attention by excitation backprop",
    IJCV 2018; TorchRay `PointingGame`, tolerance 15 px), so a maximum exactly 15 px
    away misses. `tolerance=0` (not TorchRay's: there it never hits) means "inside a box".
    """
    gt = pad_boxes(boxes, len(maps))
    return _chunked(maps, _size(maps, frame_size),
                    lambda i, u: _pointing(u, gt[i:i + len(u)], tolerance))


def mass_in_box(maps: np.ndarray, boxes: Boxes, frame_size: Size | None = None) -> np.ndarray:
    """Share of the positive relevance (map clipped at 0) inside the union of the boxes.

    0 when the map has no positive mass. (The "energy-based pointing game" of
    Wang et al., "Score-CAM", CVPRW 2020, over all ground-truth boxes.)
    """
    gt = pad_boxes(boxes, len(maps))
    return _chunked(maps, _size(maps, frame_size), lambda i, u: _mass(u, gt[i:i + len(u)]))


def largest_region_boxes(maps: np.ndarray, tau: float = 0.2, frame_size: Size | None = None,
                         work_size: Size | None = None) -> np.ndarray:
    """(N, 4) bounding box of the largest 8-connected region where map > tau * max(map).

    Region size is its pixel count (`cv2.connectedComponentsWithStats`); a map whose
    maximum is <= 0 has no region and gives a NaN row. (The CAM box protocol of Zhou et
    al., "Learning deep features for discriminative localization", CVPR 2016.)
    """
    size = _size(maps, frame_size)
    work = work_size or size
    return _scaled(_chunked(maps, work, lambda _, u: _region_boxes(u, tau)), work, size)


def box_accuracy(maps: np.ndarray, boxes: Boxes, iou_threshold: float = 0.5, tau: float = 0.2,
                 frame_size: Size | None = None, work_size: Size | None = None) -> np.ndarray:
    """Hit when the `largest_region_boxes` box reaches `iou_threshold` with a GT box.

    Reported as `box_acc_iou30` / `box_acc_iou50` by `spatial_metrics`.
    """
    pred = largest_region_boxes(maps, tau, frame_size, work_size)
    return _hits(best_iou(pred, pad_boxes(boxes, len(maps))), iou_threshold)


def paper_boxes(maps: np.ndarray, frame_size: Size | None = None,
                work_size: Size | None = None) -> np.ndarray:
    """(N, 4) boxes by the reference's protocol (Meng et al., ICCVW 2019).

    Min-max normalize each map, upsample to the frame, scale to 0-255 (uint8,
    truncating), keep pixels > 200 (`cv2.threshold` THRESH_BINARY at 200), and take the
    bounding box of the external contour with the largest `cv2.contourArea` (first
    on ties). A constant map, or one with no pixel above 200, gives a NaN row.
    """
    maps = np.asarray(maps, np.float32)
    lo, hi = maps.min(axis=(1, 2)), maps.max(axis=(1, 2))
    size = _size(maps, frame_size)
    work = work_size or size
    return _scaled(_chunked(maps, work, lambda i, u: _paper_boxes(
        u, lo[i:i + len(u)], hi[i:i + len(u)])), work, size)


def paper_box_accuracy(maps: np.ndarray, boxes: Boxes, iou_threshold: float = 0.3,
                       frame_size: Size | None = None, work_size: Size | None = None
                       ) -> np.ndarray:
    """Hit when the `paper_boxes` box reaches `iou_threshold` (the reference used 0.2,
    later 0.3) with a GT box; IoU with each side clamped (see `iou`)."""
    pred = paper_boxes(maps, frame_size, work_size)
    return _hits(best_iou(pred, pad_boxes(boxes, len(maps))), iou_threshold)


# ---------------------------------------------------------------- MaxBoxAccV2

@dataclass
class MaxBoxAcc:
    """Result of `max_box_acc_v2`: `value` is the mean over IoU thresholds of the best
    accuracy over `taus`; `accuracy[t, j]` is the accuracy at `taus[t]` and `ious[j]`;
    `hits[n, t, j]` the per-frame outcome (NaN rows for frames without ground truth)."""

    value: float
    per_iou: dict[float, float]
    best_tau: dict[float, float]
    accuracy: np.ndarray
    hits: np.ndarray
    taus: np.ndarray
    ious: tuple[float, ...]


def max_box_acc_v2(maps: np.ndarray, boxes: Boxes, taus: np.ndarray | None = None,
                   ious: Sequence[float] = (0.3, 0.5, 0.7), labels: np.ndarray | None = None,
                   multi_contour: bool = True, frame_size: Size | None = None,
                   work_size: Size | None = None,
                   box_convention: BoxConvention = "stviz") -> MaxBoxAcc:
    """MaxBoxAccV2 of Choe et al., "Evaluating Weakly Supervised Object Localization
    Methods Right", CVPR 2020 (as in their `wsolevaluation` code).

    Per frame: upsample, min-max normalize the upsampled map, scale to uint8 (255 *
    map, truncated); for each tau in `taus` (default 0.00, 0.01, ..., 0.99) keep pixels
    > int(tau * max) and take the bounding boxes of ALL contours (`cv2.findContours`
    RETR_TREE, so hole borders count too; `multi_contour=False`: only the contour with
    the largest `cv2.contourArea`, their BoxAcc v1 box). The frame is a hit at (tau,
    IoU threshold) when any of those boxes reaches the IoU with any GT box.
    Dataset level: accuracy(tau) = mean of hits over frames (with `labels`: mean over
    classes of the per-class means), best over tau for each IoU threshold, averaged
    over `ious` (0.3, 0.5, 0.7).
    `box_convention` chooses how boxes are measured. "stviz" (the default): x2/y2 are
    exclusive, as every stviz box, so a box's width is x2 - x1. "wsolevaluation": their
    reference code's, to compare with published WSOL tables: predicted x2/y2 are clipped
    to W-1/H-1, every IoU adds +1 to widths and heights (ground-truth boxes are then
    read as inclusive too), and a threshold without any contour predicts the box
    [0, 0, 0, 0]. On small maps the two differ by up to a few hundredths.
    Another difference from `wsolevaluation`, in both conventions: bilinear rather than
    bicubic upsampling.
    Cost grows with len(taus) x pixels: with 100 taus about 7 ms per 320x240 frame and
    1 ms at `work_size=(60, 80)` on two cores; use the latter for 10,000 frames.
    """
    if box_convention not in BOX_CONVENTIONS:
        raise ValueError(f"box_convention {box_convention!r}: use one of {BOX_CONVENTIONS}")
    taus = np.arange(0, 1, 0.01) if taus is None else np.asarray(taus, np.float64)
    ious = tuple(float(t) for t in ious)
    gt = pad_boxes(boxes, len(maps))
    size = _size(maps, frame_size)
    work = work_size or size
    # wsolevaluation clips predicted x2, y2 to the last pixel of the frame
    clip = (np.array([size[1] - 1, size[0] - 1] * 2, np.float64)
            if box_convention == "wsolevaluation" else None)

    def chunk(i: int, u: np.ndarray) -> np.ndarray:
        return _multi_hits(u, gt[i:i + len(u)], taus, ious, multi_contour, _scale(work, size),
                           clip)

    return max_box_acc_from_hits(_chunked(maps, work, chunk), taus, ious, labels)


def max_box_acc_from_hits(hits: np.ndarray, taus: np.ndarray, ious: Sequence[float],
                          labels: np.ndarray | None = None) -> MaxBoxAcc:
    """The dataset-level step of `max_box_acc_v2` from per-frame `hits` (N, taus, ious),
    NaN rows for frames without ground truth: lets hits gathered over many runs (one
    per video) be aggregated once."""
    ious = tuple(float(t) for t in ious)
    groups = [np.ones(len(hits), bool)] if labels is None else \
        [np.asarray(labels) == c for c in np.unique(labels)]
    per_group = [np.nanmean(hits[g], axis=0) for g in groups
                 if (~np.isnan(hits[g][:, 0, 0])).any()]
    accuracy = np.mean(per_group, axis=0) if per_group else np.full((len(taus), len(ious)), np.nan)
    best = np.nanargmax(accuracy, axis=0) if per_group else np.zeros(len(ious), int)
    per_iou = {t: float(accuracy[best[j], j]) for j, t in enumerate(ious)}
    return MaxBoxAcc(value=float(np.mean(list(per_iou.values()))), per_iou=per_iou,
                     best_tau={t: float(taus[best[j]]) for j, t in enumerate(ious)},
                     accuracy=accuracy, hits=hits, taus=taus, ious=ious)


# ---------------------------------------------------------------- all at once

def spatial_metrics(maps: np.ndarray, boxes: Boxes, frame_size: Size | None = None,
                    work_size: Size | None = None, tolerance: float = 15, tau: float = 0.2
                    ) -> dict[str, np.ndarray]:
    """Every per-frame spatial metric, upsampling each map once (twice with `work_size`).

    Keys: `pointing_game`, `mass_in_box`, `box_iou` and `box_acc_iou30`/`box_acc_iou50`
    (largest region above tau * max), `paper_box_iou` and `paper_box_acc_iou30`
    (the reference's protocol). Same definitions as the single functions.
    """
    maps = np.asarray(maps, np.float32)
    gt = pad_boxes(boxes, len(maps))
    size = _size(maps, frame_size)
    lo, hi = maps.min(axis=(1, 2)), maps.max(axis=(1, 2))

    def boxes_at(i: int, u: np.ndarray) -> np.ndarray:
        return np.concatenate([_region_boxes(u, tau),
                               _paper_boxes(u, lo[i:i + len(u)], hi[i:i + len(u)])], axis=1)

    def at_frame(i: int, u: np.ndarray) -> np.ndarray:
        parts = [_pointing(u, gt[i:i + len(u)], tolerance)[:, None],
                 _mass(u, gt[i:i + len(u)])[:, None]]
        if work_size is None:
            parts.append(boxes_at(i, u))
        return np.concatenate(parts, axis=1)

    per_frame = _chunked(maps, size, at_frame)
    pred = per_frame[:, 2:] if work_size is None else \
        _scaled(_chunked(maps, work_size, boxes_at).reshape(-1, 4), work_size, size
                ).reshape(-1, 8)
    region, paper = best_iou(pred[:, :4], gt), best_iou(pred[:, 4:], gt)
    return {"pointing_game": per_frame[:, 0], "mass_in_box": per_frame[:, 1],
            "box_iou": region, "box_acc_iou30": _hits(region, 0.3),
            "box_acc_iou50": _hits(region, 0.5), "paper_box_iou": paper,
            "paper_box_acc_iou30": _hits(paper, 0.3)}


def aggregate_per_class(values: np.ndarray, labels: np.ndarray) -> tuple[float, dict[int, float]]:
    """Mean of `values` per class (NaN ignored), then over the classes that have any.

    Class-balanced, so a class with many annotated frames does not dominate.
    """
    values, labels = np.asarray(values, np.float64), np.asarray(labels)
    per_class = {}
    for c in np.unique(labels):
        mine = values[labels == c]
        if np.isfinite(mine).any():
            per_class[int(c)] = float(np.nanmean(mine))
    return (float(np.mean(list(per_class.values()))) if per_class else float("nan")), per_class


# ---------------------------------------------------------------- kernels (one chunk)

def _pointing(u: np.ndarray, gt: np.ndarray, tolerance: float) -> np.ndarray:
    flat = u.reshape(len(u), u.shape[1] * u.shape[2]).argmax(axis=1)
    py, px = np.divmod(flat, u.shape[2])
    dx = np.maximum(np.maximum(gt[..., 0] - px[:, None], px[:, None] - (gt[..., 2] - 1)), 0)
    dy = np.maximum(np.maximum(gt[..., 1] - py[:, None], py[:, None] - (gt[..., 3] - 1)), 0)
    distance = np.hypot(dx, dy)
    near = distance < tolerance if tolerance > 0 else distance == 0
    hit = near.any(axis=1)  # NaN rows compare False
    return np.where(_has_gt(gt), hit.astype(np.float64), np.nan)


def _mass(u: np.ndarray, gt: np.ndarray) -> np.ndarray:
    pos = u if u.min(initial=0) >= 0 else np.maximum(u, 0)
    total = pos.sum(axis=(1, 2), dtype=np.float32).astype(np.float64)
    share = np.full(len(u), np.nan)
    # pixel x is inside when x1 <= x < x2: columns ceil(x1) .. ceil(x2) - 1
    edges = np.ceil(np.nan_to_num(gt, nan=0)).astype(np.int64).clip(0, None)
    for n, present in enumerate(~np.isnan(gt).any(axis=2)):
        boxes = edges[n, present]
        if not len(boxes):
            continue
        if len(boxes) == 1:
            x1, y1, x2, y2 = boxes[0]
            inside = pos[n, y1:y2, x1:x2].sum(dtype=np.float64)
        else:
            union = np.zeros(u.shape[1:], np.float32)
            for x1, y1, x2, y2 in boxes:
                union[y1:y2, x1:x2] = 1
            inside = float(np.vdot(union, pos[n]))
        share[n] = inside / total[n] if total[n] > 0 else 0.0
    return share


def _region_boxes(u: np.ndarray, tau: float) -> np.ndarray:
    out = np.full((len(u), 4), np.nan)
    for n, m in enumerate(u):
        peak = m.max()
        if not peak > 0:
            continue
        mask = (m > tau * peak).view(np.uint8)
        # Same result as connectedComponentsWithStats, whose stats are 4x slower here.
        count, labels = cv2.connectedComponents(mask, connectivity=8)
        if count > 2:
            largest = 1 + np.argmax(np.bincount(labels.ravel(), minlength=count)[1:])
            mask = (labels == largest).view(np.uint8)
        if count > 1:
            x, y, w, h = cv2.boundingRect(mask)
            out[n] = x, y, x + w, y + h
    return out


def _paper_boxes(u: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    out = np.full((len(u), 4), np.nan)
    span = hi.astype(np.float64) - lo
    # uint8(255 * (u - lo) / span) > 200  <=>  u >= lo + span * 201 / 255: one pass, no copy
    cut = np.where(span > 0, lo + span * (201 / 255), np.inf)
    for n, mask in enumerate((u >= cut[:, None, None]).view(np.uint8)):
        contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[-2]
        if contours:
            x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
            out[n] = x, y, x + w, y + h
    return out


def _multi_hits(u: np.ndarray, gt: np.ndarray, taus: np.ndarray, ious: tuple[float, ...],
                multi_contour: bool, scale: np.ndarray, clip: np.ndarray | None = None
                ) -> np.ndarray:
    """(n, len(taus), len(ious)) hits of one chunk (see `max_box_acc_v2`); `clip` (the
    frame's last x, y, x, y): the wsolevaluation convention.

    All thresholds of a frame are searched in ONE `cv2.findContours` call: the binary
    masks are stacked into a strip with a blank row between them, so no contour crosses
    from one threshold to the next and each contour's row tells its threshold.
    """
    height, width = u.shape[1:]
    out = np.zeros((len(u), len(taus), len(ious)))
    strip = np.zeros((len(taus), height + 1, width), np.uint8)
    for n, m in enumerate(u):
        lo, hi = m.min(), m.max()
        q = ((m - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(m)).astype(np.uint8)
        cut = (taus * int(q.max())).astype(np.int64)  # int(tau * max), as wsolevaluation
        np.greater(q, cut[:, None, None], out=strip[:, :height].view(bool))
        contours = cv2.findContours(strip.reshape(-1, width), cv2.RETR_TREE,
                                    cv2.CHAIN_APPROX_SIMPLE)[-2]
        per_level = np.full(len(taus), -1.0)
        if clip is not None:  # their box where no contour is found: [0, 0, 0, 0]
            per_level[:] = np.nan_to_num(iou(np.zeros(4), gt[n], inclusive=True)).max()
        if not contours:
            out[n] = per_level[:, None] >= np.array(ious)
            continue
        rects = _bounding_rects(contours)
        level = rects[:, 1].astype(np.int64) // (height + 1)
        rects[:, [1, 3]] -= (level * (height + 1))[:, None]
        if not multi_contour:  # keep the largest contour of each threshold (first on ties)
            area = np.array([cv2.contourArea(c) for c in contours])
            order = np.lexsort((np.arange(len(area)), -area, level))
            keep = order[np.r_[True, level[order][1:] != level[order][:-1]]]
            rects, level = rects[keep], level[keep]
        rects = rects * scale
        if clip is not None:
            rects = np.minimum(rects, clip)
            per_level[np.unique(level)] = -1.0  # levels with a contour use only their boxes
        best = np.nan_to_num(iou(rects[:, None], gt[n][None], inclusive=clip is not None)
                             ).max(axis=1)
        np.maximum.at(per_level, level, best)
        out[n] = per_level[:, None] >= np.array(ious)
    out[~_has_gt(gt)] = np.nan
    return out


def _bounding_rects(contours: Sequence[np.ndarray]) -> np.ndarray:
    """x1, y1, x2, y2 (exclusive) of each contour: `cv2.boundingRect`, vectorized."""
    points = np.concatenate(contours).reshape(-1, 2)
    starts = np.cumsum([0, *(len(c) for c in contours[:-1])])
    low = np.minimum.reduceat(points, starts)
    high = np.maximum.reduceat(points, starts) + 1
    return np.concatenate([low, high], axis=1).astype(np.float64)


# ---------------------------------------------------------------- plumbing

def _size(maps: np.ndarray, frame_size: Size | None) -> Size:
    return tuple(frame_size) if frame_size is not None else tuple(np.shape(maps)[1:3])


def _scale(work: Size, size: Size) -> np.ndarray:
    """x1, y1, x2, y2 factors from the working resolution to frame pixels."""
    return np.array([size[1] / work[1], size[0] / work[0]] * 2)


def _scaled(boxes: np.ndarray, work: Size, size: Size) -> np.ndarray:
    """Boxes found at the working resolution, in frame pixels."""
    return boxes if tuple(work) == tuple(size) else boxes * _scale(work, size)


def _chunked(maps: np.ndarray, size: Size, fn: Callable[[int, np.ndarray], np.ndarray]
             ) -> np.ndarray:
    """Apply `fn(start, chunk)` to chunks of the maps resized to `size`; concatenate.

    Chunks run on a thread pool (OpenCV and numpy release the GIL); results keep order.
    """
    maps = np.asarray(maps, np.float32)
    height, width = size

    def run(start: int) -> np.ndarray:
        part = maps[start:start + _CHUNK]
        if part.shape[1:] != (height, width):
            part = np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR)
                             for m in part] or [np.zeros((0, height, width), np.float32)])
        return fn(start, part.reshape(-1, height, width))

    starts = range(0, max(len(maps), 1), _CHUNK)  # no maps: one empty chunk, right shapes
    with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1)) as pool:
        return np.concatenate(list(pool.map(run, starts)))
