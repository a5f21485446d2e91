"""`localize_eval`: run explanation methods over every annotated video of a data set split
and measure how well they localize the action in space and time, and how faithful
they are to the model (`scoring.py` holds the metrics; `report.py` writes the files).

Flow: annotations -> the videos found on disk -> per video one decoded clip, every
method on it (`compare_methods`), `score_video` -> one cache entry per video and method
-> `aggregate` per method -> metrics.json, .csv, .md and two plots.

Resuming: an entry is `OUT/cache/<method>/<video>.<key>.npz`, written atomically, with
the explanation it scores beside it in `<video>.<key>.explanation/` (written first, so
an entry's presence means both are there; report pages are drawn from it). The
key hashes all an entry depends on (the model's files, the method and its parameters,
T, the faithfulness steps, the video file's size and time, its annotation), so a run
into the same OUT computes only what is missing or stale. `OUT/metrics.json`, written
last, marks a finished run; its reports are replaced only with `overwrite`.

Scale: under `torchrun` each rank takes videos rank::world_size and writes their
entries; after a barrier rank 0 reads them all and writes the reports.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from stviz.datasets.annotations import AnnotationSet, VideoAnnotation, load_annotations
from stviz.datasets.readers import VIDEO_SUFFIXES
from stviz.errors import StvizError, warn
from stviz.evaluate.scoring import (
    DEFAULT_METHODS,
    DEFAULT_STEPS,
    VIDEO_TABLE,
    Faithfulness,
    VideoRecord,
    aggregate,
    score_video,
)
from stviz.explain.classifier import VideoClassifier
from stviz.explain.explanation import Explanation
from stviz.files import check_output_dir, clean_stale_temporaries

CACHE_VERSION = 2  # 2: entries keep their explanation
METRICS_FILE = "metrics.json"
Progress = Callable[[int, int], None]


@dataclass
class LocalizeResult:
    """`report` is metrics.json's content (empty on ranks other than 0); `reused` and
    `computed` count this rank's (video, method) entries read from and added to the cache."""

    report: dict[str, Any]
    written: list[Path] = field(default_factory=list)
    reused: int = 0
    computed: int = 0


