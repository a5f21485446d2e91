"""`AttentionModel`: a trained network with what it needs to take raw frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from stviz.core.backbones import Backbone, inference_mode
from stviz.core.checkpoint import DEFAULT_MODEL, load_network
from stviz.core.device import autocast, resolve_device
from stviz.core.network import ModelSpec, NetOutput, STAttentionNet


def center_crop_box(width: int, height: int, fraction: float | None
                    ) -> tuple[int, int, int, int] | None:
    """The square (x0, y0, x1, y1) in frame pixels that a centre crop keeping `fraction`
    of the short side takes (DeepMind's I3D: 224 of 256); None keeps the whole frame."""
    if fraction is None:
        return None
    side = max(1, min(round(min(width, height) * fraction), width, height))
    x0, y0 = (width - side) // 2, (height - side) // 2
    return x0, y0, x0 + side, y0 + side


def preprocess_frames(frames: np.ndarray, size: int, mean: tuple[float, ...],
                      std: tuple[float, ...], crop: float | None = None) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB -> (T, 3, size, size) float normalized, as in training.

    Frames are resized to a square without cropping, as the paper did, unless `crop`
    takes a centre square first (`center_crop_box`), as Kinetics models were tested.
    """
    out = np.empty((len(frames), size, size, 3), dtype=np.float32)
    for i, f in enumerate(frames):
        box = center_crop_box(f.shape[1], f.shape[0], crop)
        if box is not None:
            f = f[box[1]:box[3], box[0]:box[2]]
        interp = cv2.INTER_AREA if min(f.shape[:2]) > size else cv2.INTER_LINEAR
        out[i] = cv2.resize(f, (size, size), interpolation=interp)
    out = (out / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


@dataclass
class AttentionModel:
    """A loaded stviz checkpoint on a device."""

    net: STAttentionNet
    spec: ModelSpec
    device: torch.device
    path: Path | None = None
    fast: bool = False

    @property
    def classes(self) -> list[str]:
        return self.spec.classes

    @property
    def name(self) -> str:
        return self.path.name if self.path else "unsaved"

    @property
    def is_bundled_synthetic(self) -> bool:
        return self.path is not None and self.path.name == DEFAULT_MODEL

    @property
    def backbone(self) -> Backbone:
        return self.net.meta["backbone"]

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (1, T, 3, S, S) on the model's device."""
        x = preprocess_frames(frames, self.spec.input_size, self.spec.mean, self.spec.std)
        return x.unsqueeze(0).to(self.device)

    @torch.inference_mode()
    def predict(self, frames: np.ndarray) -> NetOutput:
        """Logits, masks and temporal weights for one clip of raw frames."""
        with autocast(self.device):
            out = self.net(self.preprocess(frames))
        return NetOutput(*(t.float() for t in out))

    def use_inference_backbone(self) -> AttentionModel:
        """Swap in the BatchNorm-folded, channels_last backbone (eval only, ~2x on CPU)."""
        if not self.fast:
            folded = inference_mode(self.backbone, self.spec.input_size)
            self.net.backbone = folded.module.to(self.device)
            self.net.meta["backbone"] = folded
            self.fast = True
        return self


def load_model(path_or_name: str | Path | None = None, device: str | torch.device = "auto",
               fast: bool = True, backbone_weights: str | Path | None = None) -> AttentionModel:
    """Load a checkpoint folder or bundled model by name (the default model when None)."""
    dev = resolve_device(device)
    net, spec, path = load_network(path_or_name, dev, backbone_weights)
    model = AttentionModel(net, spec, dev, path)
    return model.use_inference_backbone() if fast else model
