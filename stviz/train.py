"""Training: the paper's recipe on cached frozen-backbone features, one process or many.

With a frozen backbone (the paper's setting) features are computed once per video
and the head trains on them in memory, so an epoch takes seconds on a CPU. With
`finetune_backbone` frames are decoded every step instead (meant for GPUs).
Under `torchrun` each rank extracts a share of the features and trains on a share
of every epoch through DistributedDataParallel; rank 0 writes the outputs.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist

from stviz.core.backbones import create_backbone, inference_mode
from stviz.core.checkpoint import save_checkpoint
from stviz.core.device import autocast, resolve_device
from stviz.core.losses import LossWeights, total_loss
from stviz.core.model import preprocess_frames
from stviz.core.network import AttentionHead, ModelSpec, NetworkConfig, STAttentionNet
from stviz.datasets.feature_cache import DEFAULT_CACHE, FeatureCache
from stviz.errors import StvizError, warn
from stviz.files import check_output_dir, write_text

METRICS_FILE = "metrics.jsonl"
STATE_FILE = "last_state.pt"
LR_SCHEDULES = ("plateau", "cosine")


@dataclass
class TrainConfig:
    """Defaults are the paper's: Adam 1e-4, weight decay 1e-4, LR on plateau (patience 5),
    batch 30, up to 200 epochs, the regularizer weights of MODEL.md."""

    epochs: int = 200
    batch_size: int = 30
    lr: float = 1e-4
    weight_decay: float = 1e-4
    plateau_patience: int = 5
    # "plateau": the paper's LR x0.1 when the validation loss stalls; "cosine": LR falls
    # from lr to 0 over `epochs` along a half cosine, so the last epochs settle whatever
    # the noisy validation loss does
    lr_schedule: str = "plateau"
    early_stopping: int = 15  # epochs without a better validation score
    val_fraction: float = 0.1
    frames: int = 16
    input_size: int = 224
    backbone: str = "efficientnet_lite0"
    backbone_weights: str | None = None
    network: dict[str, Any] = field(default_factory=dict)  # NetworkConfig overrides
    loss: LossWeights = field(default_factory=LossWeights)
    finetune_backbone: bool = False
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    cache_dir: str = str(DEFAULT_CACHE)
    split: str = "train"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loss"] = self.loss.to_dict()
        return d


class Reporter(Protocol):
    """What a training run tells its user; the CLI draws it with Rich."""

    def stage(self, name: str, total: int) -> None: ...
    def advance(self, done: int, total: int) -> None: ...
    def epoch(self, record: dict[str, Any]) -> None: ...


class _Silent:
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, done: int, total: int) -> None:
        pass

    def epoch(self, record: dict[str, Any]) -> None:
        pass


@dataclass
class TrainResult:
    checkpoint: Path
    best_epoch: int
    best: dict[str, Any]
    epochs_run: int
    seconds: float


class _Dist:
    """Rank and world size; a single process is rank 0 of 1."""

    def __init__(self, device: torch.device) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _split_validation(labels: Sequence[int], fraction: float, seed: int) -> tuple[list, list]:
    """Stratified train/validation positions, the same on every rank."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in sorted(set(labels)):
        pos = [i for i, y in enumerate(labels) if y == c]
        rng.shuffle(pos)
        n_val = round(len(pos) * fraction) if len(pos) > 1 else 0
        val += pos[:n_val]
        train += pos[n_val:]
    return sorted(train), sorted(val)


def _load_items(dataset: str | Path, split: str):
    from stviz.datasets.readers import open_dataset

    ds = open_dataset(Path(dataset))
    items = ds.split(split)
    if not items:
        raise StvizError(f"{dataset}: no videos in split {split!r}; check the split files "
                         "or pass --split")
    return ds, items


def _features(items, cache: FeatureCache, d: _Dist, reporter: Reporter):
    """Features of every item (None for unreadable videos), each rank extracting a share."""
    videos = [it.path for it in items]
    share = videos[d.rank::d.world]
    reporter.stage("features", len(share))

    def skip(path: Path, why: str) -> None:
        warn(f"skipping {path}: {why}")

    feats = cache.compute(share, progress=reporter.advance, on_error=skip)
    if d.world == 1:
        return feats
    d.barrier()
    return cache.compute(videos)  # all cached now: this only reads


