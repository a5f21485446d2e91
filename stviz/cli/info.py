"""`stviz info` and `stviz models`: what stviz sees in a video, and which checkpoints it has."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from stviz.cli.common import FRAME_COUNT, Settings, common_options, existing_file, out


@click.command()
@click.argument("video", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--frames", "-t", "t", type=FRAME_COUNT, default=16, show_default=True,
              help="Clip length T: frames sampled uniformly over the video.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@common_options
def info(video: Path, t: int, as_json: bool, settings: Settings) -> None:
    """Video metadata and the frames a T-frame clip would sample.

    The frame count is verified by decoding, not only read from the container.
    A video shorter than T frames repeats its nearest frames (with a warning).
    """
    from stviz import api

    report = api.video_report(existing_file(str(video)), t)
    if as_json:
        click.echo(json.dumps(report))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    for key in ("path", "frames", "claimed_frames", "fps", "width", "height", "duration_s"):
        table.add_row(f"[bold]{key}[/]", str(report[key]))
    table.add_row("[bold]sampled[/]", f"T={t}: " + ", ".join(map(str, report["sampled_frames"])))
    out.print(table)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@common_options
def models(as_json: bool, settings: Settings) -> None:
    """Bundled and local checkpoints, with their classes and test metrics, and the models
    stviz knows by name (i3d-kinetics400: a real Kinetics-400 action model).

    Searched: $STVIZ_MODELS, the bundled models/ folder, ~/.cache/stviz/models.
    """
    from stviz import api

    rows = api.list_models()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print("no checkpoints found; train one with `stviz train` or run `make model`")
        return
    table = Table(title="stviz models", caption="--json adds the paths and all classes")
    for col in ("name", "backbone", "T", "size", "classes", "metrics", "source · licence"):
        table.add_column(col)
    for r in rows:
        metrics = "\n".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                             for k, v in r["metrics"].items())
        classes = ", ".join(r["classes"][:3]) + (", ..." if len(r["classes"]) > 3 else "")
        source = f"{r['source']}\n{r['licence']}"
        if not r.get("installed", True):
            source += "\n[yellow]not installed[/]"
        table.add_row(r["name"], r["backbone"], str(r["frames"]), str(r["input_size"]),
                      f"{len(r['classes'])}: {classes}", metrics or "-", escape(source))
    out.print(table)
    for r in rows:
        if r.get("note"):
            out.print(f"[yellow]note:[/] {escape(r['note'])}")
