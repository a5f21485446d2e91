"""`stviz report`: the interactive report.html of an existing output folder, again."""

from __future__ import annotations

from pathlib import Path

import click

from stviz.cli.common import Settings, StageProgress, common_options
from stviz.cli.evaluate import html_options
from stviz.cli.explain import DEFAULT_ALPHA, DEFAULT_CMAP


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--annotations", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="explain/compare folders: ground truth to draw instead of the folder's "
                   "own ground_truth.json (any format stviz reads).")
@click.option("--cmap", default=DEFAULT_CMAP, show_default=True,
              help="Matplotlib colormap of the heatmaps.")
@click.option("--alpha", type=click.FloatRange(0, 1), default=DEFAULT_ALPHA, show_default=True,
              help="Initial heatmap opacity (the page has a slider).")
@click.option("--overwrite", is_flag=True, help="Replace an existing report.html.")
@html_options(flag=False)
@common_options
def report(folder: Path, annotations: Path | None, cmap: str, alpha: float, overwrite: bool,
           html_videos: int, html_rank: str, settings: Settings) -> None:
    """Build FOLDER/report.html again from the files a run left there, without the model.

    FOLDER is the --out of `stviz explain` (explanation.json/.npz), `stviz compare
    --html` (compare.json and methods/) or `stviz localize-eval` (metrics.json and
    its cache). The video is decoded again from the path the run recorded; for
    localize-eval the ground truth comes from its annotation file, and video pages
    are written for the --html-videos worst and best videos.

    \b
    Examples:
      stviz report stviz-out/clip --overwrite
      stviz report runs/loc --html-videos 5 --html-rank temporal_ap --overwrite
    """
    from stviz import api

    with StageProgress(settings) as bar:
        files = api.report(folder, annotations=annotations, videos=html_videos,
                           rank=html_rank, cmap=cmap, alpha=alpha, overwrite=overwrite,
                           progress=bar)
    for path in files:
        click.echo(path)
