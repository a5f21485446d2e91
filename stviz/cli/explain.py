"""`stviz explain` and `stviz compare`: where and when a model looked in one video.

Options are parsed here, the work is `stviz.api.explain` / `stviz.api.compare`, and
the results are printed with Rich. Heavy modules load inside the commands, so
`stviz --help` stays instant; the defaults below that mirror library constants
(methods, colormap, alpha, formats) are checked against them by the tests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from stviz.cli.common import (
    FRAME_COUNT,
    LOADING,
    LOADING_OPTIONS,
    MODEL_OPTION,
    Settings,
    StageProgress,
    common_options,
    out,
)

METHODS = ("attention", "attention-rollout", "gradcam", "guided-gradcam", "saliency",
           "smoothgrad", "ig", "occlusion", "frame-ablation")
# Each method's parameters and defaults, for --help (checked against the classes by a test).
METHOD_PARAMS = {"attention-rollout": "head_fusion=mean discard=0.0",
                 "smoothgrad": "samples=8 noise=0.15 batch=2 seed=0", "ig": "steps=32 batch=2",
                 "occlusion": "window_frames=auto stride_frames=auto window_cells=2 "
                              "stride_cells=1 batch=4",
                 "frame-ablation": "batch=4"}
DEFAULT_CMAP, DEFAULT_ALPHA, DEFAULT_FORMATS = "inferno", 0.45, "mp4,png,json"
DEFAULT_RENDER_SIZE = 720
TOP_CLASSES = 5
PEAKS = 3


_SHARED = ("model", "target", "frames", "out_dir", "formats", "annotations", "cmap", "alpha",
           "render_size", "overwrite", *LOADING)
HTML_HELP = ("Also write report.html: one self-contained page (no network, opens from "
             "file://) with the video, the heatmap following the playhead, an opacity slider, "
             "the temporal curves (click to seek), ground truth, prediction and runtimes. "
             "Rebuild it later with `stviz report DIR`.")


def output_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The model, target, output and drawing options both commands share, handed to the
    command as one `shared` dict of `stviz.api` keywords (`out` defaulted per video)."""
    options = [
        MODEL_OPTION,
        click.option("--target", default=None, metavar="CLASS",
                     help="Class to explain, by name or index [default: the predicted one]."),
        click.option("--frames", "-t", type=FRAME_COUNT, default=None, metavar="T",
                     help="Frames sampled uniformly per clip [default: the model's T]."),
        click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                     default=None, help="Folder for the files [default: stviz-out/<video "
                                        "name without extension>]."),
        click.option("--format", "formats", default=DEFAULT_FORMATS, show_default=True,
                     metavar="LIST", help="Comma-separated: mp4 and/or gif (the video), png "
                                          "(figures), json (numbers), html (as --html)."),
        click.option("--html", is_flag=True, help=HTML_HELP),
        click.option("--annotations", type=click.Path(path_type=Path), default=None,
                     metavar="FILE", help="Ground truth to draw: boxes in the key frames, "
                     "segments shaded over time. Any format `stviz` reads (synth "
                     "annotations.json, UCF101-24, THUMOS, ...); the record whose id is the "
                     "video's name without extension."),
        click.option("--cmap", default=DEFAULT_CMAP, show_default=True,
                     help="Matplotlib colormap of the heatmaps (e.g. jet, viridis)."),
        click.option("--alpha", type=click.FloatRange(0, 1), default=DEFAULT_ALPHA,
                     show_default=True, help="Heatmap opacity over the frame."),
        click.option("--render-size", type=click.IntRange(min=0), default=DEFAULT_RENDER_SIZE,
                     show_default=True, metavar="PX",
                     help="Longest side of overlay.mp4 / compare.mp4 panels at most, in "
                          "pixels (smaller videos keep their size; 0: always the video's "
                          "own size). A 1080p video drawn at full size takes about three "
                          "times longer."),
        click.option("--overwrite", is_flag=True,
                     help="Replace existing files in --out (never done otherwise)."),
        *LOADING_OPTIONS,
    ]

    @functools.wraps(fn)
    def bundle(*args: Any, **kwargs: Any) -> Any:
        from stviz import api

        shared = {name: kwargs.pop(name) for name in _SHARED}
        shared["out"] = shared.pop("out_dir") or api.default_out_dir(kwargs["video"])
        if kwargs.pop("html"):
            shared["formats"] += ",html"
        return fn(*args, shared=shared, **kwargs)

    return functools.reduce(lambda f, option: option(f), reversed(options), bundle)


