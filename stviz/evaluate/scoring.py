"""Localization scores of one explanation against its video's ground truth, and their
aggregation over a data set: the pure part of `stviz localize-eval`.

`score_video` turns one `Explanation` into a `VideoRecord` of per-frame spatial results
(sampled frames with a ground-truth box), per-video temporal results and faithfulness
curves; records are small, so they are what a run caches. `aggregate` turns the records
of one method into one value per metric, class-balanced: averaged per class (the
video's ground-truth class), then over the classes.

Metric names (`METRICS`; `LOWER_IS_BETTER` for the deletion AUCs):

- spatial, per annotated sampled frame, maps upsampled to the frame (`spatial.py`):
  pointing_game, mass_in_box, box_acc_iou30, box_acc_iou50, paper_box_acc_iou30,
  max_box_acc_v2 (its best threshold is chosen over the whole data set). Maps of a
  model that saw a centre crop (`Explanation.crop`) are upsampled to the crop and the
  boxes shifted into it unclipped (`shift_boxes`): exact frame-pixel scores with zero
  relevance outside the crop, which the model never saw;
- temporal, per video, over the sampled frames (`temporal.py`): temporal_ap,
  temporal_iou, tmap (detection mAP over tIoU 0.1..0.7), paper_coverage,
  mass_in_segment; the ground truth of a sampled frame is whether it lies in a
  segment, or without segments whether it has a box;
- faithfulness, per video (`faithfulness.py`): deletion_auc, insertion_auc (pixels
  of every frame, most relevant first, against a blurred copy; only the crop's pixels
  where the model saw a crop), temporal_deletion_auc,
  temporal_insertion_auc (whole frames against the clip's mean frame); the score is
  the model's softmax probability of the explained class.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stviz.datasets.annotations.model import VideoAnnotation
from stviz.evaluate.faithfulness import (
    auc,
    deletion_curve,
    insertion_curve,
    temporal_deletion_curve,
    temporal_insertion_curve,
)
from stviz.evaluate.spatial import (
    aggregate_per_class,
    max_box_acc_from_hits,
    max_box_acc_v2,
    shift_boxes,
    spatial_metrics,
)
from stviz.evaluate.temporal import (
    mass_in_segment,
    paper_coverage,
    segments_from_curve,
    segments_from_mask,
    temporal_ap,
    temporal_iou,
    tmap,
)
from stviz.explain.explanation import Explanation
from stviz.files import atomic_path

FRAME_METRICS = ("pointing_game", "mass_in_box", "box_acc_iou30", "box_acc_iou50",
                 "paper_box_acc_iou30")
SPATIAL_METRICS = (*FRAME_METRICS, "max_box_acc_v2")
VIDEO_METRICS = ("temporal_ap", "temporal_iou", "paper_coverage", "mass_in_segment")
# What a report's per-video table shows of each method (frame metrics as the share of
# a video's boxed frames): where, then when.
VIDEO_TABLE = ("pointing_game", "mass_in_box", "temporal_ap", "mass_in_segment")
TEMPORAL_METRICS = ("temporal_ap", "temporal_iou", "tmap", "paper_coverage", "mass_in_segment")
CURVES = ("deletion", "insertion", "temporal_deletion", "temporal_insertion")
FAITHFULNESS_METRICS = tuple(f"{c}_auc" for c in CURVES)
METRICS = (*SPATIAL_METRICS, *TEMPORAL_METRICS, *FAITHFULNESS_METRICS)
LOWER_IS_BETTER = frozenset({"deletion_auc", "temporal_deletion_auc"})
BOX_TAUS = np.arange(0, 1, 0.01)  # MaxBoxAccV2's thresholds and IoUs (Choe et al.)
BOX_IOUS = (0.3, 0.5, 0.7)
UNLABELLED = "(unlabelled)"
DEFAULT_METHODS = ("attention", "gradcam")
DEFAULT_STEPS = 5  # points of a pixel deletion/insertion curve beyond the first

ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class VideoRecord:
    """What one method gives on one video; `boxed` are the positions in `frames` with a
    ground-truth box, the rows of `spatial` and `box_hits`."""

    video: str
    method: str
    label: int  # the annotation's class index; -1 when the video has none
    target: int  # the model's class that was explained
    predicted: int
    correct: bool | None  # predicted the ground-truth class (None: the model lacks it)
    seconds: float  # the method's own time on the clip
    frames: np.ndarray  # (T,) sampled video frames, unique
    boxed: np.ndarray  # (n,) positions into `frames`
    spatial: dict[str, np.ndarray]  # FRAME_METRICS -> (n,)
    box_hits: np.ndarray  # (n, len(BOX_TAUS), len(BOX_IOUS)) for max_box_acc_v2
    temporal: dict[str, float]  # VIDEO_METRICS -> value, NaN without temporal ground truth
    proposals: np.ndarray  # (P, 3) start, end, score over positions, for tmap
    gt_segments: np.ndarray  # (G, 2) ground-truth runs over positions
    curves: dict[str, np.ndarray] = field(default_factory=dict)  # CURVES -> (2, S): x, y

    def save(self, path: Path) -> Path:
        """One small .npz, written atomically (a killed run leaves no half entry)."""
        meta = {k: getattr(self, k) for k in ("video", "method", "label", "target",
                                              "predicted", "correct", "seconds")}
        meta["temporal"] = self.temporal
        arrays = {"frames": self.frames, "boxed": self.boxed, "box_hits": self.box_hits,
                  "proposals": self.proposals, "gt_segments": self.gt_segments,
                  **{f"spatial_{k}": v for k, v in self.spatial.items()},
                  **{f"curve_{k}": v for k, v in self.curves.items()}}
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> VideoRecord:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            meta["temporal"] = {k: float("nan") if v is None else v
                                for k, v in meta["temporal"].items()}
            prefixed = {p: {k[len(p):]: data[k] for k in data.files if k.startswith(p)}
                        for p in ("spatial_", "curve_")}
            return cls(**meta, frames=data["frames"], boxed=data["boxed"],
                       box_hits=data["box_hits"], proposals=data["proposals"],
                       gt_segments=data["gt_segments"], spatial=prefixed["spatial_"],
                       curves=prefixed["curve_"])


@dataclass
class Faithfulness:
    """The perturbation setting of one clip: its decoded frames (T, H, W, 3) at clip
    positions `indices`, the blurred baseline shared by all methods, and the score
    functions (`temporal_score` may reuse work across the clips of temporal curves)."""

    frames: np.ndarray
    indices: np.ndarray
    blurred: np.ndarray
    score: ScoreFn
    temporal_score: ScoreFn
    steps: int = DEFAULT_STEPS
    batch_size: int = 4


def score_video(expl: Explanation, gt: VideoAnnotation, label: int,
                correct: bool | None = None, faith: Faithfulness | None = None) -> VideoRecord:
    """Every per-frame and per-video score of `expl` against `gt`, which must be in
    frames and pixels of the decoded video (`VideoAnnotation.resolved`), whole-frame
    pixels even where the maps cover a crop."""
    boxes = gt.boxes_at(expl.frame_indices)
    boxed = np.flatnonzero(~np.isnan(boxes).all(axis=(1, 2)))
    x0, y0, x1, y1 = expl.region()  # the maps' part of the frame (see the module doc)
    size = (y1 - y0, x1 - x0)
    if len(boxed):
        maps, gt_boxes = expl.spatial[boxed], shift_boxes(boxes[boxed], (x0, y0))
        per_frame = spatial_metrics(maps, gt_boxes, frame_size=size)
        spatial = {m: per_frame[m] for m in FRAME_METRICS}
        hits = max_box_acc_v2(maps, gt_boxes, BOX_TAUS, BOX_IOUS, frame_size=size).hits
    else:
        spatial = {m: np.zeros(0) for m in FRAME_METRICS}
        hits = np.zeros((0, len(BOX_TAUS), len(BOX_IOUS)))
    inside = (gt.frame_mask(expl.frame_indices) if gt.segments
              else np.isin(expl.frame_indices, [int(t) for t in gt.boxes]))
    relevance = expl.temporal.astype(np.float64)
    if inside.any():
        temporal = {"temporal_ap": temporal_ap(relevance, inside),
                    "temporal_iou": temporal_iou(relevance, inside),
                    "paper_coverage": float(paper_coverage(relevance, inside)),
                    "mass_in_segment": mass_in_segment(relevance, inside)}
        proposals, gt_segments = segments_from_curve(relevance), segments_from_mask(inside)
    else:
        temporal = dict.fromkeys(VIDEO_METRICS, float("nan"))
        proposals, gt_segments = np.zeros((0, 3)), np.zeros((0, 2), np.int64)
    record = VideoRecord(gt.id, expl.method, label, expl.target, expl.predicted, correct,
                         expl.seconds, expl.frame_indices, boxed, spatial, hits,
                         {k: float(v) for k, v in temporal.items()}, proposals, gt_segments)
    if faith is not None:
        record.curves = faithfulness_curves(expl, faith)
    return record


def faithfulness_curves(expl: Explanation, faith: Faithfulness) -> dict[str, np.ndarray]:
    """Deletion and insertion curves, spatial and temporal, as (2, S) arrays (x; y)."""
    # Clip positions that repeat a frame (a short video) share its map.
    pos = np.searchsorted(expl.frame_indices, faith.indices)
    maps, relevance = expl.spatial[pos], expl.temporal[pos]
    common = {"batch_size": faith.batch_size}
    region = expl.region((faith.frames.shape[2], faith.frames.shape[1]))
    spatial = {"steps": faith.steps, "baseline": faith.blurred, "region": region, **common}
    curves = {
        "deletion": deletion_curve(faith.frames, maps, faith.score, **spatial),
        "insertion": insertion_curve(faith.frames, maps, faith.score, **spatial),
        "temporal_deletion": temporal_deletion_curve(faith.frames, relevance,
                                                     faith.temporal_score, **common),
        "temporal_insertion": temporal_insertion_curve(faith.frames, relevance,
                                                       faith.temporal_score, **common),
    }
    return {name: np.stack(xy) for name, xy in curves.items()}


# ---------------------------------------------------------------- over a data set

@dataclass
class MethodSummary:
    """One method over a data set: `metrics[name]`, `per_class[name][class]` (NaN: not
    defined on this data, e.g. spatial metrics without boxes), mean curves (2, S)."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    curves: dict[str, np.ndarray]
    n_frames: int
    seconds: float


