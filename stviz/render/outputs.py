"""The files `stviz explain` and `stviz compare` write, and how they are drawn.

One place knows the file names, the formats and the ground truth drawn on them.
Inputs are `Explanation`s and the video they explain (decoded here: the key frames,
unless the caller passes them already decoded, then one streaming pass per video file
written); never a model.

    explain: overlay.mp4 | overlay.gif, temporal.png, keyframes.png,
             explanation.json, explanation.npz, report.html
    compare: compare.mp4 | compare.gif, compare.png, compare.json, report.html
             (with methods/<method>/explanation.json|.npz, the maps it draws)

`report.html` is built from the json files (the html format implies json), plus
ground_truth.json when annotations are drawn, so `rebuild_page` can draw it again
from the folder alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stviz.errors import StvizError
from stviz.explain.explanation import ARRAYS_FILE, SUMMARY_FILE, Explanation
from stviz.files import check_output_dir, check_writable, output_set, write_json
from stviz.render.colors import DEFAULT_ALPHA, DEFAULT_CMAP, ColorScale, check_alpha
from stviz.render.compare import render_compare_sheet, render_compare_video
from stviz.render.figures import key_frames
from stviz.render.html import MAX_SIDE, REPORT_FILE, write_video_page
from stviz.render.keyframes import render_keyframes
from stviz.render.overlay import render_overlay
from stviz.render.temporal import render_temporal
from stviz.video import VideoInfo, fit_size, iter_frames, read_frames

FORMATS = ("mp4", "gif", "png", "json", "html")
DEFAULT_FORMATS = ("mp4", "png", "json")
# Overlay videos are drawn at most this many pixels on the long side (0: the video's size).
DEFAULT_RENDER_SIZE = 720
KEY_FRAMES = 6  # frames shown in keyframes.png, temporal.png and compare.png
COMPARE_FILE = "compare.json"
METHODS_DIR = "methods"  # compare: each method's explanation, for report.html
TRUTH_FILE = "ground_truth.json"  # the ground truth a report.html draws
# The files each format adds, per command.
FILES = {
    "explain": {"mp4": ("overlay.mp4",), "gif": ("overlay.gif",),
                "png": ("temporal.png", "keyframes.png"), "json": (SUMMARY_FILE, ARRAYS_FILE),
                "html": (REPORT_FILE, TRUTH_FILE)},
    "compare": {"mp4": ("compare.mp4",), "gif": ("compare.gif",), "png": ("compare.png",),
                "json": (COMPARE_FILE,), "html": (REPORT_FILE, TRUTH_FILE, METHODS_DIR)},
}

StageProgress = Callable[[str, int, int], None]  # progress(stage, done, total)


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """'mp4,png' or ['mp4', 'png'] -> ('mp4', 'png'); unknown names are user errors.
    html brings json with it: the page is built from those files."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    names = [f.strip().lower().lstrip(".") for f in items if f.strip()]
    bad = [f for f in names if f not in FORMATS]
    if bad or not names:
        raise StvizError(f"--format {','.join(bad) or repr(formats)}: unknown; give a "
                         f"comma-separated list of {', '.join(FORMATS)}")
    if "html" in names:
        names.append("json")
    return tuple(dict.fromkeys(names))


def planned_files(kind: str, out_dir: str | Path, formats: Sequence[str],
                  overwrite: bool = False) -> list[Path]:
    """The files `kind` ("explain" or "compare") will write, checked before any work: the
    folder must be writable, and an existing file of the kind (of any format: a folder
    holds one run's set) is refused unless `overwrite`, never replaced silently."""
    out = check_output_dir(out_dir)
    for path in (out / name for name in family(kind)):
        check_writable(path, overwrite)
    return [out / name for fmt in formats for name in FILES[kind][fmt]]


def family(kind: str) -> list[str]:
    """Every file name `kind` writes in some format: one run's set replaces all of them."""
    return [name for names in FILES[kind].values() for name in names]


def check_style(cmap: str, alpha: float) -> None:
    """Fail on a bad colormap or alpha before the work, not after it."""
    ColorScale(0.0, 1.0, cmap)
    check_alpha(alpha)