@click.command()
@click.argument("video", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--method", default=None, metavar="NAME",
              help="One of: " + ", ".join(METHODS) + ". attention is the model's own "
                   "masks and temporal weights (stviz models; free with inference). "
                   "attention-rollout is a video transformer's own attention (Hugging Face "
                   "VideoMAE, TimeSformer, ViViT; torchvision mvit_v2_s, swin3d_t), rolled "
                   "out through its layers (Abnar & Zuidema 2020); for TimeSformer's divided "
                   "attention each block is its temporal step (each patch over the frames) "
                   "then its spatial step (each frame's patches; the CLS token averages its "
                   "per-frame rows), both rolled out in the order they run; MViT's pooling "
                   "counts as the average over each pooling window, Swin3D's shifted windows "
                   "as block-diagonal attention and its patch merging as the average of the "
                   "2x2 tokens merged. [default: attention; gradcam for models with no "
                   "attention of their own, as i3d-kinetics400]")
@click.option("--dense", is_flag=True,
              help="Explain windows over the whole video instead of interpolating between "
                   "T sampled frames (slower; every frame gets its own map).")
@click.option("--window", type=FRAME_COUNT, default=None, metavar="FRAMES",
              help="--dense: frames per window [default: T].")
@click.option("--stride", type=click.IntRange(min=1), default=None, metavar="FRAMES",
              help="--dense: frames between window starts [default: window / 2].")
@click.option("--param", "-p", "params", multiple=True, metavar="[METHOD.]NAME=VALUE",
              help="A method parameter, repeatable (e.g. -p steps=16 for ig). " +
                   "; ".join(f"{m}: {p}" for m, p in METHOD_PARAMS.items()) + ".")
@output_options
@common_options
def explain(video: Path, method: str, dense: bool, window: int | None, stride: int | None,
            params: tuple[str, ...], shared: dict[str, Any], settings: Settings) -> None:
    """Show where and when a model looked to classify VIDEO.

    Writes, into --out: overlay.mp4 (the heatmap over every frame at the video's
    fps, with a relevance timeline), temporal.png (relevance over time with key
    frames), keyframes.png (the most relevant frames), explanation.json (prediction,
    peak frames, settings) and explanation.npz (the maps and curves), with --html
    report.html (all of it in one interactive page), and prints the prediction, the
    peak frames and the timings. Existing files are never
    replaced without --overwrite.

    \b
    Examples:
      stviz explain clip.mp4
      stviz explain clip.mp4 --method gradcam --target jump --format mp4,gif
      stviz explain clip.mp4 --method ig --param steps=64
      stviz explain clip.mp4 --dense --window 16 --stride 4 --out runs/clip
      stviz explain clip.mp4 --model runs/my-model --annotations annotations.json --html
      stviz explain clip.mp4 --model r3d.pt --arch r3d_18 --method gradcam
      stviz explain clip.mp4 --model videomae-folder/ --method attention-rollout \\
          -p head_fusion=max -p discard=0.9
    """
    from stviz import api

    with StageProgress(settings) as bar:
        result = api.explain(video, method=method, dense=dense, window=window, stride=stride,
                             device=settings.device, progress=bar,
                             method_params=parse_params(params, [method or "default"])
                             .get(method or "default"),
                             **shared)
    if settings.quiet:
        for path in result.files:
            click.echo(path)
        return
    expl = result.explanation
    _say_video(expl, result.model)
    out.print(f"[bold]method[/] {expl.method}" + (" (dense)" if expl.fill == "dense" else
                                                   f" on {len(expl.frame_indices)} frames"))
    out.print(_prediction_table(expl))
    out.print(f"[bold]peak frames[/] {_peaks(expl)}")
    _say_end(result, {"explain": "explain (decode + method)"})


