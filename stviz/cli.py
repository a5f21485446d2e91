"""The `stviz` command: parse options, call `stviz.api`, print with Rich.

Exit codes: 0 success, 2 a user error (one line on stderr), 1 a bug.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stviz import __version__
from stviz.errors import StvizError, StvizWarning

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _show_warning(message: Any, category: type[Warning], *_args: Any, **_kwargs: Any) -> None:
    if issubclass(category, StvizWarning):
        err.print(f"[yellow]warning:[/] {escape(str(message))}", soft_wrap=True)
    else:
        _default_showwarning(message, category, *_args, **_kwargs)


_default_showwarning = warnings.showwarning


class Settings:
    """Options shared by every command."""

    def __init__(self, device: str = "auto", quiet: bool = False) -> None:
        self.device = device
        self.quiet = quiet

    def say(self, *args: Any, **kwargs: Any) -> None:
        if not self.quiet:
            out.print(*args, **kwargs)


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --device and --quiet to a command and hand it a `Settings` as `settings`."""

    @click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
                  help="Where to run models; mixed precision is used on CUDA.")
    @click.option("--quiet", "-q", is_flag=True, help="Print only results and errors.")
    @functools.wraps(fn)
    def wrapper(*args: Any, device: str, quiet: bool, **kwargs: Any) -> Any:
        return fn(*args, settings=Settings(device, quiet), **kwargs)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="stviz")
def cli() -> None:
    """Show where and when a video action recognition model looked, and measure it.

    \b
    Start with:
      stviz info VIDEO               what stviz sees in a video
      stviz models                   the checkpoints it can use
    """


def _existing_file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise StvizError(f"{p}: no such file; check the path")
    return p