@dataclass
class GroundTruth:
    """A video's annotations in its own frames and pixels, ready to draw."""

    boxes: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> (K, 4) x1,y1,x2,y2
    segments: list[tuple[int, int]] = field(default_factory=list)  # (first, last) frame

    def save(self, path: Path, overwrite: bool) -> Path:
        return write_json(path, {
            "boxes": {str(k): np.round(b, 2).tolist() for k, b in sorted(self.boxes.items())},
            "segments": [list(s) for s in self.segments]}, overwrite)

    @classmethod
    def load(cls, path: Path) -> GroundTruth:
        try:
            d = json.loads(path.read_text())
            return cls({int(k): np.asarray(b, np.float64).reshape(-1, 4)
                        for k, b in d["boxes"].items()},
                       [(int(a), int(b)) for a, b in d["segments"]])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StvizError(f"{path}: not a stviz ground-truth file ({exc}); delete it, or "
                             "pass --annotations to draw the ground truth again") from exc


def ground_truth(record: Any, expl: Explanation) -> GroundTruth:
    """Boxes scaled to the explained video's size, segments [start, end) as the
    (first, last) frames inside them; times in seconds use the video's fps."""
    normalized = record.box_unit == "normalized"
    res = record.resolved(fps=expl.fps, width=expl.width if normalized else None,
                          height=expl.height if normalized else None)
    scale = np.ones(4)
    if res.width and res.height and (res.width, res.height) != (expl.width, expl.height):
        scale = np.array([expl.width / res.width, expl.height / res.height] * 2)
    boxes = {round(t): np.asarray(b, np.float64).reshape(-1, 4) * scale
             for t, b in res.boxes.items()}
    segments = []
    for start, end in res.segments:
        first, last = math.ceil(start), math.ceil(end) - 1  # frames i with start <= i < end
        if last >= first:
            segments.append((first, last))
    return GroundTruth(boxes, segments)


def write_explanation(expl: Explanation, out_dir: str | Path, formats: Sequence[str], *,
                      truth: GroundTruth | None = None, cmap: str = DEFAULT_CMAP,
                      alpha: float = DEFAULT_ALPHA, overwrite: bool = False,
                      progress: StageProgress | None = None,
                      render_size: int | None = DEFAULT_RENDER_SIZE,
                      info: VideoInfo | None = None,
                      frames: Mapping[int, np.ndarray] | None = None) -> list[Path]:
    """The files of `planned_files("explain", ...)`: the explanation itself, its 'when'
    and 'where' figures, and the overlay over every frame of the video (at most
    `render_size` px on the long side). `info` (the video's `probe`) and `frames` (video
    frames already decoded at full size, by index: the sampled clip's) spare decoding
    them again."""
    names = [p.name for p in planned_files("explain", out_dir, formats, overwrite)]
    video = _Video(expl.video, info, frames or {})
    with output_set(out_dir, names, overwrite, family("explain")) as out:
        files = _write_explanation(expl, video, out, formats, truth or GroundTruth(), cmap,
                                   alpha, progress, render_size)
    return [Path(out_dir) / f.name for f in files]


def _write_explanation(expl: Explanation, video: _Video, out: Path, formats: Sequence[str],
                       truth: GroundTruth, cmap: str, alpha: float,
                       progress: StageProgress | None, render_size: int | None
                       ) -> list[Path]:
    overwrite = True  # `out` is this run's own temporary folder
    files: list[Path] = []
    if "json" in formats:
        files += expl.save(out, overwrite)
    if "png" in formats:
        frames = video.key_frames({*key_frames(expl, KEY_FRAMES),
                                   *key_frames(expl, KEY_FRAMES, spread=True)})
        files.append(render_temporal(expl, frames, out / "temporal.png", k=KEY_FRAMES,
                                     segment=truth.segments or None, cmap=cmap, alpha=alpha,
                                     overwrite=overwrite))
        files.append(render_keyframes(expl, frames, out / "keyframes.png", k=KEY_FRAMES,
                                      cmap=cmap, alpha=alpha, boxes=truth.boxes,
                                      overwrite=overwrite))
    for fmt in ("mp4", "gif"):
        if fmt in formats:
            name = f"overlay.{fmt}"
            files.append(render_overlay(expl, video.stream(expl, f"rendering {name}", progress,
                                                           render_size),
                                        out / name, cmap=cmap, alpha=alpha, boxes=truth.boxes,
                                        overwrite=overwrite))
    if "html" in formats:
        files += _write_page([expl], None, video, out, truth, cmap, alpha, overwrite,
                             progress)
    return files