def localize_eval(dataset: str | Path, out: str | Path, annotations: str | Path | None = None,
                  format: str | None = None, methods: Sequence[str] = DEFAULT_METHODS,
                  model: str | Path | VideoClassifier | Any = None, split: str = "test",
                  limit: int | None = None, frames: int | None = None,
                  faithfulness: bool = True, steps: int = DEFAULT_STEPS,
                  device: str = "auto", overwrite: bool = False,
                  progress: Progress | None = None,
                  load_options: dict[str, Any] | None = None) -> LocalizeResult:
    """Explain every annotated video of `split` with each of `methods` and score it.

    `model`: a stviz checkpoint folder or name (None: the bundled default), a Hugging
    Face video transformer folder, a torchvision state dict or a TorchScript file (with
    `load_options`: `load_classifier`'s arch, layout, layer, classes, input_size), or a
    model already loaded (`VideoClassifier`, `AttentionModel`).
    `annotations` defaults to `dataset/annotations.json`; videos are found under
    `dataset` (see `locate_videos`). `limit`: the first N annotated videos by id.
    `frames`: clip length T (default the model's). `steps`: fractions of pixels removed
    per spatial deletion/insertion curve. Results are cached in `out/cache`, so an
    interrupted run continues where it stopped (see the module doc).
    """
    from stviz.core.device import resolve_device
    from stviz.core.model import AttentionModel
    from stviz.explain import as_classifier, get_method, load_classifier
    from stviz.train import _Dist

    root, out = Path(dataset).expanduser(), Path(out)
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None and "LOCAL_RANK" in os.environ:
        dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    dist = _Dist(dev)
    check_output_dir(out)
    if (out / METRICS_FILE).exists() and not overwrite:
        raise StvizError(f"{out}: holds a finished run ({METRICS_FILE}); pass --overwrite to "
                         "rewrite its reports (cached results are reused) or choose another "
                         "--out")
    ann = load_annotations(_annotation_path(root, annotations), format)
    chosen = select_videos(ann, split, limit)
    paths = locate_videos(root, chosen)
    missing = [v.id for v in chosen if paths[v.id] is None]
    videos = [v for v in chosen if paths[v.id] is not None]
    if not videos:
        raise StvizError(f"{root}: none of the {len(chosen)} annotated videos of split "
                         f"{split!r} is there (e.g. {chosen[0].id}); point DATASET at the "
                         "folder that holds the videos")
    if missing and dist.main:
        warn(f"{len(missing)} annotated video(s) not found under {root}, skipped: "
             + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    names = _check_methods(methods, get_method)
    loading = _non_default(load_options or {}, load_classifier)
    clf = as_classifier(model) if isinstance(model, (VideoClassifier, AttentionModel)) \
        else load_classifier(model, device=dev, frames=frames, **loading)
    if "attention" in names and not clf.is_stviz:
        raise StvizError(f"{clf.name}: method 'attention' needs a stviz attention model; "
                         "drop it from --methods")
    t = frames or clf.frames
    targets = _targets(ann.classes, clf.classes)
    if dist.main and all(i is None for i in targets.values()):
        warn(f"{clf.name} knows none of the annotation's classes ({', '.join(ann.classes[:3])}"
             ", ...): explaining the predicted class of every video")
    steps_or_none = steps if faithfulness else None
    base = {"version": CACHE_VERSION, "model": model_fingerprint(clf, model), "frames": t,
            "faithfulness_steps": steps_or_none}
    # A model that sees a centre crop is scored on it, so entries of runs that scored its
    # maps on the whole frame are stale; models without a crop keep their keys.
    if clf.crop is not None:
        base["crop"] = clf.crop
    if loading:  # how the model was loaded matters too (class names by content, not file)
        base["loading"] = {k: clf.classes if k == "classes" else str(v)
                           for k, v in sorted(loading.items())}
    method_keys = {m: {**base, "method": m, "params": get_method(m).params()} for m in names}

    def entry(v: VideoAnnotation, method: str) -> Path:
        key = _digest({**method_keys[method], "annotation": _annotation_digest(v),
                       "video": _file_digest(paths[v.id])})
        return out / "cache" / slug(method) / f"{slug(v.id)}.{key[:16]}.npz"

    for folder in [out, *(out / "cache" / slug(m) for m in names)]:
        clean_stale_temporaries(folder)  # left by a killed run; live ones are locked
    mine = videos[dist.rank::dist.world]
    result = LocalizeResult({})
    if progress is not None:
        progress(0, len(mine))
    for done, v in enumerate(mine, start=1):
        todo = [m for m in names if _load_entry(entry(v, m)) is None]
        result.reused += len(names) - len(todo)
        if todo:
            label = -1 if v.label is None else v.label
            result.computed += _run_video(clf, v, paths[v.id], todo, t, label,
                                          targets.get(label), steps_or_none,
                                          lambda m, v=v: entry(v, m))
        if progress is not None:
            progress(done, len(mine))
    dist.barrier()
    if not dist.main:
        return result
    records, skipped = _collect(videos, names, entry)
    if not records[names[0]]:
        raise StvizError(f"{root}: none of the {len(videos)} videos could be read; see the "
                         "warnings above")
    entries = {v.id: {m: entry(v, m).relative_to(out).as_posix() for m in names}
               for v in videos if v.id not in skipped}
    result.report = build_report(records, ann, root, clf.name, split, t, steps_or_none,
                                 missing, skipped, entries)
    from stviz.evaluate.report import write_reports

    result.written = write_reports(result.report, out, overwrite)
    return result


# ---------------------------------------------------------------- inputs

def _non_default(options: dict[str, Any], fn: Callable[..., Any]) -> dict[str, Any]:
    """The `options` that differ from `fn`'s defaults."""
    defaults = {p.name: p.default for p in inspect.signature(fn).parameters.values()}
    return {k: v for k, v in options.items() if k not in defaults or v != defaults[k]}


def _annotation_path(root: Path, annotations: str | Path | None) -> Path:
    if annotations is not None:
        return Path(annotations).expanduser()
    if not root.exists():
        raise StvizError(f"{root}: no such data set folder; check the path")
    path = root / "annotations.json"
    if not path.is_file():
        raise StvizError(f"{root}: no annotations.json here; pass --annotations FILE (and "
                         "--format when it cannot be told from the content)")
    return path


def select_videos(ann: AnnotationSet, split: str, limit: int | None = None
                  ) -> list[VideoAnnotation]:
    """The videos of `split` (every video when the annotations know no splits) that have
    boxes or segments, by id; the first `limit` of them."""
    videos = sorted(ann.videos.values(), key=lambda v: v.id)
    splits = sorted({v.split for v in videos if v.split is not None})
    if splits:
        if split not in splits:
            raise StvizError(f"{ann.source}: no videos in split {split!r}; pass --split with "
                             f"one of: {', '.join(splits)}")
        videos = [v for v in videos if v.split == split]
    annotated = [v for v in videos if v.boxes or v.segments]
    if not annotated:
        raise StvizError(f"{ann.source}: no video of split {split!r} has boxes or segments; "
                         "nothing to localize")
    return annotated[:limit]


def locate_videos(root: Path, videos: Sequence[VideoAnnotation]) -> dict[str, Path | None]:
    """Each video's file: its annotated `path` under `root`, else a video file under `root`
    (searched recursively, any common extension) whose path without extension ends
    with the id, or whose name without extension is the id's last part; None if none."""
    index: dict[str, Path] | None = None
    found: dict[str, Path | None] = {}
    for v in videos:
        if v.path and (root / v.path).is_file():
            found[v.id] = root / v.path
            continue
        if index is None:
            index = _video_index(root)
        vid = PurePosixPath(v.id.replace("\\", "/"))
        if vid.suffix.lower() in VIDEO_SUFFIXES:
            vid = vid.with_suffix("")
        parts = vid.parts
        found[v.id] = next((index[k] for k in ("/".join(parts[i:]) for i in range(len(parts)))
                            if k in index), None)
    return found


def _video_index(root: Path) -> dict[str, Path]:
    """Every video under `root` by its relative path without extension and each shorter
    tail of it (`A/B/c`, `B/c`, `c`); the first in sorted order wins a shared key."""
    index: dict[str, Path] = {}
    if not root.is_dir():
        return index
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".") and p.is_file():
            parts = p.relative_to(root).with_suffix("").parts
            for i in range(len(parts)):
                index.setdefault("/".join(parts[i:]), p)
    return index


