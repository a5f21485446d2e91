"""From a video file to `Explanation`s: sample frames, predict, pick the target, explain.

Default mode: T frames sampled uniformly and only those decoded; maps of the other
frames are interpolated later (`fill="linear"`). Dense mode: windows of `window`
frames every `stride` frames over the whole video, each resampled to T frames; a
frame's map and relevance are the average over the windows that cover it
(`fill="dense"`). Frames stream through a buffer of about one window, so memory
does not grow with the video's length.

A frame sampled more than once (a video shorter than the clip) gets the average of
its samples, so `frame_indices` are unique.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stviz.core.model import AttentionModel
from stviz.errors import StvizError, warn
from stviz.explain.base import Attribution, Explainer, get_method
from stviz.explain.classifier import VideoClassifier, as_classifier
from stviz.explain.explanation import Explanation
from stviz.video import VideoInfo, iter_frames, probe, read_frames, sliding_windows, uniform_indices

Progress = Callable[[int, int], None]  # progress(done, total)
Target = int | str | None  # a class index, a class name, or None for the predicted class


@dataclass
class Clip:
    """The frames a classifier sees: `indices[i]` is the video frame at clip position i."""

    video: Path
    info: VideoInfo
    indices: np.ndarray  # (T,) sorted, repeats when the video is shorter than T
    x: torch.Tensor  # (1, T, 3, S, S) normalized
    frames: np.ndarray | None = None  # (T, H, W, 3) uint8 RGB as decoded (for perturbations)


def sample_clip(clf: VideoClassifier, video: str | Path, frames: int | None = None,
                info: VideoInfo | None = None, warn_short: bool = True) -> Clip:
    """Sample T frames uniformly (warning when the video is shorter) and preprocess them."""
    path = Path(video)
    info = info or probe(path)
    t = frames or clf.frames
    if info.frames < t and warn_short:
        warn(f"{path}: {info.frames} frames < T={t}, repeating nearest frames")
    indices = uniform_indices(info.frames, t)
    frames = read_frames(path, indices, info=info)
    return Clip(path, info, indices, clf.preprocess(frames), frames)


def resolve_target(classes: Sequence[str], target: Target, predicted: int) -> int:
    """The class to explain: `predicted` unless given as an index or a class name."""
    if target is None:
        return predicted
    if isinstance(target, str) and target in classes:
        return list(classes).index(target)
    if isinstance(target, str) and target.strip().isdigit():
        target = int(target)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if 0 <= target < len(classes):
            return int(target)
        raise StvizError(f"--target {target}: out of range; the model has {len(classes)} "
                         f"classes (0..{len(classes) - 1})")
    examples = difflib.get_close_matches(str(target), classes, n=3) or list(classes[:5])
    raise StvizError(f"--target {target}: not a class of the model; e.g. "
                     f"{', '.join(examples)} (or an index 0..{len(classes) - 1})")


def explain_video(clf: VideoClassifier | AttentionModel, video: str | Path,
                  method: str = "attention", target: Target = None, frames: int | None = None,
                  dense: bool = False, window: int | None = None, stride: int | None = None,
                  progress: Progress | None = None, clip: Clip | None = None,
                  **method_params: Any) -> Explanation:
    """Explain the `target` class (default: the predicted one) in a video with `method`.

    `frames`: clip length T (the classifier's by default). Dense mode: `window` frames
    (default T) every `stride` frames (default window // 2). `clip`: the frames already
    sampled by `sample_clip` (default mode; then `video` is not read again, and the
    result's `seconds` are the method's alone, as in `compare_methods`), for callers that
    draw them too.
    """
    clf = as_classifier(clf)
    explainer = get_method(method, **method_params)
    resolve_target(clf.classes, target, 0)  # a wrong target fails before any decoding
    start = time.perf_counter()
    t = frames or clf.frames
    if dense:
        return _explain_dense(clf, explainer, Path(video), target, t, window or t,
                              stride or max(1, (window or t) // 2), progress, start)
    clip = clip or sample_clip(clf, video, t)
    attr, logits, target_index = _explain_clip(explainer, clf, clip.x, target)
    indices, spatial, temporal = _average_by_frame(clip.indices, attr.spatial, attr.temporal)
    if progress is not None:
        progress(1, 1)
    return _explanation(clip.video, clip.info, indices, spatial, temporal, clf, logits,
                        target_index, explainer, {"clip_frames": t}, start, "linear")


def compare_methods(clf: VideoClassifier | AttentionModel, video: str | Path,
                    methods: Sequence[str], target: Target = None, frames: int | None = None,
                    params: dict[str, dict[str, Any]] | None = None,
                    progress: Progress | None = None, clip: Clip | None = None
                    ) -> list[Explanation]:
    """Every method on the same sampled frames, read and predicted once.

    The model's own attention (`attention` for stviz models, `attention-rollout` for
    video transformers; Grad-CAM for the I3D, which has none) always comes first (added
    when missing): it is the reference
    the others are compared with, and its forward pass gives the prediction.
    `params` maps a method name to its parameters. Each result's `seconds` is its own
    method's time; decoding is shared. `clip`: frames already sampled by `sample_clip`
    (then `video` and `frames` are not read again), for callers that need them too.
    """
    clf = as_classifier(clf)
    names = list(dict.fromkeys(methods))
    if clf.reference is not None:
        names = [clf.reference, *(m for m in names if m != clf.reference)]
    explainers = [get_method(m, **(params or {}).get(m, {})) for m in names]
    resolve_target(clf.classes, target, 0)
    clip = clip or sample_clip(clf, video, frames)
    logits: torch.Tensor | None = None
    results = []
    for done, explainer in enumerate(explainers, start=1):
        start = time.perf_counter()
        attr, logits, target_index = _explain_clip(explainer, clf, clip.x, target, logits)
        indices, spatial, temporal = _average_by_frame(clip.indices, attr.spatial,
                                                       attr.temporal)
        results.append(_explanation(clip.video, clip.info, indices, spatial, temporal, clf,
                                    logits, target_index, explainer,
                                    {"clip_frames": clip.x.shape[1]}, start, "linear"))
        if progress is not None:
            progress(done, len(explainers))
    return results


def _explain_clip(explainer: Explainer, clf: VideoClassifier, x: torch.Tensor, target: Target,
                  logits: torch.Tensor | None = None
                  ) -> tuple[Attribution, torch.Tensor, int]:
    """(attribution, logits (K,), target index); a class-independent method's own forward
    pass gives the prediction, so `attention` costs one forward pass in all."""
    attr = None
    if logits is None and not explainer.needs_target:
        attr = explainer.attribute(clf, x)
        logits = attr.logits
    if logits is None:
        logits = clf.predict(x)[0]
    target_index = resolve_target(clf.classes, target, int(logits.argmax()))
    if attr is None:
        attr = explainer.attribute(clf, x, target_index)
    return attr, logits, target_index


def _explain_dense(clf: VideoClassifier, explainer: Explainer, video: Path, target: Target,
                   t: int, window: int, stride: int, progress: Progress | None,
                   start: float) -> Explanation:
    if stride > window:
        raise StvizError(f"--stride {stride} > --window {window} leaves frames unexplained; "
                         "use a stride of at most the window")
    info = probe(video)
    if info.frames < window:
        warn(f"{video}: {info.frames} frames < window={window}, repeating nearest frames")
    # The prediction on the whole-video clip picks the target of every window.
    clip = sample_clip(clf, video, t, info, warn_short=info.frames >= window)
    logits = clf.predict(clip.x)[0]
    target_index = resolve_target(clf.classes, target, int(logits.argmax()))
    windows = sliding_windows(info.frames, window, stride)
    grid = None
    spatial_sum = temporal_sum = None
    counts = np.zeros(info.frames, np.int64)
    buffer: dict[int, torch.Tensor] = {}  # video frame -> preprocessed (3, S, S)
    stream = iter_frames(video, info=info)
    last = -1
    for done, win in enumerate(windows, start=1):
        sampled = win[uniform_indices(len(win), t)]
        while last < sampled.max():  # read up to this window's last frame
            item = next(stream, None)
            if item is None:
                break
            last, frame = item
            buffer[last] = clf.preprocess(frame[None])[0, 0]
        # Frames that did not decode (a truncated file, already warned) use the last one.
        x = torch.stack([buffer.get(int(i), buffer[last]) for i in sampled]).unsqueeze(0)
        attr = explainer.attribute(clf, x, target_index)
        uniq, spatial, temporal = _average_by_frame(sampled, attr.spatial, attr.temporal)
        covered = np.unique(win)
        if spatial_sum is None:
            grid = spatial.shape[1:]
            spatial_sum = np.zeros((info.frames, *grid), np.float64)
            temporal_sum = np.zeros(info.frames, np.float64)
        spatial_sum[covered] += _resample(uniq, spatial, covered)
        temporal_sum[covered] += _resample(uniq, temporal, covered)
        counts[covered] += 1
        if done < len(windows):  # keep only frames that later windows still need
            keep_from = int(windows[done].min())
            buffer = {i: f for i, f in buffer.items() if i >= keep_from or i == last}
        if progress is not None:
            progress(done, len(windows))
    indices = np.flatnonzero(counts)
    n = counts[indices]
    return _explanation(video, info, indices, spatial_sum[indices] / n[:, None, None],
                        temporal_sum[indices] / n, clf, logits, target_index, explainer,
                        {"clip_frames": t, "window": window, "stride": stride,
                         "windows": len(windows)}, start, "dense")


def _average_by_frame(indices: np.ndarray, spatial: torch.Tensor | np.ndarray,
                      temporal: torch.Tensor | np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unique frames, spatial, temporal) with repeated frames averaged."""
    uniq, inverse, counts = np.unique(indices, return_inverse=True, return_counts=True)
    out = []
    for values in (spatial, temporal):
        v = values.cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        total = np.zeros((len(uniq), *v.shape[1:]), np.float64)
        np.add.at(total, inverse, v)
        out.append((total / counts.reshape(-1, *[1] * (v.ndim - 1))).astype(np.float32))
    return uniq, out[0], out[1]


def _resample(src: np.ndarray, values: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """`values` at sorted unique frames `src`, linearly interpolated at frames `dst`
    (held constant beyond the ends)."""
    if len(src) == 1:
        return np.repeat(values, len(dst), axis=0)
    pos = np.interp(dst, src, np.arange(len(src)))
    lo = np.minimum(np.floor(pos).astype(np.int64), len(src) - 2)
    w = (pos - lo).reshape(-1, *[1] * (values.ndim - 1))
    return (1 - w) * values[lo] + w * values[lo + 1]


def _explanation(video: Path, info: VideoInfo, indices: np.ndarray, spatial: np.ndarray,
                 temporal: np.ndarray, clf: VideoClassifier, logits: torch.Tensor, target: int,
                 explainer: Explainer, sampling: dict[str, Any], start: float, fill: str
                 ) -> Explanation:
    if not torch.isfinite(logits).all():
        raise StvizError(f"{video}: {clf.name} gives NaN or infinite class scores; its weights "
                         "are damaged or it overflows on this input, check the model")
    if not (np.isfinite(spatial).all() and np.isfinite(temporal).all()):
        raise StvizError(f"{video}: method {explainer.name} gives NaN or infinite relevance "
                         f"with {clf.name}; check the model or try another --method")
    params = {**explainer.params(), **sampling, "model": clf.name}
    if explainer.uses_layer:
        params["layer"] = clf.layer_info().name
    fps = info.fps
    return Explanation(
        video=str(video), frame_indices=indices, timestamps=indices / fps, spatial=spatial,
        temporal=temporal, classes=list(clf.classes),
        probabilities=torch.softmax(logits.float(), -1).cpu().numpy(),
        predicted=int(logits.argmax()), target=target, method=explainer.name, params=params,
        seconds=round(time.perf_counter() - start, 4), video_frames=info.frames, fps=fps,
        width=info.width, height=info.height, fill=fill,
        crop=list(box) if (box := clf.crop_box(info.width, info.height)) else None)
