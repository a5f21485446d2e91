"""Tiny models for the explanation tests: random weights, 64x64 input, T=4."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from stviz.core.checkpoint import build_network, save_checkpoint
from stviz.core.model import AttentionModel
from stviz.core.network import ModelSpec, NetworkConfig
from stviz.explain.classifier import VideoClassifier

T = 4
SIZE = 64


def tiny_checkpoint(dataset: Path, folder: Path) -> Path:
    """A random tiny stviz checkpoint saved in `folder` that knows `dataset`'s classes."""
    classes = json.loads((dataset / "annotations.json").read_text())["classes"]
    tiny = tiny_stviz(classes=classes)
    return save_checkpoint(tiny.net, tiny.spec, folder)


def tiny_stviz(seed: int = 0, size: int = SIZE, classes: Sequence[str] = ("a", "b", "c")
               ) -> AttentionModel:
    """A stviz attention model: random ResNet-18 backbone (grid size/32), tiny head."""
    torch.manual_seed(seed)
    net = NetworkConfig(num_classes=len(classes), in_channels=512, mask_hidden=(8, 4),
                        reduce_channels=8, lstm_hidden=6)
    spec = ModelSpec(network=net, backbone="resnet18", backbone_weights="random",
                     input_size=size, frames=T, mean=(0.485, 0.456, 0.406),
                     std=(0.229, 0.224, 0.225), classes=list(classes))
    return AttentionModel(build_network(spec).eval(), spec, torch.device("cpu"))


class FrameK(nn.Module):
    """Logits depend only on frame `k`, inside grid cells `rows` x `cols` of an 8x8 grid.

    Input (N, T, 3, 64, 64); a per-frame conv + 8x8 average pool gives the 8x8 grid
    (the Grad-CAM layer `features`); class 0's logit is a positive sum over the region.
    """

    def __init__(self, k: int, rows: slice = slice(1, 3), cols: slice = slice(5, 7)) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(8))
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.features[0].weight.abs_()  # positive pixels raise every feature
            self.features[0].bias.zero_()
            self.head.weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, 0.5, -0.5, 0.2]]))
        mask = torch.zeros(T, 1, 8, 8)
        mask[k, :, rows, cols] = 1
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        f = self.features(x.flatten(0, 1)).reshape(n, t, 4, 8, 8)
        return self.head((f * self.mask).sum(dim=(1, 3, 4)))


class Tiny3d(nn.Module):
    """A tiny NCTHW 3-D CNN: (N, 3, T, H, W) -> logits (N, 3). `body` halves time and quarters
    space; squaring its output makes dScore/dA differ between time slices."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv3d(3, 8, 3, stride=(2, 4, 4), padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc((self.body(x) ** 2).mean(dim=(2, 3, 4)))


HF_FRAMES, HF_SIZE = 4, 32  # tiny Hugging Face video transformers: 4x4 patches of 8 px


def tiny_hf(kind: str, folder, seed: int = 0, **overrides):
    """Save a tiny random VideoMAE, TimeSformer or ViViT classifier (3 classes, 2 blocks,
    2 heads) to `folder` with save_pretrained; returns the model. Token grids: VideoMAE
    and ViViT 2x4x4 (tubelets of 2 frames), TimeSformer 4x4x4 (+ CLS)."""
    import transformers

    common = {"image_size": HF_SIZE, "num_frames": HF_FRAMES, "hidden_size": 16,
              "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
              "num_labels": 3, "id2label": {0: "run", 1: "jump", 2: "walk"},
              "label2id": {"run": 0, "jump": 1, "walk": 2}}
    configs = {
        "videomae": (transformers.VideoMAEConfig, {"patch_size": 8, "tubelet_size": 2},
                     transformers.VideoMAEForVideoClassification),
        "timesformer": (transformers.TimesformerConfig, {"patch_size": 8},
                        transformers.TimesformerForVideoClassification),
        "vivit": (transformers.VivitConfig, {"tubelet_size": [2, 8, 8]},
                  transformers.VivitForVideoClassification),
    }
    config_class, own, model_class = configs[kind]
    torch.manual_seed(seed)
    model = model_class(config_class(**{**common, **own, **overrides})).eval()
    transformers.logging.disable_progress_bar()  # keeps stderr to what stviz says
    model.save_pretrained(folder)
    return model


MVIT_FRAMES, MVIT_SIZE = 8, 40  # tiny MViT: a 4x10x10 token grid


def tiny_mvit(*, weights: None = None, num_classes: int = 3) -> nn.Module:
    """A small torchvision MViT v2 (mvit_v2_s's design: residual pooling, relative
    positions, pooled Q/K/V; 4 blocks, 8-32 channels) for 8 frames at 40x40; Q strides in
    space (blocks 1 and 3) and once in time (block 3), K/V stride coarser. Called like
    torchvision's builders, so tests can stand it in for `mvit_v2_s`."""
    from torchvision.models.video.mvit import MSBlockConfig, MViT

    torch.manual_seed(0)
    blocks = [MSBlockConfig(h, i, o, [3, 3, 3], [3, 3, 3], q, kv) for h, i, o, q, kv in [
        (1, 8, 8, [1, 1, 1], [2, 4, 4]), (2, 8, 16, [1, 2, 2], [1, 2, 2]),
        (2, 16, 16, [1, 1, 1], [1, 2, 2]), (2, 16, 32, [2, 2, 2], [1, 1, 1])]]
    return MViT((MVIT_SIZE, MVIT_SIZE), MVIT_FRAMES, blocks, residual_pool=True,
                residual_with_cls_embed=False, rel_pos_embed=True, proj_after_attn=True,
                num_classes=num_classes).eval()


def tiny_swin3d(*, weights: None = None, num_classes: int = 3) -> nn.Module:
    """A small torchvision Swin3D (swin3d_t's design; 3 stages of 2 blocks, 8-32 channels,
    windows 2x3x3), called like torchvision's builders."""
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    torch.manual_seed(0)
    return SwinTransformer3d(patch_size=[2, 4, 4], embed_dim=8, depths=[2, 2, 2],
                             num_heads=[1, 2, 2], window_size=[2, 3, 3],
                             num_classes=num_classes).eval()


def torchvision_classifier(model: nn.Module, frames: int, size: int,
                           device: str = "cpu") -> VideoClassifier:
    """A torchvision MViT or Swin3D module as a `VideoClassifier` with its attention source,
    as `--arch` loads the full-size ones."""
    from stviz.explain.classifier import from_module
    from stviz.explain.torchvision_attention import attention_source

    clf = from_module(model, classes=["a", "b", "c"], frames=frames, input_size=size,
                      device=torch.device(device))
    clf.attention_source = attention_source(clf.module, type(model).__name__)
    return clf