def _write_page(expls: Sequence[Explanation], agreement: dict[str, Any] | None,
                video: _Video, out: Path, truth: GroundTruth, cmap: str, alpha: float,
                overwrite: bool, progress: StageProgress | None) -> list[Path]:
    """report.html, and ground_truth.json beside it when there is ground truth (an old
    one is removed: the folder then has none)."""
    files = []
    if truth.boxes or truth.segments:
        files.append(truth.save(out / TRUTH_FILE, overwrite))
    else:
        (out / TRUTH_FILE).unlink(missing_ok=True)
    subtitle = "compare" if agreement else f"explain · {expls[0].method}"
    # the page's video is at most MAX_SIDE px: frames come scaled by FFmpeg, the fast way
    files.append(write_video_page(expls, video.stream(expls[0], f"rendering {REPORT_FILE}",
                                                      progress, MAX_SIDE),
                                  out / REPORT_FILE, agreement=agreement, boxes=truth.boxes,
                                  segments=truth.segments, subtitle=subtitle, cmap=cmap,
                                  alpha=alpha, overwrite=overwrite))
    return files


def compare_summary(expls: Sequence[Explanation], agreement: dict[str, Any]) -> dict[str, Any]:
    """compare.json: each method's seconds, parameters, peak frames and temporal curve, and
    the agreement of every pair (Spearman of the curves, IoU of the top regions)."""
    ref = expls[0]
    return {
        "video": ref.video,
        "model": ref.params.get("model"),
        "predicted_class": ref.predicted_class,
        "target_class": ref.target_class,
        "probability": round(float(ref.probabilities[ref.predicted]), 6),
        "frame_indices": [int(i) for i in ref.frame_indices],
        "methods": {e.method: {"seconds": e.seconds, "params": e.params,
                               "peak_frames": [int(e.frame_indices[i]) for i in e.top_frames(5)],
                               "temporal": [round(float(v), 8) for v in e.temporal]}
                    for e in expls},
        "agreement": agreement,
    }


def write_comparison(expls: Sequence[Explanation], agreement: dict[str, Any],
                     out_dir: str | Path, formats: Sequence[str], *,
                     truth: GroundTruth | None = None, cmap: str = DEFAULT_CMAP,
                     alpha: float = DEFAULT_ALPHA, overwrite: bool = False,
                     progress: StageProgress | None = None,
                     render_size: int | None = DEFAULT_RENDER_SIZE,
                     info: VideoInfo | None = None,
                     frames: Mapping[int, np.ndarray] | None = None) -> list[Path]:
    """The files of `planned_files("compare", ...)`: the methods side by side on every frame
    (each panel at most `render_size` px on the long side), on the first method's key
    frames, and the numbers. `info` and `frames` as in `write_explanation`."""
    names = [p.name for p in planned_files("compare", out_dir, formats, overwrite)]
    video = _Video(expls[0].video, info, frames or {})
    with output_set(out_dir, names, overwrite, family("compare")) as out:
        files = _write_comparison(list(expls), agreement, video, out, formats,
                                  truth or GroundTruth(), cmap, alpha, progress, render_size)
    return [Path(out_dir) / f.name for f in files]


