"""The Python API the CLI is a thin layer over: import these in your own code."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stviz.core.checkpoint import find_checkpoints, read_spec
from stviz.core.model import AttentionModel, load_model
from stviz.errors import StvizError, warn
from stviz.render.colors import DEFAULT_ALPHA, DEFAULT_CMAP
from stviz.render.outputs import DEFAULT_RENDER_SIZE

__all__ = ["AttentionModel", "CompareResult", "ExplainResult", "annotations_summary", "compare",
           "evaluate", "explain", "list_models", "load_classifier", "load_model",
           "localize_eval", "localize_report", "report", "video_report"]


def video_report(path: str | Path, t: int = 16) -> dict[str, Any]:
    """Metadata of a video plus the frame indices a T-frame clip samples."""
    from stviz.video import probe, uniform_indices

    meta = probe(path)
    if meta.frames < t:
        warn(f"{path}: {meta.frames} frames < T={t}; the clip repeats its nearest frames")
    report = meta.to_dict()
    report["path"] = str(path)
    report["sampled_frames"] = [int(i) for i in uniform_indices(meta.frames, t)]
    return report


def list_models() -> list[dict[str, Any]]:
    """Every checkpoint on the search path, with its classes and recorded metrics, then
    the models stviz knows by name (`--model i3d-kinetics400`), with source and licence."""
    from stviz.explain.classifier import named_models

    rows = []
    for ckpt in find_checkpoints():
        try:
            spec = read_spec(ckpt)
        except StvizError as exc:
            warn(str(exc))
            continue
        metrics = {k: v for k, v in spec.metrics.items() if k != "val_loss"}
        test = ckpt / "evaluation" / "evaluation.json"  # written by `make model`
        if test.is_file():
            try:
                metrics["test_accuracy"] = json.loads(test.read_text())["accuracy"]
            except (OSError, ValueError, KeyError):
                warn(f"{test}: unreadable; re-run `stviz evaluate` into that folder")
        rows.append({"name": ckpt.name, "path": str(ckpt), "backbone": spec.backbone,
                     "frames": spec.frames, "input_size": spec.input_size,
                     "classes": spec.classes, "metrics": metrics,
                     "source": "trained with stviz (see the folder's MODEL_CARD.md)",
                     "licence": "Apache-2.0"})
    return rows + named_models()


def evaluate(dataset: str | Path, model: str | Path | None = None, split: str = "test",
             out: str | Path | None = None, device: str = "auto",
             cache_dir: str | Path | None = ".stviz-data/features",
             overwrite: bool = False, progress: Any = None) -> tuple[Any, list[Path]]:
    """Accuracy, per-class accuracy and confusion of `model` (default: the bundled one;
    or "i3d-kinetics400", matched to the data set's classes by name) on a data set split;
    with `out`, write `evaluation.json` and `confusion.png` there."""
    from stviz.evaluate.model_eval import evaluate_model
    from stviz.files import check_output_dir, check_writable, write_json
    from stviz.render.confusion import render_confusion

    written: list[Path] = []
    if out is not None:
        check_output_dir(out)
        targets = [Path(out) / "evaluation.json", Path(out) / "confusion.png"]
        for target in targets:  # refuse before the work, not after
            check_writable(target, overwrite)
    result = evaluate_model(_evaluated(model, device), dataset, split, cache_dir, progress)
    if out is not None:
        written.append(write_json(targets[0], result.to_dict(), overwrite))
        written.append(render_confusion(result.confusion, result.classes, targets[1],
                                        title=f"{result.model} on {dataset} ({split}): "
                                              f"accuracy {result.accuracy:.3f}",
                                        overwrite=overwrite))
    return result, written


def _evaluated(model: Any, device: str) -> Any:
    """What `evaluate` classifies with: a named model (i3d-kinetics400) as its classifier
    view, else a stviz checkpoint (features cached)."""
    from stviz.explain.classifier import I3D_NAME, VideoClassifier, from_i3d

    if isinstance(model, (VideoClassifier, AttentionModel)):
        return model
    return from_i3d(device=device) if str(model) == I3D_NAME else load_model(model, device)


# Explaining one video ------------------------------------------------------------------


@dataclass
class ExplainResult:
    """What `explain` did: the explanation, the files written, where the time went."""

    explanation: Any  # stviz.explain.Explanation
    files: list[Path]
    seconds: dict[str, float]  # load, explain (decode + method), render, total
    model: str
    bundled_synthetic: bool  # the default model, trained on synthetic shapes only


@dataclass
class CompareResult:
    """What `compare` did: one explanation per method (the reference first), their
    pairwise agreement (`stviz.explain.agreement_table`), the files, the times."""

    explanations: list[Any]
    agreement: dict[str, Any]
    files: list[Path]
    seconds: dict[str, float]  # load, explain (decode + all methods), render, total
    model: str
    bundled_synthetic: bool


def default_out_dir(video: str | Path) -> Path:
    """Where the CLI writes a video's files: stviz-out/<video file name without extension>."""
    return Path("stviz-out") / Path(video).stem


def load_classifier(model: Any = None, *, device: str = "auto", arch: str | None = None,
                    layout: str = "NCTHW", layer: str | None = None,
                    classes: str | Path | None = None, frames: int | None = None,
                    input_size: int | None = None) -> Any:
    """A `VideoClassifier` to explain: `model` as loaded (an `AttentionModel` or a
    `VideoClassifier`), or a stviz checkpoint folder/name (None: the bundled default), or a
    Hugging Face video transformer folder, or with `arch` a torchvision video state dict,
    or a TorchScript file (see
    `stviz.explain.load_classifier` for `layout`, `classes`, `frames`, `input_size`)."""
    from stviz.explain import VideoClassifier, as_classifier
    from stviz.explain import load_classifier as load

    if isinstance(model, (VideoClassifier, AttentionModel)):
        return as_classifier(model)
    return load(model, arch, layout=layout, classes=classes, frames=frames,
                input_size=input_size, layer=layer, device=device)


def explain(video: str | Path, model: Any = None, method: str | None = None,
            target: int | str | None = None, *, frames: int | None = None, dense: bool = False,
            window: int | None = None, stride: int | None = None, out: str | Path | None = None,
            formats: str | Sequence[str] | None = None, annotations: str | Path | None = None,
            cmap: str = DEFAULT_CMAP, alpha: float = DEFAULT_ALPHA, overwrite: bool = False,
            device: str = "auto", progress: Any = None,
            method_params: dict[str, Any] | None = None,
            render_size: int | None = DEFAULT_RENDER_SIZE, **load_options: Any) -> ExplainResult:
    """Explain why `model` (default: the bundled one) classifies `video` as it does, with
    `method` (default: the model's own attention; Grad-CAM for the I3D, which has none).

    `target`: the class to explain (name or index; default the predicted one). Default
    mode explains T = `frames` sampled frames and interpolates the others; `dense`
    explains windows of `window` frames every `stride` over the whole video.

    With `out`, write the files of `formats` there (default mp4, png, json; gif too; the
    names are in `stviz.render.outputs`; html: the interactive report.html), refusing to
    replace existing ones unless
    `overwrite`; `annotations`: a ground-truth file whose boxes and segments for this
    video are drawn; `render_size`: the overlay video's longest side at most (pixels; 0 or
    None: the video's own size). `progress(stage, done, total)` is called as work advances.
    `load_options` (arch, layout, layer, classes, input_size) go to `load_classifier`.
    """
    from stviz.explain import explain_video, get_method, resolve_target, sample_clip
    from stviz.render import outputs

    start = time.perf_counter()
    if not dense and (window or stride):
        raise StvizError("--window and --stride set the windows of --dense; add --dense")
    if method is not None:
        get_method(method, **(method_params or {}))
    fmts, record, info = _prepare("explain", video, out, formats, overwrite, annotations,
                                  cmap, alpha)
    clf = load_classifier(model, device=device, frames=frames, **load_options)
    method = method or clf.reference or "attention"
    loaded = time.perf_counter()
    resolve_target(clf.classes, target, 0)  # a wrong target fails before any decoding
    # The sampled frames are decoded here, once: the figures show some of them again.
    clip = None if dense else sample_clip(clf, video, frames, info)
    expl = explain_video(clf, video, method, target, frames, dense, window, stride,
                         None if progress is None else functools.partial(progress, "explaining"),
                         clip=clip, **(method_params or {}))
    explained = time.perf_counter()
    files: list[Path] = []
    if out is not None:
        truth = outputs.ground_truth(record, expl) if record is not None else None
        files = outputs.write_explanation(expl, out, fmts, truth=truth, cmap=cmap, alpha=alpha,
                                          overwrite=overwrite, progress=progress,
                                          render_size=render_size, info=info,
                                          frames=_decoded(clip))
    return ExplainResult(expl, files, _timings(start, loaded, explained), clf.name,
                         _bundled(clf))


def compare(video: str | Path, baselines: Sequence[str] = ("gradcam",), model: Any = None,
            target: int | str | None = None, *, frames: int | None = None,
            out: str | Path | None = None, formats: str | Sequence[str] | None = None,
            annotations: str | Path | None = None, cmap: str = DEFAULT_CMAP,
            alpha: float = DEFAULT_ALPHA, overwrite: bool = False, device: str = "auto",
            progress: Any = None, params: dict[str, dict[str, Any]] | None = None,
            render_size: int | None = DEFAULT_RENDER_SIZE, **load_options: Any) -> CompareResult:
    """Explain `video` with the model's own attention (stviz models; attention rollout for
    video transformers) and each baseline method on the same frames, and measure how much
    they agree: Spearman correlation of the temporal curves, IoU of the top-15% spatial
    regions, for every pair. With `out`, write compare.mp4/.gif, compare.png and
    compare.json there. Other arguments as in `explain`; `params` maps a method name to
    its parameters.
    """
    from stviz.explain import (
        agreement_table,
        compare_methods,
        get_method,
        resolve_target,
        sample_clip,
    )
    from stviz.render import outputs

    start = time.perf_counter()
    for name in baselines:
        get_method(name, **(params or {}).get(name, {}))
    fmts, record, info = _prepare("compare", video, out, formats, overwrite, annotations,
                                  cmap, alpha)
    clf = load_classifier(model, device=device, frames=frames, **load_options)
    own = [clf.reference] if clf.reference is not None else []
    names = list(dict.fromkeys(own + list(baselines)))
    if len(names) < 2:
        raise StvizError(f"compare needs two methods or more, got {', '.join(names) or 'none'}"
                         "; pass another --baseline (e.g. --baseline gradcam --baseline ig)")
    loaded = time.perf_counter()
    resolve_target(clf.classes, target, 0)
    clip = sample_clip(clf, video, frames, info)
    expls = compare_methods(clf, video, names, target, frames, params,
                            None if progress is None else functools.partial(progress,
                                                                            "explaining"),
                            clip=clip)
    agreement = agreement_table(expls)
    explained = time.perf_counter()
    files: list[Path] = []
    if out is not None:
        truth = outputs.ground_truth(record, expls[0]) if record is not None else None
        files = outputs.write_comparison(expls, agreement, out, fmts, truth=truth, cmap=cmap,
                                         alpha=alpha, overwrite=overwrite, progress=progress,
                                         render_size=render_size, info=info,
                                         frames=_decoded(clip))
    return CompareResult(expls, agreement, files, _timings(start, loaded, explained), clf.name,
                         _bundled(clf))


def _prepare(kind: str, video: str | Path, out: str | Path | None,
             formats: str | Sequence[str] | None, overwrite: bool,
             annotations: str | Path | None, cmap: str, alpha: float
             ) -> tuple[tuple[str, ...], Any, Any]:
    """(formats, the video's annotation record or None, its `stviz.video.VideoInfo`), after
    checking all a user can get wrong before the slow work: formats, colours, files in the
    way, the annotation file, and the video itself (missing, empty or undecodable)."""
    from stviz.render import outputs
    from stviz.video import probe

    fmts = outputs.parse_formats(formats or outputs.DEFAULT_FORMATS)
    outputs.check_style(cmap, alpha)
    if out is not None:
        outputs.planned_files(kind, out, fmts, overwrite)
    if annotations:
        from stviz.datasets.annotations import load_annotations

        record = load_annotations(annotations).find_video(video)
    else:
        record = None
    return fmts, record, probe(video)


def _decoded(clip: Any) -> dict[int, Any] | None:
    """A `Clip`'s decoded frames by video frame index, for the figures (None: no clip)."""
    return None if clip is None else dict(zip(clip.indices.tolist(), clip.frames))


def _timings(start: float, loaded: float, explained: float) -> dict[str, float]:
    end = time.perf_counter()
    return {"load": round(loaded - start, 3), "explain": round(explained - loaded, 3),
            "render": round(end - explained, 3), "total": round(end - start, 3)}


def _bundled(clf: Any) -> bool:
    return clf.stviz is not None and clf.stviz.is_bundled_synthetic


# Ground truth and localization metrics -----------------------------------------------


def annotations_summary(path: str | Path, format: str | None = None, *,
                        label_map: str | Path | None = None,
                        split_number: int = 1) -> dict[str, Any]:
    """Counts of an annotation file of any supported format: format, videos, classes,
    tubes, segments, annotated_frames, boxes, splits, frame size range, source."""
    from stviz.datasets.annotations import load_annotations, summarize

    ann = load_annotations(path, format, label_map=label_map, split_number=split_number)
    return {**summarize(ann), "source": str(ann.source)}


def localize_eval(dataset: str | Path, out: str | Path, *, html: bool = False,
                  html_videos: int = 20, html_rank: str = "pointing_game",
                  **options: Any) -> Any:
    """Explain every annotated video of a split with each method and measure spatial and
    temporal localization and faithfulness; writes metrics.json/.csv/.md and plots to
    `out`, caching per-video results there so a rerun resumes. With `html`, also
    report.html and video pages (see `localize_report`). Options and result:
    `stviz.evaluate.localize.localize_eval`."""
    from stviz.evaluate.localize import localize_eval as run
    from stviz.files import check_writable
    from stviz.render.html import REPORT_FILE

    if html:
        _check_rank(html_rank)
        check_writable(Path(out) / REPORT_FILE, options.get("overwrite", False))
    result = run(dataset, out, **options)
    if html and result.report:
        result.written += localize_report(out, html_videos, html_rank, overwrite=True)
    return result


def _check_rank(metric: str) -> None:
    from stviz.evaluate.scoring import VIDEO_TABLE

    if metric not in VIDEO_TABLE:
        raise StvizError(f"--html-rank {metric}: unknown; use one of {', '.join(VIDEO_TABLE)}")


def localize_report(folder: str | Path, videos: int = 20, rank: str = "pointing_game", *,
                    cmap: str = DEFAULT_CMAP, alpha: float = DEFAULT_ALPHA,
                    overwrite: bool = False, progress: Any = None) -> list[Path]:
    """report.html of a finished localize-eval folder: the metric table, the plots, a row
    per video, and a page (under videos/) for each of the `videos` worst and `videos` best
    videos by the first method's `rank` metric, drawn from the cached explanations with
    the ground truth of the run's annotation file. Needs no model."""
    from stviz.datasets.annotations import load_annotations
    from stviz.evaluate.localize import METRICS_FILE, cached_explanations, rank_videos, slug
    from stviz.evaluate.report import metric_cells
    from stviz.evaluate.scoring import VIDEO_TABLE
    from stviz.files import check_writable, write_text
    from stviz.render import html, outputs
    from stviz.video import iter_frames

    _check_rank(rank)
    out = Path(folder)
    check_writable(out / html.REPORT_FILE, overwrite)
    try:
        report = json.loads((out / METRICS_FILE).read_text())
        rows = [html.VideoRow(r["id"], r["label"], r["correct"], r["metrics"])
                for r in report["videos"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StvizError(f"{out / METRICS_FILE}: not a localize-eval report with per-video "
                         f"results ({exc}); run `stviz localize-eval --html --overwrite` into "
                         f"{out} (cached results are reused)") from exc
    chosen = rank_videos(report, rank, videos)
    ann = load_annotations(report["annotations"], report.get("format")) if chosen else None
    for done, i in enumerate(chosen, start=1):
        entry = report["videos"][i]
        expls = cached_explanations(out, entry)
        truth = outputs.ground_truth(ann.videos[entry["id"]], expls[0]) \
            if entry["id"] in ann.videos else outputs.GroundTruth()
        page = f"{html.VIDEOS_DIR}/{slug(entry['id'])}.html"
        html.write_video_page(
            expls, iter_frames(expls[0].video), out / page,
            agreement=_agreement(expls), boxes=truth.boxes, segments=truth.segments,
            title=entry["id"], back="../" + html.REPORT_FILE, cmap=cmap, alpha=alpha,
            subtitle=f"class {entry['label']} · {rank} of {expls[0].method} "
                     f"{rows[i].metrics[expls[0].method][rank]:.3f}", overwrite=True)
        rows[i].page = page
        if progress is not None:
            progress("writing video pages", done, len(chosen))
    plots = {caption: (out / name).read_bytes() for name, caption in (
        ("metrics.png", "the metrics per method"),
        ("faithfulness.png", "mean deletion and insertion curves")) if (out / name).is_file()}
    page = html.localize_page(report, metric_cells(report), rows, plots, VIDEO_TABLE, rank)
    return [write_text(out / html.REPORT_FILE, page, overwrite=True)]


def _agreement(expls: Sequence[Any]) -> dict[str, Any] | None:
    from stviz.explain import agreement_table

    return agreement_table(expls) if len(expls) > 1 else None


def report(folder: str | Path, *, annotations: str | Path | None = None,
           videos: int = 20, rank: str = "pointing_game", cmap: str = DEFAULT_CMAP,
           alpha: float = DEFAULT_ALPHA, overwrite: bool = False,
           progress: Any = None) -> list[Path]:
    """report.html of an existing output folder, again, without the model: a localize-eval
    folder (metrics.json; `videos`, `rank` as in `localize_report`), or an explain or
    compare folder (explanation.json/.npz, or compare.json with methods/), whose video is
    decoded again. `annotations`: ground truth to draw instead of the folder's own."""
    from stviz.evaluate.localize import METRICS_FILE
    from stviz.render import outputs

    out = Path(folder)
    if not out.is_dir():
        raise StvizError(f"{out}: no such folder; pass the --out folder of `stviz explain`, "
                         "`stviz compare` or `stviz localize-eval`")
    outputs.check_style(cmap, alpha)
    if (out / METRICS_FILE).is_file():
        return localize_report(out, videos, rank, cmap=cmap, alpha=alpha, overwrite=overwrite,
                               progress=progress)
    ann = None
    if annotations is not None:
        from stviz.datasets.annotations import load_annotations

        ann = load_annotations(annotations)
    return outputs.rebuild_page(out, ann, cmap=cmap, alpha=alpha, overwrite=overwrite,
                                progress=progress)