def _check_methods(methods: Sequence[str], get_method: Callable[..., Any]) -> list[str]:
    names = list(dict.fromkeys(m.strip() for m in methods if m.strip()))
    if not names:
        raise StvizError("--methods: empty; name at least one method, e.g. attention,gradcam")
    for m in names:
        try:
            get_method(m)
        except StvizError as exc:
            raise StvizError(str(exc).replace("--method ", "--methods ", 1)) from None
    return names


def _targets(ann_classes: Sequence[str], model_classes: Sequence[str]) -> dict[int, int | None]:
    """The model's index of each annotation class, matched by name ignoring case; None
    (explain the predicted class) where the model lacks it."""
    lookup = {c.lower(): i for i, c in enumerate(model_classes)}
    return {i: lookup.get(c.lower()) for i, c in enumerate(ann_classes)}


def _ground_truth(v: VideoAnnotation, info: Any) -> VideoAnnotation:
    """`v` in frames and pixels of the decoded video: seconds at the video's frame rate
    (unless the annotation has its own), boxes scaled when it was annotated at another
    size."""
    gt = v.resolved(fps=v.fps or info.fps, width=v.width or info.width,
                    height=v.height or info.height)
    if (gt.width, gt.height) != (info.width, info.height):
        scale = np.array([info.width / gt.width, info.height / gt.height] * 2)
        gt.boxes = {k: b * scale for k, b in gt.boxes.items()}
    return gt


def _collect(videos: Sequence[VideoAnnotation], names: Sequence[str],
             entry: Callable[[VideoAnnotation, str], Path]
             ) -> tuple[dict[str, list[VideoRecord]], list[str]]:
    """Every rank's cache entries, per method, and the ids of the videos that have none
    (they did not decode; their rank warned)."""
    records: dict[str, list[VideoRecord]] = {m: [] for m in names}
    skipped = []
    for v in videos:
        found = [_load_entry(entry(v, m)) for m in names]
        if any(r is None for r in found):
            skipped.append(v.id)
            continue
        for m, r in zip(names, found):
            records[m].append(r)
    return records, skipped


def _load_entry(path: Path) -> VideoRecord | None:
    """A cache entry, or None when it is missing or unreadable (a damaged entry is removed
    with a warning, so that it is computed again)."""
    import zipfile
    import zlib

    if not path.is_file():
        return None
    try:
        return VideoRecord.load(path)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile,
            zlib.error) as exc:
        warn(f"{path}: damaged cache entry ({type(exc).__name__}); computing it again")
        path.unlink(missing_ok=True)
        return None


def _run_video(clf: VideoClassifier, v: VideoAnnotation, path: Path, todo: list[str], t: int,
               label: int, target: int | None, steps: int | None,
               entry: Callable[[str], Path]) -> int:
    """Explain one video with the methods in `todo`, score and cache each; how many were
    cached (0 for a video that does not decode, with a warning)."""
    from stviz.explain import compare_methods
    from stviz.explain.pipeline import sample_clip

    try:
        clip = sample_clip(clf, path, t)
    except StvizError as exc:
        warn(f"skipped {exc}")
        return 0
    gt = _ground_truth(v, clip.info)
    faith = _faithfulness(clf, clip, t, steps) if steps is not None else None
    done = 0
    for expl in compare_methods(clf, path, todo, target=target, frames=t, clip=clip):
        if expl.method in todo:
            correct = None if target is None else expl.predicted == target
            record = score_video(expl, gt, label, correct,
                                 faith(expl.target) if faith is not None else None)
            expl.save(explanation_dir(entry(expl.method)))
            record.save(entry(expl.method))
            done += 1
    return done