@click.command()
@click.argument("video", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--baseline", "-b", "baselines", multiple=True, default=("gradcam",),
              show_default=True, metavar="NAME",
              help="Method to compare with the model's own attention; repeat it or give a "
                   "comma-separated list. One of: " + ", ".join(METHODS[1:]) + ".")
@click.option("--param", "-p", "params", multiple=True, metavar="METHOD.NAME=VALUE",
              help="A baseline's parameter, repeatable (e.g. -p ig.steps=16). " +
                   "; ".join(f"{m}: {p}" for m, p in METHOD_PARAMS.items()) + ".")
@output_options
@common_options
def compare(video: Path, baselines: tuple[str, ...], params: tuple[str, ...],
            shared: dict[str, Any], settings: Settings) -> None:
    """Explain VIDEO with several methods and measure how much they agree.

    The model's own attention (stviz models; attention-rollout for video transformers)
    and every --baseline explain the same sampled frames. Agreement of
    every pair: Spearman correlation of the temporal curves ("when") and IoU of the
    top-15% spatial regions ("where"), averaged over frames. Writes, into --out:
    compare.mp4 (the methods side by side on every frame), compare.png (their maps on
    the key frames, and their curves) and compare.json (each method's seconds and
    curve, and the pairwise agreement); with --html report.html, one page to switch
    between the methods' heatmaps on the playing video (their maps are kept in
    methods/ to rebuild it).

    \b
    Examples:
      stviz compare clip.mp4 --baseline gradcam --baseline ig
      stviz compare clip.mp4 -b gradcam,saliency,occlusion --format png,json
      stviz compare clip.mp4 -b gradcam,saliency --html
      stviz compare clip.mp4 -b ig,smoothgrad -p ig.steps=16 -p smoothgrad.samples=4
      stviz compare clip.mp4 --model timesformer-folder/ -b gradcam,ig
    """
    from stviz import api

    names = [n.strip() for b in baselines for n in b.split(",") if n.strip()]
    by_method = parse_params(params, names, prefixed=True)
    with StageProgress(settings) as bar:
        result = api.compare(video, names, device=settings.device, progress=bar,
                             params=by_method, **shared)
    if settings.quiet:
        for path in result.files:
            click.echo(path)
        return
    ref = result.explanations[0]
    _say_video(ref, result.model)
    out.print(_prediction_table(ref))
    methods = Table(title="methods", title_justify="left")
    for col, justify in (("method", "left"), ("seconds", "right"), ("peak frames", "left")):
        methods.add_column(col, justify=justify)
    for e in result.explanations:
        methods.add_row(e.method, f"{e.seconds:.3f}", _peaks(e))
    out.print(methods)
    table = Table(title=f"agreement on {len(result.agreement['frames'])} frames",
                  title_justify="left")
    for col in ("method a", "method b", "spearman (when)",
                f"top-{result.agreement['fraction']:.0%} IoU (where)"):
        table.add_column(col, justify="left" if col.startswith("method") else "right")
    for p in result.agreement["pairs"]:
        rho = "undefined" if p["spearman"] is None else f"{p['spearman']:+.3f}"
        table.add_row(p["a"], p["b"], rho, f"{p['top_region_iou']:.3f}")
    out.print(table)
    _say_end(result, {"explain": "explain (decode + methods)"})


