"""Evaluate a trained attention model on a labelled data set.

Classification (accuracy, per-class accuracy, confusion) for any data set layout;
where the data set carries `stviz synth` ground truth, also how well the model's
*own* attention localizes, at no extra cost since it comes with the forward pass:

- `attention_mass_in_segment`: the share of the temporal weight mass (beta) on
  sampled frames inside the action window, averaged over videos;
- `attention_temporal_ap`: the average precision of beta as a ranking of the sampled
  frames, inside the window against outside (videos with frames on both sides);
- `mask_argmax_in_box`: the share of sampled action frames whose mask maximum
  (upsampled to the frame) lies inside the actor's box (pointing game, 0 px);
- `attention_pointing_game`: the pointing game of `stviz localize-eval` (15 px
  tolerance, every sampled frame with a box).

With a frozen backbone, features come from the same on-disk cache `stviz train`
uses, so evaluating several models on one test set decodes each video once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stviz.core.device import autocast
from stviz.core.model import AttentionModel
from stviz.core.network import NetOutput
from stviz.datasets.feature_cache import DEFAULT_CACHE, FeatureCache
from stviz.datasets.readers import VideoItem, open_dataset
from stviz.errors import StvizError, warn
from stviz.evaluate.classification import accuracy, confusion_matrix, per_class_accuracy
from stviz.evaluate.spatial import pointing_game
from stviz.evaluate.temporal import mass_in_segment, temporal_ap
from stviz.explain.classifier import VideoClassifier
from stviz.video import probe, read_frames, uniform_indices

Progress = Callable[[int, int], None]
_HEAD_BATCH = 64


@dataclass
class ModelEvaluation:
    """What `stviz evaluate` reports; `to_dict()` is `evaluation.json`."""

    dataset: str
    model: str
    split: str
    classes: list[str]
    confusion: np.ndarray
    videos: list[str]
    predictions: list[int]
    skipped: list[str] = field(default_factory=list)
    localization: dict[str, float] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return accuracy(self.confusion)

    def to_dict(self) -> dict[str, Any]:
        per_class = per_class_accuracy(self.confusion)
        return {
            "dataset": self.dataset, "model": self.model, "split": self.split,
            "n_videos": int(self.confusion.sum()),
            "accuracy": round(self.accuracy, 6),
            "per_class_accuracy": {c: None if np.isnan(a) else round(float(a), 6)
                                   for c, a in zip(self.classes, per_class)},
            "classes": self.classes,
            "confusion": self.confusion.tolist(),
            **{k: round(v, 6) for k, v in self.localization.items()},
            "skipped": self.skipped,
            "predictions": dict(zip(self.videos, (self.classes[p] for p in self.predictions))),
        }


def evaluate_model(model: AttentionModel | VideoClassifier, dataset: str | Path,
                   split: str = "test", cache_dir: str | Path | None = DEFAULT_CACHE,
                   progress: Progress | None = None) -> ModelEvaluation:
    """Classify every readable video of `split`; unreadable ones are reported and skipped.

    `model`: a stviz model, or any classifier view (`--model i3d-kinetics400`), which
    classifies its own preprocessed clips (no feature cache, no attention figures)."""
    ds = open_dataset(dataset)
    items = ds.split(split)
    label_map = _model_labels(ds.classes, model.classes, ds.root)
    if isinstance(model, VideoClassifier):
        outputs, kept, skipped = _classify_all(model, items, progress)
    else:
        outputs, kept, skipped = _forward_all(model, items, cache_dir, progress)
    if not kept:
        raise StvizError(f"{dataset}: none of the {len(items)} videos of split {split!r} "
                         "could be read")
    logits = torch.cat([o.logits for o in outputs])
    predicted = logits.argmax(1).numpy()
    truth = np.array([label_map[items[i].label] for i in kept])
    confusion = confusion_matrix(truth, predicted, len(model.classes))
    localization = (_attention_localization(model, [items[i] for i in kept], outputs, ds.root)
                    if ds.kind == "synth" and isinstance(model, AttentionModel) else {})
    return ModelEvaluation(str(dataset), model.name, split, list(model.classes), confusion,
                           [items[i].id for i in kept], predicted.tolist(),
                           [str(items[i].path) for i in skipped], localization)


def _model_labels(dataset_classes: list[str], model_classes: list[str], root: Path) -> list[int]:
    """The model's index of every data set class, matched by name: exactly, else ignoring
    case and "_" for " " (a folder `arm_wrestling` is Kinetics' "arm wrestling")."""
    def key(name: str) -> str:
        return name.replace("_", " ").strip().casefold()

    loose = {key(c): i for i, c in enumerate(model_classes)}
    found = [model_classes.index(c) if c in model_classes else loose.get(key(c))
             for c in dataset_classes]
    unknown = [c for c, i in zip(dataset_classes, found) if i is None]
    if unknown:
        raise StvizError(f"{root}: classes {', '.join(unknown[:5])} are not classes of the "
                         f"model ({', '.join(model_classes[:5])}, ...); evaluate a model "
                         "trained on this data set (--model)")
    return [int(i) for i in found]


def _forward_all(model: AttentionModel, items: list[VideoItem], cache_dir: str | Path | None,
                 progress: Progress | None) -> tuple[list[NetOutput], list[int], list[int]]:
    """Network outputs (one per readable video, batched) and the kept / skipped positions."""
    skipped: list[int] = []

    def skip(path: Path, why: str) -> None:
        warn(f"skipped {why}")
        skipped.append(next(i for i, it in enumerate(items) if it.path == path))

    if model.spec.finetuned_backbone or cache_dir is None:
        outputs, kept = [], []
        for i, item in enumerate(items):
            try:
                info = probe(item.path)
                frames = read_frames(item.path, uniform_indices(info.frames, model.spec.frames),
                                     info=info)
            except StvizError as exc:
                skip(item.path, str(exc))
            else:
                outputs.append(model.predict(frames))
                kept.append(i)
            if progress is not None:
                progress(i + 1, len(items))
        return outputs, kept, skipped
    cache = FeatureCache(cache_dir, model.backbone, model.spec.input_size, model.spec.frames,
                         model.device)
    feats = cache.compute([it.path for it in items], progress=progress, on_error=skip)
    kept = [i for i, f in enumerate(feats) if f is not None]
    outputs = []
    model.net.eval()
    with torch.inference_mode(), autocast(model.device):
        for s in range(0, len(kept), _HEAD_BATCH):
            x = torch.from_numpy(np.stack([feats[i] for i in kept[s:s + _HEAD_BATCH]]))
            out = model.net.forward_features(x.to(model.device).float(), model.spec.frames)
            outputs.extend(NetOutput(*(t[j:j + 1].float().cpu() for t in out))
                           for j in range(len(out.logits)))
    return outputs, kept, skipped


def _classify_all(clf: VideoClassifier, items: list[VideoItem], progress: Progress | None
                  ) -> tuple[list[NetOutput], list[int], list[int]]:
    """Logits of each readable video from the classifier's own clip (as `stviz explain`
    samples it), wrapped as outputs without attention; and the kept / skipped positions."""
    outputs, kept, skipped = [], [], []
    for i, item in enumerate(items):
        try:
            info = probe(item.path)
            frames = read_frames(item.path, uniform_indices(info.frames, clf.frames), info=info)
        except StvizError as exc:
            warn(f"skipped {exc}")
            skipped.append(i)
        else:
            logits = clf.predict(clf.preprocess(frames)).cpu()
            outputs.append(NetOutput(logits, torch.zeros(0), torch.zeros(0)))
            kept.append(i)
        if progress is not None:
            progress(i + 1, len(items))
    return outputs, kept, skipped


def _attention_localization(model: AttentionModel, items: list[VideoItem],
                            outputs: list[NetOutput], root: Path) -> dict[str, float]:
    """The figures of the module doc, from the synth ground truth. A stviz model sees the
    whole frame (resized, never cropped), so its masks cover the frame the boxes are in."""
    from stviz.datasets.annotations import load_annotations

    truth = load_annotations(root / "annotations.json").videos
    mass, ap, hits, points = [], [], [], []
    for item, out in zip(items, outputs):
        gt = truth.get(item.id)
        if gt is None or gt.frames is None:
            continue
        indices = uniform_indices(gt.frames, model.spec.frames)
        inside = gt.frame_mask(indices)
        beta = out.weights[0].numpy().astype(np.float64)
        mass.append(float(mass_in_segment(beta, inside)))
        if inside.any() and not inside.all():
            ap.append(float(temporal_ap(beta, inside)))
        if model.spec.network.use_mask and inside.any():
            size = (gt.height, gt.width)
            maps = out.masks[0].numpy()
            hits.append(pointing_game(maps[inside], gt.boxes_at(indices[inside]), tolerance=0,
                                      frame_size=size))
            points.append(pointing_game(maps, gt.boxes_at(indices), frame_size=size))
    result = {"attention_mass_in_segment": float(np.nanmean(mass))} if mass else {}
    if ap:
        result["attention_temporal_ap"] = float(np.mean(ap))
    if hits:
        result["mask_argmax_in_box"] = float(np.nanmean(np.concatenate(hits)))
        result["attention_pointing_game"] = float(np.nanmean(np.concatenate(points)))
    return result
