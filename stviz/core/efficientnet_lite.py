"""EfficientNet-Lite0 in plain PyTorch, with timm's module names.

Why not timm: importing timm imports torchvision and torch._dynamo, about 1.5 s
of the 5 s that `stviz explain` may take end to end. The architecture is small
and fixed (MobileNet-style blocks, ReLU6, no squeeze-excite), so stviz builds it
itself. Parameter names and order are timm's `efficientnet_lite0` (`conv_stem`,
`blocks.i.j.conv_pw`, ..., `bn2`), so state dicts and fine-tuned checkpoints are
interchangeable with timm's, and `tests/test_backbones.py` checks the outputs match.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# (block kind, repeats, kernel, first stride, expansion, out channels): timm's arch_def
# ds_r1_k3_s1_e1_c16, ir_r2_k3_s2_e6_c24, ir_r2_k5_s2_e6_c40, ... for the Lite variants.
STAGES = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
FEATURES = 1280
BN_EPS = 1e-3  # the TF port's BatchNorm eps, which the packaged weights were trained with


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm then an activation, as one module (timm's layout: `drop`, then `act`)."""

    def __init__(self, channels: int, act: bool) -> None:
        super().__init__(channels, eps=BN_EPS)
        self.drop = nn.Identity()
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


def _conv(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)


class DepthwiseSeparableConv(nn.Module):
    """Depthwise kxk conv -> BN+ReLU6 -> pointwise 1x1 conv -> BN (first stage)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.has_skip = stride == 1 and cin == cout
        self.conv_dw = _conv(cin, cin, kernel, stride, groups=cin)
        self.bn1 = BatchNormAct2d(cin, act=True)
        self.conv_pw = _conv(cin, cout)
        self.bn2 = BatchNormAct2d(cout, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))
        return y + x if self.has_skip else y


class InvertedResidual(nn.Module):
    """1x1 expansion -> depthwise kxk -> 1x1 projection, residual when shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = cin * expansion
        self.has_skip = stride == 1 and cin == cout
        self.conv_pw = _conv(cin, mid)
        self.bn1 = BatchNormAct2d(mid, act=True)
        self.conv_dw = _conv(mid, mid, kernel, stride, groups=mid)
        self.bn2 = BatchNormAct2d(mid, act=True)
        self.conv_pwl = _conv(mid, cout)
        self.bn3 = BatchNormAct2d(cout, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))
        y = self.bn3(self.conv_pwl(y))
        return y + x if self.has_skip else y


class EfficientNetLite0(nn.Module):
    """The feature extractor: (N, 3, H, W) -> (N, 1280, H/32, W/32), no pooling or classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_stem = _conv(3, STEM_CHANNELS, 3, 2)
        self.bn1 = BatchNormAct2d(STEM_CHANNELS, act=True)
        stages: list[nn.Module] = []
        cin = STEM_CHANNELS
        for kind, repeats, kernel, stride, expansion, cout in STAGES:
            blocks: list[nn.Module] = []
            for i in range(repeats):
                s = stride if i == 0 else 1
                blocks.append(DepthwiseSeparableConv(cin, cout, kernel, s) if kind == "ds"
                              else InvertedResidual(cin, cout, kernel, s, expansion))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = _conv(cin, FEATURES)
        self.bn2 = BatchNormAct2d(FEATURES, act=True)
        self._init_weights()

    def _init_weights(self) -> None:
        """timm's ("goog") initialization, so random backbones behave like timm's."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv_head(self.blocks(self.bn1(self.conv_stem(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)