def aggregate(records: Sequence[VideoRecord], classes: Sequence[str]) -> MethodSummary:
    """Class-balanced values of every metric over the records of one method."""
    name = {-1: UNLABELLED, **dict(enumerate(classes))}
    frame_labels = np.concatenate([np.full(len(r.boxed), r.label) for r in records]
                                  + [np.zeros(0, np.int64)])
    video_labels = np.array([r.label for r in records])
    metrics: dict[str, float] = {}
    per_class: dict[str, dict[str, float]] = {}

    def put(metric: str, value: float, by_class: dict[int, float]) -> None:
        metrics[metric] = value
        per_class[metric] = {name[c]: v for c, v in sorted(by_class.items())}

    for m in FRAME_METRICS:
        values = np.concatenate([r.spatial[m] for r in records] + [np.zeros(0)])
        put(m, *aggregate_per_class(values, frame_labels))
    hits = np.concatenate([r.box_hits for r in records]
                          + [np.zeros((0, len(BOX_TAUS), len(BOX_IOUS)))])
    put("max_box_acc_v2", max_box_acc_from_hits(hits, BOX_TAUS, BOX_IOUS, frame_labels).value,
        {int(c): max_box_acc_from_hits(hits[frame_labels == c], BOX_TAUS, BOX_IOUS).value
         for c in np.unique(frame_labels)})
    for m in TEMPORAL_METRICS:
        if m == "tmap":
            put(m, *_tmap(records))
        else:
            put(m, *aggregate_per_class(np.array([r.temporal[m] for r in records]),
                                        video_labels))
    curves = {}
    for c in CURVES:
        have = [r for r in records if c in r.curves]
        if have:
            aucs = np.array([auc(*r.curves[c]) for r in have])
            put(f"{c}_auc", *aggregate_per_class(aucs, np.array([r.label for r in have])))
            curves[c] = np.mean([r.curves[c] for r in have], axis=0)
    return MethodSummary(metrics, per_class, curves, len(frame_labels),
                         float(np.mean([r.seconds for r in records])) if records else 0.0)


