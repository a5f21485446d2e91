"""`stviz evaluate`, `stviz annotations` and `stviz localize-eval`: a model's accuracy,
ground truth, and explanations measured against it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from stviz.cli.common import (
    FRAME_COUNT,
    MODEL_OPTION,
    Progress,
    Settings,
    common_options,
    loading_options,
    out,
)
from stviz.datasets.annotations import FORMATS
from stviz.evaluate.scoring import DEFAULT_METHODS, DEFAULT_STEPS

_FORMAT_HELP = "Annotation format (default: told from the content)."


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None, help=_FORMAT_HELP)
@click.option("--label-map", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="AVA only: the action list (.pbtxt) that names the classes.")
@click.option("--split-number", type=click.IntRange(min=1), default=1, show_default=True,
              help="gttubes only: which official split gives the train/test counts.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@common_options
def annotations(file: Path, fmt: str | None, label_map: Path | None, split_number: int,
                as_json: bool, settings: Settings) -> None:
    """Summarize a ground-truth annotation file: format, videos, classes, tubes,
    annotated frames and frame sizes.

    FILE is any format stviz reads: a `stviz synth` annotations.json (or its
    folder), UCF101-24 pyannot.pkl, JHMDB/UCF101-24 *-GT.pkl (gttubes), AVA CSV,
    THUMOS'14 class files (or their folder), ActivityNet JSON. A malformed file
    stops with one line naming the first bad record.

    \b
    Examples:
      stviz annotations data/synth/annotations.json
      stviz annotations ucf101_24_pyannot.pkl --json
    """
    from stviz import api

    summary = api.annotations_summary(file, fmt, label_map=label_map,
                                      split_number=split_number)
    if as_json:
        click.echo(json.dumps(summary))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    rows: list[tuple[str, Any]] = [
        ("file", summary["source"]), ("format", summary["format"]),
        ("videos", summary["videos"]), ("classes", summary["classes"]),
        ("tubes", summary["tubes"]), ("segments", summary["segments"]),
        ("annotated frames", summary["annotated_frames"]), ("boxes", summary["boxes"])]
    if "splits" in summary:
        rows.append(("splits", ", ".join(f"{k} {v}" for k, v in summary["splits"].items())))
    if "width_min" in summary:
        rows.append(("frame sizes", _size_range(summary)))
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", str(value))
    out.print(table)


def _size_range(s: dict[str, Any]) -> str:
    w = f"{s['width_min']}" if s["width_min"] == s["width_max"] else \
        f"{s['width_min']}..{s['width_max']}"
    h = f"{s['height_min']}" if s["height_min"] == s["height_max"] else \
        f"{s['height_min']}..{s['height_max']}"
    return f"{w} x {h} (width x height)"


def html_options(flag: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--html-videos and --html-rank (and with `flag`, --html): the localize-eval report
    page, here and in `stviz report`."""
    from stviz.evaluate.scoring import VIDEO_TABLE

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option("--html-rank", type=click.Choice(VIDEO_TABLE),
                          default="pointing_game", show_default=True,
                          help="Per-video metric of the first method that picks the worst "
                               "and best videos.")(fn)
        fn = click.option("--html-videos", type=click.IntRange(min=0), default=20,
                          show_default=True, metavar="N",
                          help="Video pages for the N worst and the N best videos.")(fn)
        if flag:
            fn = click.option("--html", is_flag=True, help="Also write report.html, an "
                              "interactive page of the results (no network needed).")(fn)
        return fn

    return add


@click.command("localize-eval")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--annotations", "annotations_file", type=click.Path(path_type=Path),
              default=None, help="Ground truth [default: DATASET/annotations.json].")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None, help=_FORMAT_HELP)
@click.option("--methods", default=",".join(DEFAULT_METHODS), show_default=True,
              metavar="M1,M2,...", help="Explanation methods, comma-separated: attention, "
              "attention-rollout, gradcam, guided-gradcam, saliency, smoothgrad, ig, "
              "occlusion, frame-ablation.")
@MODEL_OPTION
@click.option("--split", default="test", show_default=True,
              help="Split to evaluate (ignored when the annotations have no splits).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N annotated videos of the split (by id).")
@click.option("--frames", "-t", "t", type=FRAME_COUNT, default=None,
              help="Clip length T [default: the model's].")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Report and cache folder [default: "
              "stviz-out/localize-<dataset name>].")
@click.option("--faithfulness-steps", "steps", type=click.IntRange(min=1),
              default=DEFAULT_STEPS, show_default=True,
              help="Points of each pixel deletion/insertion curve beyond the first (cost: "
              "2 x (steps + 1) forward passes per video and method).")
@click.option("--no-faithfulness", is_flag=True,
              help="Skip the deletion/insertion metrics (much faster).")
@click.option("--overwrite", is_flag=True,
              help="Rewrite the reports of a finished run in --out (cached results are "
              "still reused).")