def parse_params(values: tuple[str, ...], methods: list[str], prefixed: bool = False
                 ) -> dict[str, dict[str, Any]]:
    """`--param` values ("ig.steps=16", or "steps=16" for the only method) -> {method:
    {name: value}}; values are numbers, "none", or words (head_fusion=max). Names and
    values are checked by the methods."""
    parsed: dict[str, dict[str, Any]] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        method, dot, name = key.strip().rpartition(".")
        if not sep or not name or (not dot and prefixed):
            form = "METHOD.NAME=VALUE" if prefixed else "[METHOD.]NAME=VALUE"
            raise click.BadParameter(f"{item!r}: write {form}, e.g. "
                                     f"{'ig.' if prefixed else ''}steps=16", param_hint="--param")
        method = method or methods[0]
        if method not in methods:
            raise click.BadParameter(f"{item!r}: {method} is not among the methods run "
                                     f"({', '.join(methods)})", param_hint="--param")
        parsed.setdefault(method, {})[name] = _param_value(item, raw.strip())
    return parsed


def _param_value(item: str, raw: str) -> int | float | str | None:
    if raw.lower() in ("none", "auto"):
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    if raw.isidentifier():  # a word: the method checks it (and numeric parameters refuse it)
        return raw
    raise click.BadParameter(f"{item!r}: {raw!r} is not a number", param_hint="--param")


def _say_video(expl: Any, model: str) -> None:
    out.print(f"[bold]{escape(Path(expl.video).name)}[/]: {expl.video_frames} frames, "
              f"{expl.fps:g} fps, {expl.width}x{expl.height}, "
              f"{expl.video_frames / expl.fps if expl.fps else 0:.1f} s · model "
              f"{escape(model)}" + _crop_note(expl))


def _crop_note(expl: Any) -> str:
    """Where a centre-cropping model (the I3D) looked, when it did not see the whole frame."""
    if not expl.crop:
        return ""
    x0, y0, x1, y1 = expl.crop
    return f" · sees the centre crop {x1 - x0}x{y1 - y0} at ({x0}, {y0})"


def _prediction_table(expl: Any) -> Table:
    """The top classes with their probabilities; the explained class marked."""
    table = Table(title="prediction", title_justify="left")
    table.add_column("class")
    table.add_column("probability", justify="right")
    table.add_column("")
    order = list(expl.probabilities.argsort()[::-1][:TOP_CLASSES])
    if expl.target not in order:
        order.append(expl.target)
    for k in order:
        mark = " · ".join(m for m, i in (("predicted", expl.predicted), ("explained",
                                                                         expl.target)) if i == k)
        style = "bold" if k == expl.predicted else ""
        table.add_row(escape(expl.classes[k]), f"{expl.probabilities[k]:.3f}", mark,
                      style=style)
    return table


def _peaks(expl: Any) -> str:
    """The curve's highest peaks: 'frame 12 (0.48 s), ...'; local maxima, so a dense
    curve does not list neighbours of one peak."""
    from stviz.render.temporal import peaks

    found = peaks(expl.temporal)
    if len(found) == 0:
        return "none (flat curve)"
    best = found[expl.temporal[found].argsort()[::-1][:PEAKS]]
    return ", ".join(f"frame {expl.frame_indices[i]} ({expl.timestamps[i]:.2f} s)" for i in best)


def _say_end(result: Any, labels: dict[str, str]) -> None:
    """Timings, files written, and the note on the bundled synthetic model."""
    secs = result.seconds
    out.print("[bold]time[/] " + " · ".join(f"{labels.get(k, k)} {v:.2f} s"
                                             for k, v in secs.items()))
    if result.files:
        folder = result.files[0].parent
        out.print(f"[bold]wrote[/] {escape(str(folder))}/: "
                  + ", ".join(escape(str(p.relative_to(folder))) for p in result.files))
    if result.bundled_synthetic:
        from stviz.core.checkpoint import DEFAULT_MODEL

        out.print(f"[yellow]note:[/] {DEFAULT_MODEL} is the bundled demo model, trained on "
                  "synthetic shapes only; for real video try `--model i3d-kinetics400` "
                  "(400 Kinetics actions), or train on your data "
                  "(`stviz train DATASET --out DIR`) and pass `--model DIR`.")