def _faithfulness(clf: VideoClassifier, clip: Any, t: int, steps: int
                  ) -> Callable[[int], Faithfulness]:
    """The perturbation setting of one clip for an explained class; the baseline and the
    scorers' memo are shared by every method on the clip."""
    from stviz.evaluate.faithfulness import blurred

    base = blurred(clip.frames)
    memo = ScoreMemo()
    batch = max(1, 64 // t)

    def make(explained: int) -> Faithfulness:
        return Faithfulness(clip.frames, clip.indices, base, ClipScorer(clf, explained, memo),
                            ClipScorer(clf, explained, memo, by_frame=True), steps, batch)

    return make


@dataclass
class ScoreMemo:
    """What the perturbed clips of one video share: class probabilities of whole clips
    (every curve of every method starts or ends on the original or an all-baseline
    clip) and backbone features of frames (temporal curves only recombine T + 1
    distinct frames)."""

    clips: dict[bytes, np.ndarray] = field(default_factory=dict)
    frames: dict[bytes, torch.Tensor] = field(default_factory=dict)


def _digest_of(a: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(a), digest_size=16).digest()


class ClipScorer:
    """Faithfulness score function: the softmax probability of class `target` for each clip
    of a batch (b, T, H, W, 3) of uint8 frames; a clip seen before is not run again.

    With `by_frame` a stviz model's backbone runs once per distinct frame and only its
    head per clip (for temporal curves, whose clips are all made of the same frames).
    """

    def __init__(self, clf: VideoClassifier, target: int, memo: ScoreMemo,
                 by_frame: bool = False) -> None:
        self.clf, self.target, self.memo = clf, target, memo
        # a clip backbone's features depend on the whole clip, not on each frame alone
        self.by_frame = by_frame and clf.is_stviz and clf.module.temporal_stride == 1

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        clips = np.asarray(clips)
        keys = [_digest_of(c) for c in clips]
        new = {k: c for k, c in zip(keys, clips) if k not in self.memo.clips}
        if new:
            batch = np.stack(list(new.values()))
            logits = self._by_frame(batch) if self.by_frame else self.clf.predict(
                torch.cat([self.clf.preprocess(c) for c in batch]))
            probs = torch.softmax(logits.float(), -1).cpu().numpy()
            self.memo.clips.update(zip(new, probs))
        return np.array([self.memo.clips[k][self.target] for k in keys])

    @torch.inference_mode()
    def _by_frame(self, clips: np.ndarray) -> torch.Tensor:
        from stviz.core.device import autocast

        net, memo = self.clf.module, self.memo.frames
        keys = [[_digest_of(f) for f in clip] for clip in clips]
        new: dict[bytes, np.ndarray] = {}
        for clip, row in zip(clips, keys):
            new.update((k, f) for k, f in zip(row, clip) if k not in memo)
        with autocast(self.clf.device, self.clf.amp):
            if new:
                feats = net.features(self.clf.preprocess(np.stack(list(new.values()))))[0]
                memo.update(zip(new, feats))
            x = torch.stack([torch.stack([memo[k] for k in row]) for row in keys])
            return net.forward_features(x).logits.float()


# ---------------------------------------------------------------- cache keys

def model_fingerprint(clf: VideoClassifier, model: Any) -> str:
    """A digest of the model's files (a stviz checkpoint's config and weights, or the
    model file), else of its weights in memory, so retrained or replaced weights
    invalidate cached results."""
    from stviz.core.checkpoint import CONFIG_FILE, WEIGHTS_FILE

    ckpt = clf.stviz.path if clf.is_stviz else None
    h = hashlib.sha1(clf.name.encode())
    if ckpt is not None:
        files = [ckpt / CONFIG_FILE, ckpt / WEIGHTS_FILE]
    elif isinstance(model, (str, Path)) and Path(model).is_file():
        files = [Path(model)]
    else:  # a model built in memory
        for key, value in clf.module.state_dict().items():
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
        return h.hexdigest()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _annotation_digest(v: VideoAnnotation) -> str:
    h = hashlib.sha1(json.dumps([v.label, v.frames, v.width, v.height, v.fps, v.time_unit,
                                 v.box_unit, v.segments]).encode())
    for k in sorted(v.boxes):
        h.update(repr(k).encode())
        h.update(np.ascontiguousarray(v.boxes[k], np.float64).tobytes())
    return h.hexdigest()


def _file_digest(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def slug(name: str) -> str:
    """A file-name-safe form of a video id or method name (slashes become `__`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name.replace("/", "__").replace("\\", "__"))


# ---------------------------------------------------------------- the report

def explanation_dir(entry: Path) -> Path:
    """Where a cache entry's explanation is saved (`Explanation.save`/`load`)."""
    return entry.with_suffix(".explanation")


def video_metrics(record: VideoRecord) -> dict[str, float]:
    """One method's results on one video for the per-video table: the share of its boxed
    sampled frames where each frame metric holds, and the video metrics."""
    values = {k: float(np.mean(v)) if len(v) else float("nan")
              for k, v in record.spatial.items() if k in VIDEO_TABLE}
    values.update((k, v) for k, v in record.temporal.items() if k in VIDEO_TABLE)
    return values


def cached_explanations(out: Path, video: dict[str, Any]) -> list[Explanation]:
    """Every method's explanation of one video of a report's `videos` list, from the
    cache in `out`."""
    expls = []
    for entry in video["entries"].values():
        folder = explanation_dir(out / entry)
        if not folder.is_dir():
            raise StvizError(f"{folder}: missing from the cache; run `stviz localize-eval "
                             f"--html --overwrite` into {out} again to recompute it")
        expls.append(Explanation.load(folder))
    if not expls:
        raise StvizError(f"{out}: the report lists no cache entry for {video['id']}; run "
                         f"`stviz localize-eval --html --overwrite` into {out} again")
    return expls


def rank_videos(report: dict[str, Any], metric: str, n: int) -> list[int]:
    """Positions in `report["videos"]` of the n worst and the n best videos by the first
    method's per-video `metric` (all of `VIDEO_TABLE` are higher-is-better; worst first; a
    video without that metric is not ranked)."""
    method = next(iter(report["methods"]))
    scored = [(v["metrics"].get(method, {}).get(metric), i)
              for i, v in enumerate(report["videos"])]
    order = [i for value, i in sorted((s for s in scored if s[0] is not None),
                                      key=lambda s: s[0])]
    return list(dict.fromkeys(order[:n] + order[len(order) - n:][::-1])) if n > 0 else []


def build_report(records: dict[str, list[VideoRecord]], ann: AnnotationSet, root: Path,
                 model: str, split: str, t: int, steps: int | None, missing: list[str],
                 skipped: list[str], entries: dict[str, dict[str, str]] | None = None
                 ) -> dict[str, Any]:
    """metrics.json: one value per method and metric, per class, mean curves, what was
    left out, and per video each method's `video_metrics` and cache entry (`entries`:
    video id -> method -> entry path relative to the output folder). NaN (undefined on
    this data) becomes null."""
    summaries = {m: aggregate(rs, ann.classes) for m, rs in records.items()}
    first = next(iter(records.values()))
    judged = [r.correct for r in first if r.correct is not None]
    any_summary = next(iter(summaries.values()))
    return _jsonable({
        "dataset": str(root), "annotations": str(ann.source), "format": ann.format,
        "model": model, "split": split, "frames": t, "faithfulness_steps": steps,
        "n_videos": len(first), "n_frames": any_summary.n_frames,
        "n_sampled_frames": int(sum(len(r.frames) for r in first)),
        "accuracy": float(np.mean(judged)) if judged else None,
        "methods": {m: s.metrics for m, s in summaries.items()},
        "per_class": {m: s.per_class for m, s in summaries.items()},
        "seconds_per_video": {m: s.seconds for m, s in summaries.items()},
        "curves": {m: {c: {"x": xy[0], "y": xy[1]} for c, xy in s.curves.items()}
                   for m, s in summaries.items()},
        "missing_videos": missing, "skipped_videos": skipped,
        "videos": _video_rows(records, ann, entries or {}),
    })


def _video_rows(records: dict[str, list[VideoRecord]], ann: AnnotationSet,
                entries: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    rows = []
    for i, first in enumerate(next(iter(records.values()))):
        rows.append({"id": first.video,
                     "label": ann.classes[first.label] if 0 <= first.label < len(ann.classes)
                     else None,
                     "correct": first.correct,
                     "metrics": {m: video_metrics(rs[i]) for m, rs in records.items()},
                     "entries": entries.get(first.video, {})})
    return rows


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return round(float(obj), 6) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