@cli.command()
@click.argument("video", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--frames", "-t", "t", type=click.IntRange(min=1), default=16, show_default=True,
              help="Clip length T: frames sampled uniformly over the video.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@common_options
def info(video: Path, t: int, as_json: bool, settings: Settings) -> None:
    """Video metadata and the frames a T-frame clip would sample.

    The frame count is verified by decoding, not only read from the container.
    A video shorter than T frames repeats its nearest frames (with a warning).
    """
    from stviz import api

    report = api.video_report(_existing_file(str(video)), t)
    if as_json:
        click.echo(json.dumps(report))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    for key in ("path", "frames", "claimed_frames", "fps", "width", "height", "duration_s"):
        table.add_row(f"[bold]{key}[/]", str(report[key]))
    table.add_row("[bold]sampled[/]", f"T={t}: " + ", ".join(map(str, report["sampled_frames"])))
    out.print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@common_options
def models(as_json: bool, settings: Settings) -> None:
    """Bundled and local checkpoints, with their classes and test metrics.

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
    table = Table(title="stviz models")
    for col in ("name", "backbone", "T", "classes", "metrics", "path"):
        table.add_column(col)
    for r in rows:
        metrics = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in r["metrics"].items())
        classes = ", ".join(r["classes"][:6]) + (" ..." if len(r["classes"]) > 6 else "")
        table.add_row(r["name"], r["backbone"], str(r["frames"]),
                      f"{len(r['classes'])}: {classes}", metrics or "-", r["path"])
    out.print(table)


class _Progress:
    """A Rich progress bar for long work; silent with --quiet."""

    def __init__(self, settings: Settings) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=err,
                            disable=settings.quiet, transient=False)
        self.task: Any = None

    def __enter__(self) -> _Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def stage(self, name: str, total: int) -> None:
        if self.task is not None:
            self.bar.stop_task(self.task)
        self.task = self.bar.add_task(name, total=total)

    def advance(self, done: int, total: int) -> None:
        if self.task is None:
            self.stage("working", total)
        self.bar.update(self.task, completed=done, total=total)


class _TrainProgress(_Progress):
    """Progress plus one line per epoch: every loss term and the accuracies."""

    def epoch(self, r: dict[str, Any]) -> None:
        self.advance(r["epoch"], self.bar.tasks[-1].total or r["epoch"])
        self.bar.console.print(
            f"epoch {r['epoch']:3d}  loss {r['train_loss']:.4f}  ce {r['train_ce']:.4f}  "
            f"tv {r['train_tv']:.2f}  contrast {r['train_contrast']:.2f}  "
            f"unimodal {r['train_unimodal']:.4f}  acc {r['train_accuracy']:.3f}  "
            f"val_acc {r['val_accuracy']:.3f}  val_loss {r['val_loss']:.4f}  "
            f"lr {r['lr']:.1e}  {r['seconds']:.1f}s" + ("  [green]best[/]" if r["best"] else ""),
            highlight=False)


@cli.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n-train", type=click.IntRange(min=0), default=800, show_default=True,
              help="Training clips.")
@click.option("--n-test", type=click.IntRange(min=0), default=200, show_default=True,
              help="Test clips.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Same seed, same clips, byte for byte.")
@click.option("--frames", type=click.IntRange(min=8), default=32, show_default=True)
@click.option("--size", type=click.IntRange(min=32), default=128, show_default=True,
              help="Frame width and height in pixels.")
@click.option("--difficulty", type=click.Choice(["easy", "standard", "hard"]),
              default="standard", show_default=True,
              help="hard adds camera pan and partial occlusion.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes (default: all cores).")
@click.option("--overwrite", is_flag=True, help="Replace an existing data set in OUT.")
@common_options
def synth(out: Path, n_train: int, n_test: int, seed: int, frames: int, size: int,
          difficulty: str, workers: int | None, overwrite: bool, settings: Settings) -> None:
    """Render synthetic action clips with exact spatial and temporal ground truth.

    Each clip's class is how its actor (a textured, outlined shape) moves during
    an action window; distractor blobs wander the whole time. OUT gets
    videos/*.mp4 and annotations.json (label, [start, end) segment, actor box per
    frame).

    \b
    Example:
      stviz synth data/synth --n-train 800 --n-test 200 --seed 0
    """
    from stviz.datasets.synth import SynthConfig, generate

    cfg = SynthConfig(frames=frames, size=size, difficulty=difficulty)
    with _Progress(settings) as bar:
        bar.stage("rendering clips", n_train + n_test)
        path = generate(out, n_train, n_test, seed, cfg, workers=workers, overwrite=overwrite,
                        progress=bar.advance)
    settings.say(f"wrote {n_train + n_test} clips and {path}")


@cli.command()
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Checkpoint folder to write (best model, metrics.jsonl).")
@click.option("--epochs", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Adam learning rate.")
@click.option("--weight-decay", type=float, default=1e-4, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=15, show_default=True,
              help="Early stopping: epochs without a better validation score.")
@click.option("--frames", "-t", "t", type=click.IntRange(min=1), default=16, show_default=True,
              help="Frames sampled per clip (T).")
@click.option("--input-size", type=click.IntRange(min=32), default=224, show_default=True)
@click.option("--backbone", default="efficientnet_lite0", show_default=True,
              help="efficientnet_lite0, resnet18/34/50/101 or timm:<name>.")
@click.option("--backbone-weights", type=click.Path(dir_okay=False, path_type=Path),
              help="Local weights file for the backbone (ResNets, timm models).")
@click.option("--lambda-tv", type=float, default=1e-5, show_default=True)
@click.option("--lambda-contrast", type=float, default=1e-4, show_default=True)
@click.option("--lambda-unimodal", type=float, default=1.0, show_default=True)
@click.option("--no-mask", is_flag=True, help="Ablation: no spatial mask.")
@click.option("--pooling", type=click.Choice(["attention", "mean"]), default="attention",
              show_default=True, help="Ablation: mean pooling instead of temporal attention.")
@click.option("--recurrent", type=click.Choice(["convlstm", "lstm", "none"]),
              default="convlstm", show_default=True,
              help="Ablation: plain LSTM on pooled features, or none.")
@click.option("--reference-widths", is_flag=True,
              help="The paper's head widths (mask 1024-512, ConvLSTM 512) instead of compact.")
@click.option("--split", default="train", show_default=True, help="Split to train on.")
@click.option("--val-fraction", type=click.FloatRange(0, 0.9), default=0.1, show_default=True)
@click.option("--finetune-backbone", is_flag=True,
              help="Train the backbone too (decodes frames every step; meant for GPUs).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-amp", is_flag=True, help="Disable mixed precision on CUDA.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".stviz-data/features"), show_default=True,
              help="Where frozen-backbone features are cached.")
@click.option("--resume", is_flag=True, help="Continue the run in --out.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run in --out.")
@common_options
def train(dataset: Path, out_dir: Path, epochs: int, batch_size: int, lr: float,
          weight_decay: float, patience: int, t: int, input_size: int, backbone: str,
          backbone_weights: Path | None, lambda_tv: float, lambda_contrast: float,
          lambda_unimodal: float, no_mask: bool, pooling: str, recurrent: str,
          reference_widths: bool, split: str, val_fraction: float, finetune_backbone: bool,
          seed: int, no_amp: bool, cache_dir: Path, resume: bool, overwrite: bool,
          settings: Settings) -> None:
    """Train the spatio-temporal attention network from class labels only.

    DATASET is a `stviz synth` folder, a folder per class (with UCF101 or HMDB51
    split files when present) or a CSV manifest (path,label[,split]).
    Defaults are the paper's recipe. For several GPUs or nodes run it under
    torchrun: `torchrun --nproc_per_node 4 -m stviz train DATASET --out DIR`.
    """
    from stviz.core.losses import LossWeights
    from stviz.train import TrainConfig
    from stviz.train import train as run_training

    network: dict[str, Any] = {"use_mask": not no_mask, "pooling": pooling,
                               "recurrent": recurrent}
    if reference_widths:
        network.update(mask_hidden=(1024, 512), reduce_channels=None, lstm_hidden=512)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      early_stopping=patience, val_fraction=val_fraction, frames=t,
                      input_size=input_size, backbone=backbone,
                      backbone_weights=str(backbone_weights) if backbone_weights else None,
                      network=network, loss=LossWeights(lambda_tv, lambda_contrast,
                                                        lambda_unimodal),
                      finetune_backbone=finetune_backbone, seed=seed, device=settings.device,
                      amp=not no_amp, cache_dir=str(cache_dir), split=split)
    with _TrainProgress(settings) as bar:
        result = run_training(dataset, out_dir, cfg, resume=resume, overwrite=overwrite,
                              reporter=bar)
    settings.say(f"best epoch {result.best_epoch}: val_accuracy "
                 f"{result.best['val_accuracy']:.3f}; {result.epochs_run} epochs in "
                 f"{result.seconds:.0f} s; checkpoint {result.checkpoint}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors exit 2 with one line, bugs exit 1 with a traceback."""
    warnings.showwarning = _show_warning
    try:
        cli.main(args=argv, prog_name="stviz", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except StvizError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
