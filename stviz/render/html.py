"""Interactive HTML reports: one self-contained page a person scrubs through.

Explanations, their video frames and metric tables in, `report.html` out (never a
model). A page needs no network and works from `file://`: scripts and styles are
inline, the video is embedded as an H.264 MP4 data URL, and the heatmaps are drawn
in the browser from the maps at feature resolution (a few kB per method), so a 10 s
clip with three methods stays near the size of its MP4.

    video page:     the video with the heatmap of the chosen method following the
                    playhead, opacity, the methods' temporal curves (click to seek),
                    ground truth, the prediction, runtimes and the agreement table
    localize page:  the metric table, the plots, one row per video linking to the
                    video pages of the best and worst videos

The templates are Jinja2 files in `render/templates/`, shipped as package data.
"""

from __future__ import annotations

import base64
import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stviz.errors import StvizError, warn
from stviz.explain.explanation import Explanation
from stviz.files import write_text
from stviz.render.colors import DEFAULT_ALPHA, DEFAULT_CMAP, colormap_lut
from stviz.render.overlay import Boxes, video_length

REPORT_FILE = "report.html"
VIDEOS_DIR = "videos"  # a localize report's video pages, beside it
MAX_SIDE = 640  # longer videos sides are scaled down to this in the page
TOP_CLASSES = 5
# matplotlib's tab10, the colours the PNG plots give the methods
METHOD_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