def _tmap(records: Sequence[VideoRecord]) -> tuple[float, dict[int, float]]:
    """Detection mAP (mean over tIoUs) of the videos with temporal ground truth, per class
    and over the classes."""
    have = [r for r in records if len(r.gt_segments)]
    if not have:
        return float("nan"), {}
    labels = np.array([r.label for r in have])
    by_class = {}
    for c in np.unique(labels):
        mine = [r for r, y in zip(have, labels) if y == c]
        by_class[int(c)] = tmap([r.proposals for r in mine], [r.gt_segments for r in mine])[0]
    return tmap([r.proposals for r in have], [r.gt_segments for r in have], labels=labels)[0], \
        by_class


def best_methods(table: dict[str, dict[str, Any]], digits: int = 3) -> dict[str, set[str]]:
    """For every metric, the methods with the best value (lowest for `LOWER_IS_BETTER`)
    at the `digits` shown, so equal-looking values are all best; `table` is
    {method: {metric: value or None}}."""
    best: dict[str, set[str]] = {}
    for metric in dict.fromkeys(m for row in table.values() for m in row):
        values = {meth: round(row[metric], digits) for meth, row in table.items()
                  if row.get(metric) is not None and np.isfinite(row[metric])}
        if values:
            pick = min if metric in LOWER_IS_BETTER else max
            top = pick(values.values())
            best[metric] = {meth for meth, v in values.items() if v == top}
    return best