def _write_comparison(expls: list[Explanation], agreement: dict[str, Any], video: _Video,
                      out: Path, formats: Sequence[str], truth: GroundTruth, cmap: str,
                      alpha: float, progress: StageProgress | None, render_size: int | None
                      ) -> list[Path]:
    overwrite = True  # `out` is this run's own temporary folder
    files: list[Path] = []
    if "json" in formats:
        files.append(write_json(out / COMPARE_FILE, compare_summary(expls, agreement),
                                overwrite))
    if "png" in formats:
        frames = video.key_frames(set(key_frames(expls[0], KEY_FRAMES)))
        files.append(render_compare_sheet(expls, frames, out / "compare.png", k=KEY_FRAMES,
                                          cmap=cmap, alpha=alpha, boxes=truth.boxes,
                                          overwrite=overwrite))
    for fmt in ("mp4", "gif"):
        if fmt in formats:
            name = f"compare.{fmt}"
            files.append(render_compare_video(
                expls, video.stream(expls[0], f"rendering {name}", progress, render_size),
                out / name, cmap=cmap, alpha=alpha, boxes=truth.boxes, overwrite=overwrite))
    if "html" in formats:
        for e in expls:
            files += e.save(out / METHODS_DIR / e.method, overwrite)
        files += _write_page(expls, agreement, video, out, truth, cmap, alpha, overwrite,
                             progress)
    return files


def rebuild_page(folder: str | Path, annotations: Any = None, *,
                 cmap: str = DEFAULT_CMAP, alpha: float = DEFAULT_ALPHA,
                 overwrite: bool = False, progress: StageProgress | None = None) -> list[Path]:
    """report.html of an explain or compare folder, again, from its files and the video
    they explain (decoded again; no model). The ground truth drawn is the video's record
    in `annotations` (an `AnnotationSet`) when given, else the folder's own."""
    out = Path(folder)
    check_writable(out / REPORT_FILE, overwrite)
    if (out / COMPARE_FILE).is_file():
        try:
            summary = json.loads((out / COMPARE_FILE).read_text())
            names, agreement = list(summary["methods"]), summary["agreement"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StvizError(f"{out / COMPARE_FILE}: unreadable ({exc}); run `stviz compare "
                             "--html` again") from exc
        expls = [_load_explanation(out / METHODS_DIR / name, "compare") for name in names]
    else:
        expls, agreement = [_load_explanation(out, "explain")], None
    if annotations is not None:
        truth = ground_truth(annotations.find_video(expls[0].video), expls[0])
    elif (out / TRUTH_FILE).is_file():
        truth = GroundTruth.load(out / TRUTH_FILE)
    else:
        truth = GroundTruth()
    _check_video(expls[0], out)
    return _write_page(expls, agreement, _Video(expls[0].video, None, {}), out, truth, cmap,
                       alpha, True, progress)


def _load_explanation(folder: Path, command: str) -> Explanation:
    if not (folder / SUMMARY_FILE).is_file():
        raise StvizError(f"{folder}: no {SUMMARY_FILE}; run `stviz {command} --html` (or "
                         f"`--format json`) into it first")
    return Explanation.load(folder)


def _check_video(expl: Explanation, out: Path) -> None:
    if not Path(expl.video).is_file():
        raise StvizError(f"{expl.video}: the video {out} explains is not there (paths are "
                         "relative to where the run started); run `stviz report` from that "
                         "folder, or put the video back")


@dataclass
class _Video:
    """The explained video and what the caller already decoded of it."""

    path: str | Path
    info: VideoInfo | None
    frames: Mapping[int, np.ndarray]

    def key_frames(self, indices: set[int]) -> dict[int, np.ndarray]:
        """Full-size frames at `indices`, decoding only those not at hand."""
        frames = dict(self.frames)
        missing = sorted(indices - set(frames))
        if missing:
            frames.update(zip(missing, read_frames(self.path, missing, info=self.info)))
        return {i: frames[i] for i in sorted(indices)}

    def stream(self, expl: Explanation, stage: str, progress: StageProgress | None,
               render_size: int | None) -> Iterator[tuple[int, np.ndarray]]:
        """Every frame of the video `expl` explains, at most `render_size` px on the long
        side, reporting progress as it goes."""
        size = fit_size(expl.width, expl.height, render_size)
        for done, item in enumerate(iter_frames(self.path, size=size, info=self.info),
                                    start=1):
            yield item
            if progress is not None:
                progress(stage, done, expl.video_frames)