Frames = Iterable[tuple[int, np.ndarray]]


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("stviz.render", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _number
    return env


def _number(value: Any, digits: int = 3) -> str:
    """A metric as the tables show it: fixed digits, '-' when undefined."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_video(frames: Frames, fps: float, size: tuple[int, int]) -> bytes:
    """The frames as an H.264 MP4 (frame k at k/fps), scaled to `size` = (width, height)."""
    from stviz.video import VideoWriter

    with tempfile.TemporaryDirectory(prefix="stviz-html-") as tmp:
        path = Path(tmp) / "clip.mp4"
        with VideoWriter(path, fps) as writer:
            for _, frame in frames:
                if (frame.shape[1], frame.shape[0]) != size:
                    frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                writer.append(frame)
        return path.read_bytes()


def page_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """The video's size in the page: its own, or scaled so the longer side is `max_side`
    (even sides, as H.264 wants)."""
    scale = min(1.0, max_side / max(width, height, 1))
    return (max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2)))


def _method_data(expl: Explanation, color: str) -> dict[str, Any]:
    """What the page draws for one method: its maps as levels in [0, 1] on the clip's one
    scale (float32, base64), its curve, its sampled frames, and the crop of the frame
    the maps cover (video pixels; None: the whole frame)."""
    lo, hi = expl.value_range()
    levels = np.clip((expl.spatial - lo) / (hi - lo), 0.0, 1.0).astype("<f4")
    return {"name": expl.method, "color": color, "lo": lo, "hi": hi,
            "grid": list(expl.spatial.shape[1:]),
            "frames": [int(i) for i in expl.frame_indices],
            "temporal": [round(float(v), 8) for v in expl.temporal],
            "maps": _b64(levels.tobytes()), "crop": expl.crop}


def _truth_data(boxes: Boxes | None, segments: Sequence[tuple[int, int]] | None
                ) -> dict[str, Any]:
    return {"boxes": {str(int(k)): np.round(np.asarray(b, float).reshape(-1, 4), 1).tolist()
                      for k, b in (boxes or {}).items()},
            "segments": [[int(a), int(b)] for a, b in (segments or [])]}


def _prediction(expl: Explanation) -> list[dict[str, Any]]:
    order = [int(k) for k in np.argsort(-expl.probabilities, kind="stable")[:TOP_CLASSES]]
    if expl.target not in order:
        order.append(expl.target)
    return [{"name": expl.classes[k], "probability": float(expl.probabilities[k]),
             "predicted": k == expl.predicted, "explained": k == expl.target} for k in order]


def video_page(expls: Sequence[Explanation], video_mp4: bytes, size: tuple[int, int], *,
               agreement: Mapping[str, Any] | None = None, boxes: Boxes | None = None,
               segments: Sequence[tuple[int, int]] | None = None, title: str | None = None,
               subtitle: str = "", back: str | None = None, cmap: str = DEFAULT_CMAP,
               alpha: float = DEFAULT_ALPHA) -> str:
    """The HTML of a video page: `expls` explain the same video (the first is the
    reference whose prediction is shown), `video_mp4` is that video encoded at `size`.
    `boxes` and `segments` are ground truth in video frames and pixels; `back` a link
    shown at the top (a localize report's video pages point back to it)."""
    ref = expls[0]
    name = Path(ref.video).name
    data = {
        "video": {"name": name, "fps": float(ref.fps) or 25.0, "frames": video_length(ref),
                  "width": int(ref.width) or size[0], "height": int(ref.height) or size[1]},
        "methods": [_method_data(e, METHOD_COLORS[i % len(METHOD_COLORS)])
                    for i, e in enumerate(expls)],
        "truth": _truth_data(boxes, segments),
        "lut": _b64(colormap_lut(cmap).tobytes()),
        "alpha": float(alpha),
    }
    methods = [{"name": e.method, "seconds": e.seconds, "color": m["color"],
                "params": {k: v for k, v in e.params.items() if k != "model"},
                "peaks": [int(e.frame_indices[i]) for i in e.top_frames(3)]}
               for e, m in zip(expls, data["methods"])]
    return _environment().get_template("video.html.j2").render(
        title=title or name, subtitle=subtitle, back=back, data=data, methods=methods,
        model=ref.params.get("model"), prediction=_prediction(ref), agreement=agreement,
        video_src="data:video/mp4;base64," + _b64(video_mp4), size=size, cmap=cmap,
        fill=ref.fill, crop=ref.crop, has_truth=bool(boxes or segments))


def write_video_page(expls: Sequence[Explanation], frames: Frames, out: str | Path, *,
                     overwrite: bool = False, **page: Any) -> Path:
    """`video_page` of the explanations with `frames` (every (index, RGB frame) of the
    video) encoded into it, written atomically to `out`."""
    ref = expls[0]
    fps = float(ref.fps)
    if fps <= 0:
        warn(f"{ref.video}: explanation records no frame rate; {out} plays it at 25 fps")
        fps = 25.0
    stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise StvizError(f"{out}: no frames to show; is {ref.video} empty?")
    size = page_size(first[1].shape[1], first[1].shape[0])
    mp4 = encode_video(_chain(first, stream), fps, size)
    return write_text(out, video_page(expls, mp4, size, **page), overwrite)


def _chain(first: tuple[int, np.ndarray], rest: Frames) -> Frames:
    yield first
    yield from rest


# Localization reports -------------------------------------------------------------


@dataclass
class VideoRow:
    """One video of a localize-eval run in the report's per-video table: each method's
    per-video metrics (`metrics[method][name]`) and the link to its page, if it has one."""

    id: str
    label: str | None
    correct: bool | None
    metrics: dict[str, dict[str, float | None]]
    page: str | None = None


def localize_page(report: Mapping[str, Any],
                  table: tuple[Sequence[str], Sequence[tuple[str, Sequence[tuple[Any, bool]]]]],
                  rows: Sequence[VideoRow], plots: Mapping[str, bytes], columns: Sequence[str],
                  rank: str) -> str:
    """The HTML of a localize-eval report (metrics.json's content): `table` is (methods,
    rows of (metric label, [(value, is best)] per method)), `plots` PNG bytes by caption,
    `rows` the videos with the per-video `columns` of each method; `rank` names the metric
    the linked best and worst videos were chosen by."""
    methods, metric_rows = table
    return _environment().get_template("localize.html.j2").render(
        report=report, methods=list(methods), table=metric_rows, rows=rows, columns=columns,
        rank=rank, linked=sum(r.page is not None for r in rows),
        plots={caption: "data:image/png;base64," + _b64(png) for caption, png in plots.items()})
