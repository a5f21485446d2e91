"""The files `stviz explain` and `stviz compare` write, and how they are drawn.

One place knows the file names, the formats and the ground truth drawn on them.
Inputs are `Explanation`s and the video they explain (decoded here: the key frames
once, then one streaming pass per video file written); never a model.

    explain: overlay.mp4 | overlay.gif, temporal.png, keyframes.png,
             explanation.json, explanation.npz
    compare: compare.mp4 | compare.gif, compare.png, compare.json
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stviz.errors import StvizError
from stviz.explain.explanation import ARRAYS_FILE, SUMMARY_FILE, Explanation
from stviz.files import check_writable, write_json
from stviz.render.colors import DEFAULT_ALPHA, DEFAULT_CMAP, ColorScale, check_alpha
from stviz.render.compare import render_compare_sheet, render_compare_video
from stviz.render.figures import key_frames
from stviz.render.keyframes import render_keyframes
from stviz.render.overlay import render_overlay
from stviz.render.temporal import render_temporal

FORMATS = ("mp4", "gif", "png", "json")
DEFAULT_FORMATS = ("mp4", "png", "json")
# Overlay videos are drawn at most this many pixels on the long side (0: the video's size).
DEFAULT_RENDER_SIZE = 720
KEY_FRAMES = 6  # frames shown in keyframes.png, temporal.png and compare.png
COMPARE_FILE = "compare.json"
# The files each format adds, per command.
FILES = {
    "explain": {"mp4": ("overlay.mp4",), "gif": ("overlay.gif",),
                "png": ("temporal.png", "keyframes.png"), "json": (SUMMARY_FILE, ARRAYS_FILE)},
    "compare": {"mp4": ("compare.mp4",), "gif": ("compare.gif",), "png": ("compare.png",),
                "json": (COMPARE_FILE,)},
}

StageProgress = Callable[[str, int, int], None]  # progress(stage, done, total)


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """'mp4,png' or ['mp4', 'png'] -> ('mp4', 'png'); unknown names are user errors."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    names = [f.strip().lower().lstrip(".") for f in items if f.strip()]
    bad = [f for f in names if f not in FORMATS]
    if bad or not names:
        raise StvizError(f"--format {','.join(bad) or repr(formats)}: unknown; give a "
                         f"comma-separated list of {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(names))


def planned_files(kind: str, out_dir: str | Path, formats: Sequence[str],
                  overwrite: bool = False) -> list[Path]:
    """The files `kind` ("explain" or "compare") will write, checked before any work:
    an existing file is refused unless `overwrite`, never replaced silently."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise StvizError(f"{out}: is a file, not a folder; pass another --out")
    files = [out / name for fmt in formats for name in FILES[kind][fmt]]
    for path in files:
        check_writable(path, overwrite)
    return files


def check_style(cmap: str, alpha: float) -> None:
    """Fail on a bad colormap or alpha before the work, not after it."""
    ColorScale(0.0, 1.0, cmap)
    check_alpha(alpha)


@dataclass
class GroundTruth:
    """A video's annotations in its own frames and pixels, ready to draw."""

    boxes: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> (K, 4) x1,y1,x2,y2
    segments: list[tuple[int, int]] = field(default_factory=list)  # (first, last) frame


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
                      render_size: int | None = DEFAULT_RENDER_SIZE) -> list[Path]:
    """The files of `planned_files("explain", ...)`: the explanation itself, its 'when'
    and 'where' figures, and the overlay over every frame of the video (at most
    `render_size` px on the long side)."""
    out = Path(out_dir)
    truth = truth or GroundTruth()
    files: list[Path] = []
    if "json" in formats:
        files += expl.save(out, overwrite)
    if "png" in formats:
        frames = _key_frames(expl.video, {*key_frames(expl, KEY_FRAMES),
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
            files.append(render_overlay(expl, _stream(expl, f"rendering {name}", progress,
                                                      render_size),
                                        out / name, cmap=cmap, alpha=alpha, boxes=truth.boxes,
                                        overwrite=overwrite))
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
                     render_size: int | None = DEFAULT_RENDER_SIZE) -> list[Path]:
    """The files of `planned_files("compare", ...)`: the methods side by side on every frame
    (each panel at most `render_size` px on the long side), on the first method's key
    frames, and the numbers."""
    out = Path(out_dir)
    expls = list(expls)
    truth = truth or GroundTruth()
    files: list[Path] = []
    if "json" in formats:
        files.append(write_json(out / COMPARE_FILE, compare_summary(expls, agreement),
                                overwrite))
    if "png" in formats:
        frames = _key_frames(expls[0].video, key_frames(expls[0], KEY_FRAMES))
        files.append(render_compare_sheet(expls, frames, out / "compare.png", k=KEY_FRAMES,
                                          cmap=cmap, alpha=alpha, boxes=truth.boxes,
                                          overwrite=overwrite))
    for fmt in ("mp4", "gif"):
        if fmt in formats:
            name = f"compare.{fmt}"
            files.append(render_compare_video(
                expls, _stream(expls[0], f"rendering {name}", progress, render_size), out / name,
                cmap=cmap, alpha=alpha, boxes=truth.boxes, overwrite=overwrite))
    return files


def _key_frames(video: str | Path, indices: Sequence[int] | set[int]) -> dict[int, np.ndarray]:
    from stviz.video import read_frames

    wanted = sorted(indices)
    return dict(zip(wanted, read_frames(video, wanted)))


def _stream(expl: Explanation, stage: str, progress: StageProgress | None,
            render_size: int | None) -> Iterator[tuple[int, np.ndarray]]:
    """Every frame of the explained video, at most `render_size` px on the long side,
    reporting progress as it goes."""
    from stviz.video import fit_size, iter_frames

    size = fit_size(expl.width, expl.height, render_size)
    for done, item in enumerate(iter_frames(expl.video, size=size), start=1):
        yield item
        if progress is not None:
            progress(stage, done, expl.video_frames)