@html_options()
@loading_options
@common_options
def localize_eval(dataset: Path, annotations_file: Path | None, fmt: str | None, methods: str,
                  model: str | None, split: str, limit: int | None, t: int | None,
                  out_dir: Path | None, steps: int, no_faithfulness: bool, overwrite: bool,
                  html: bool, html_videos: int, html_rank: str, settings: Settings,
                  **loading: Any) -> None:
    """Measure how well explanation methods localize actions, against ground truth.

    Every method explains every annotated video of the split (the ground-truth
    class when the model knows it, else the predicted one), on T sampled frames.
    Metrics, each averaged per class and then over classes:

    \b
      spatial       pointing_game, mass_in_box, box_acc_iou30, box_acc_iou50,
                    paper_box_acc_iou30, max_box_acc_v2
      temporal      temporal_ap, temporal_iou, tmap, paper_coverage,
                    mass_in_segment
      faithfulness  deletion_auc, insertion_auc, temporal_deletion_auc,
                    temporal_insertion_auc
      (the deletion AUCs: lower is better; everything else: higher)

    Spatial metrics use the sampled frames that have a ground-truth box, with
    maps upsampled to the frame (to the centre crop a model like the I3D sees,
    with zero relevance outside it); temporal ones the sampled frames inside a
    segment. Videos are looked up under DATASET: the annotated path, else any
    video file whose path ends with the video id (for UCF101-24,
    DATASET/Class/v_Class_gXX_cYY.avi). Missing videos are listed and skipped.

    Writes metrics.json, metrics.csv, metrics.md, metrics.png and
    faithfulness.png to --out, and one cache entry per video and method to
    --out/cache. With --html also report.html: the sortable metric table, the
    plots and a row per video, linking to a page (in --out/videos) with the video
    and every method's heatmap for the --html-videos worst and best videos.
    Resuming: rerun the same command and only what is missing is
    computed (entries are keyed by model, method, T, steps, video and
    annotation, so a change recomputes only what it affects). metrics.json marks
    a finished run: rerunning into it needs --overwrite. For several processes
    or GPUs run it under torchrun.

    \b
    Examples:
      stviz synth data/s --n-train 0 --n-test 20 --seed 1
      stviz localize-eval data/s --methods attention,gradcam,ig --out runs/loc
      stviz localize-eval data/s --out runs/loc --html --html-videos 5
      stviz localize-eval UCF101 --annotations ucf101_24_pyannot.pkl --model DIR
      stviz localize-eval data/s --model swin3d_t.pth --arch swin3d_t \\
          --methods attention-rollout,gradcam --out runs/swin
      torchrun --nproc_per_node 4 -m stviz localize-eval data/s --out runs/loc
    """
    from stviz import api
    from stviz.evaluate.report import table_rows

    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 talks
        settings.quiet = True
    out_dir = out_dir or Path("stviz-out") / f"localize-{dataset.resolve().name}"
    with Progress(settings) as bar:

        def advance(done: int, total: int) -> None:
            if bar.task is None:  # the bar appears once the checks have passed
                bar.stage("explaining videos", total)
            bar.advance(done, total)

        result = api.localize_eval(
            dataset, out_dir, annotations=annotations_file, format=fmt,
            methods=methods.split(","), model=model, split=split, limit=limit, frames=t,
            faithfulness=not no_faithfulness, steps=steps, device=settings.device,
            overwrite=overwrite, progress=advance, html=html, html_videos=html_videos,
            html_rank=html_rank, load_options=loading)
    report = result.report
    if not report:
        return
    if settings.quiet:
        click.echo(str(out_dir / "metrics.json"))
        return
    names, rows = table_rows(report, lambda text: f"[bold]{text}[/]")
    table = Table(title=f"{report['model']} on {dataset} ({split}: {report['n_videos']} "
                        f"videos, {report['n_frames']} annotated frames)")
    table.add_column("metric")
    for name in names:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(*row)
    out.print(table)
    if report["accuracy"] is not None:
        out.print(f"accuracy on these videos: {report['accuracy']:.3f}")
    settings.say(f"{result.computed} results computed, {result.reused} reused from "
                 f"{out_dir / 'cache'}")
    settings.say("wrote " + ", ".join(str(p) for p in result.written))


@click.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--model", "-m", default=None, metavar="NAME|DIR",
              help="Checkpoint folder or model name, or i3d-kinetics400 (class folders named "
                   "as Kinetics classes) [default: the bundled actions10-lite0].")
@click.option("--split", default="test", show_default=True, help="Split to evaluate.")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Where to write evaluation.json and confusion.png "
              "[default: stviz-out/evaluate-<dataset name>].")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".stviz-data/features"), show_default=True,
              help="Frozen-backbone feature cache shared with `stviz train`.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@common_options
def evaluate(dataset: Path, model: str | None, split: str, out_dir: Path | None,
             cache_dir: Path, overwrite: bool, settings: Settings) -> None:
    """Classification accuracy of a model on a data set split.

    Writes evaluation.json (accuracy, per_class_accuracy, confusion, n_videos, and
    for `stviz synth` data how well the model's own attention localizes) and a
    confusion-matrix PNG. Unreadable videos are reported and skipped.

    \b
    Example:
      stviz synth /tmp/s --n-train 0 --n-test 60 --seed 123
      stviz evaluate /tmp/s --out /tmp/e
    """
    from rich.table import Table

    from stviz import api
    out_dir = out_dir or Path("stviz-out") / f"evaluate-{dataset.resolve().name}"
    with Progress(settings) as bar:
        bar.stage("classifying", 1)
        result, written = api.evaluate(dataset, model, split, out_dir, settings.device,
                                       cache_dir, overwrite, bar.advance)
    report = result.to_dict()
    table = Table(title=f"{result.model} on {dataset} ({split}, {report['n_videos']} videos)")
    table.add_column("class")
    table.add_column("accuracy", justify="right")
    for name, acc in report["per_class_accuracy"].items():
        table.add_row(name, "-" if acc is None else f"{acc:.3f}")
    table.add_row("[bold]all[/]", f"[bold]{report['accuracy']:.3f}[/]")
    if not settings.quiet:
        out.print(table)
        for key in ("attention_pointing_game", "mask_argmax_in_box", "attention_mass_in_segment",
                    "attention_temporal_ap"):
            if key in report:
                out.print(f"{key}: {report[key]:.3f}")
    settings.say("wrote " + ", ".join(str(p) for p in written))
    if settings.quiet:
        click.echo(f"accuracy {report['accuracy']:.4f}")