def train(dataset: str | Path, out_dir: str | Path, cfg: TrainConfig | None = None,
          resume: bool = False, overwrite: bool = False,
          reporter: Reporter | None = None) -> TrainResult:
    """Train the attention network on a dataset and write the best checkpoint to `out_dir`."""
    cfg = cfg or TrainConfig()
    reporter = reporter or _Silent()
    out = Path(out_dir)
    device = resolve_device(cfg.device)
    check_output_dir(out)
    d = _Dist(device)
    if d.main and out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise StvizError(f"{out}: not empty; pass --resume to continue that run, "
                         "--overwrite to replace it, or another --out")
    _seed_everything(cfg.seed)
    started = time.perf_counter()
    ds, items = _load_items(dataset, cfg.split)
    classes = list(ds.classes)
    backbone = create_backbone(cfg.backbone, cfg.backbone_weights)
    if backbone.temporal_stride > 1 and math.ceil(cfg.frames / backbone.temporal_stride) < 2:
        raise StvizError(f"--frames {cfg.frames}: {backbone.name} gives one feature step per "
                         f"{backbone.temporal_stride} frames, and temporal attention needs two "
                         f"steps or more; pass --frames {backbone.temporal_stride + 1} or more "
                         "(16 or more is better)")
    try:
        net_cfg = NetworkConfig(num_classes=len(classes), in_channels=backbone.channels,
                                **cfg.network)
    except ValueError as exc:
        raise StvizError(f"network options: {exc}; see `stviz train --help`") from exc
    spec = ModelSpec(network=net_cfg, backbone=backbone.name, backbone_weights=backbone.weights,
                     input_size=cfg.input_size, frames=cfg.frames, mean=backbone.mean,
                     std=backbone.std, classes=classes, finetuned_backbone=cfg.finetune_backbone)

    if cfg.finetune_backbone:
        data = _FrameData(items, spec)
        labels = [it.label for it in items]
    else:
        cache = FeatureCache(cfg.cache_dir, inference_mode(backbone, cfg.input_size),
                             cfg.input_size, cfg.frames, device)
        feats = _features(items, cache, d, reporter)
        keep = [i for i, f in enumerate(feats) if f is not None]
        if not keep:
            raise StvizError(f"{dataset}: none of the {len(items)} videos could be read")
        data = _FeatureData(torch.from_numpy(np.stack([feats[i] for i in keep])))
        labels = [items[i].label for i in keep]
    train_pos, val_pos = _split_validation(labels, cfg.val_fraction, cfg.seed)
    if not val_pos and d.main:
        warn(f"{dataset}: the validation set is empty ({len(labels)} clips, --val-fraction "
             f"{cfg.val_fraction:g} rounds to 0 clips per class); val_accuracy is measured on "
             "the training clips, so pick the best epoch with care or pass a larger "
             "--val-fraction")
    y = torch.tensor(labels)

    head = AttentionHead(net_cfg)
    net = STAttentionNet(backbone.module, head, freeze_backbone=not cfg.finetune_backbone,
                         temporal_stride=backbone.temporal_stride)
    # The loss reads masks and weights per feature step, as the head gives them on cached
    # features, also when fine-tuning feeds frames (a clip backbone has fewer steps).
    per_step = {"per_frame": False} if cfg.finetune_backbone else {}
    net.to(device)
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise StvizError(f"lr schedule {cfg.lr_schedule!r} is unknown; choose one of "
                         f"{', '.join(LR_SCHEDULES)}")
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
             if cfg.lr_schedule == "cosine" else
             torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1,
                                                        patience=cfg.plateau_patience))
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    # Only the head trains on a frozen backbone, so only the head needs DDP's gradient sync.
    trained = net if cfg.finetune_backbone else net.head
    model = trained
    if d.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            trained, device_ids=[device.index or 0] if device.type == "cuda" else None)

    state = {"epoch": 0, "best": None, "best_epoch": 0, "stale": 0}
    history: list[dict[str, Any]] = []
    state_path = out / STATE_FILE
    if resume:
        if not state_path.is_file():
            raise StvizError(f"{out}: nothing to resume (no {STATE_FILE}); drop --resume")
        saved = _load_state(state_path)
        try:
            net.head.load_state_dict(saved["head"])
            if cfg.finetune_backbone:
                net.backbone.load_state_dict(saved["backbone"])
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
            state = dict(saved["state"])
            history = list(saved["history"])
            torch.set_rng_state(saved["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise StvizError(f"{state_path}: does not fit this run ({exc}); resume with the "
                             "options it was trained with, or start again without --resume"
                             ) from exc

    reporter.stage("train", cfg.epochs)
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        perm = np.random.default_rng(cfg.seed * 1000 + epoch).permutation(train_pos)
        mine = perm[d.rank::d.world]
        steps = math.ceil(len(perm) / d.world / cfg.batch_size)
        model.train()
        sums: dict[str, float] = {}
        correct = seen = 0
        for s in range(steps):
            idx = mine[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            if len(idx) == 0:  # keep DDP ranks in step when shares differ by one batch
                idx = mine[:1]
            x, target = data.batch(idx, device), y[idx].to(device)
            with autocast(device, cfg.amp):
                out_net = model(x, **per_step)
            terms = total_loss(out_net.logits, out_net.masks, out_net.weights, target, cfg.loss)
            opt.zero_grad(set_to_none=True)
            scaler.scale(terms["loss"]).backward()
            scaler.step(opt)
            scaler.update()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
            correct += int((out_net.logits.argmax(1) == target).sum())
            seen += len(idx)
        record = {"epoch": epoch, "lr": opt.param_groups[0]["lr"],
                  **{f"train_{k}": v / max(seen, 1) for k, v in sums.items()},
                  "train_accuracy": correct / max(seen, 1)}
        val_pos_eff = val_pos or train_pos
        record.update(_validate(trained, data, y, val_pos_eff, cfg, device, per_step))
        record["seconds"] = round(time.perf_counter() - t0, 3)
        if cfg.lr_schedule == "cosine":
            sched.step()
        else:
            sched.step(record["val_loss"])
        score = (record["val_accuracy"], -record["val_loss"])
        improved = state["best"] is None or score > tuple(state["best"])
        if improved:
            state.update(best=list(score), best_epoch=epoch, stale=0)
            if d.main:
                spec.metrics = {"val_accuracy": record["val_accuracy"],
                                "val_loss": record["val_loss"], "epoch": epoch}
                spec.provenance = _provenance(dataset, cfg, ds)
                save_checkpoint(net, spec, out)
        else:
            state["stale"] += 1
        state["epoch"] = epoch
        record["best"] = improved
        history.append(record)
        reporter.epoch(record)
        if d.main:
            write_text(out / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in history))
            _save_state(state_path, net, opt, sched, state, history, cfg)
        if state["stale"] >= cfg.early_stopping:
            break
    d.barrier()
    best = next(r for r in history if r["epoch"] == state["best_epoch"])
    return TrainResult(out, state["best_epoch"], best, state["epoch"],
                       time.perf_counter() - started)


@torch.no_grad()
def _validate(module: torch.nn.Module, data, y: torch.Tensor, pos: list[int],
              cfg: TrainConfig, device: torch.device, per_step: dict[str, bool]
              ) -> dict[str, float]:
    """Loss and accuracy on the validation share; `module` is the network (called with
    `per_step`) or its head."""
    module.eval()
    loss = correct = 0.0
    for s in range(0, len(pos), 64):
        idx = pos[s:s + 64]
        x, target = data.batch(idx, device), y[idx].to(device)
        with autocast(device, cfg.amp):
            o = module(x, **per_step)
        loss += float(total_loss(o.logits, o.masks, o.weights, target, cfg.loss)["loss"]) * len(idx)
        correct += int((o.logits.argmax(1) == target).sum())
    return {"val_loss": loss / len(pos), "val_accuracy": correct / len(pos)}


def _load_state(path: Path) -> dict[str, Any]:
    """The resume state, read without unpickling arbitrary objects (`weights_only`: tensors
    and plain containers only), so a crafted file in a shared run folder runs no code."""
    import pickle

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise StvizError(f"{path}: holds objects other than tensors and plain values, refused "
                         "(loading them could run code); delete it and start again without "
                         "--resume") from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise StvizError(f"{path}: not a stviz resume state ({type(exc).__name__}); delete it "
                         "and start again without --resume") from exc
    if not isinstance(saved, dict):
        raise StvizError(f"{path}: not a stviz resume state; delete it and start again "
                         "without --resume")
    return saved


def _save_state(path: Path, net, opt, sched, state, history, cfg: TrainConfig) -> None:
    from stviz.files import atomic_path

    blob = {"head": net.head.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "state": state, "history": history,
            "rng": torch.get_rng_state(), "config": cfg.to_dict()}
    if cfg.finetune_backbone:
        blob["backbone"] = net.backbone.state_dict()
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def _provenance(dataset: str | Path, cfg: TrainConfig, ds) -> dict[str, Any]:
    import platform

    from stviz import __version__

    info: dict[str, Any] = {"dataset": str(dataset), "dataset_kind": ds.kind,
                            "stviz": __version__, "torch": torch.__version__,
                            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                            "train_config": cfg.to_dict()}
    ann = Path(dataset) / "annotations.json"
    if ann.is_file():
        meta = json.loads(ann.read_text())
        info["synth"] = {k: meta.get(k) for k in ("seed", "difficulty", "frames", "size")}
    return info


class _FeatureData:
    """Cached features in memory: batches are index lookups."""

    def __init__(self, feats: torch.Tensor) -> None:
        self.feats = feats

    def batch(self, idx, device: torch.device) -> torch.Tensor:
        return self.feats[torch.as_tensor(np.asarray(idx))].to(device).float()


class _FrameData:
    """Decoded, preprocessed frames per step, for fine-tuning the backbone."""

    def __init__(self, items, spec: ModelSpec) -> None:
        self.items = items
        self.spec = spec

    def batch(self, idx, device: torch.device) -> torch.Tensor:
        from stviz.video import probe, read_frames, uniform_indices

        clips = []
        for i in idx:
            path = self.items[int(i)].path
            frames = read_frames(path, uniform_indices(probe(path).frames, self.spec.frames))
            clips.append(preprocess_frames(frames, self.spec.input_size, self.spec.mean,
                                           self.spec.std))
        return torch.stack(clips).to(device)

