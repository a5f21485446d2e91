"""The paper's loss: cross-entropy plus three regularizers (MODEL.md, "Loss").

Each regularizer is a pure function of the masks (B, T, h, w) or the temporal
weights (B, T), summed over frames and positions and averaged over the batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossWeights:
    """Reference weights: l_tv = 1e-5, l_c = 1e-4, l_u = 1; no area prior."""

    tv: float = 1e-5
    contrast: float = 1e-4
    unimodal: float = 1.0
    # Beyond the paper (off by default): l_area * relu(mean(M) - area_target),
    # l_tv_time * the total variation of the mask between consecutive frames and
    # l_entropy * the normalized entropy of beta.
    area: float = 0.0
    area_target: float = 0.1
    tv_time: float = 0.0
    entropy: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def tv_loss(masks: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation: sum_t sum_{j,k} |M[j,k+1]-M[j,k]| + |M[j+1,k]-M[j,k]|."""
    dx = (masks[..., :, 1:] - masks[..., :, :-1]).abs().sum(dim=(-3, -2, -1))
    dy = (masks[..., 1:, :] - masks[..., :-1, :]).abs().sum(dim=(-3, -2, -1))
    return (dx + dy).mean()


def contrast_loss(masks: torch.Tensor) -> torch.Tensor:
    """sum_{t,j,k} (-1/2 M B + 1/2 M (1 - B)), B = 1[M > 0.5]: pushes M away from 0.5."""
    above = (masks > 0.5).to(masks.dtype)
    per_clip = (-0.5 * masks * above + 0.5 * masks * (1 - above)).sum(dim=(-3, -2, -1))
    return per_clip.mean()


def unimodal_loss(weights: torch.Tensor) -> torch.Tensor:
    """mean_t sqrt(relu(beta_{t-1} beta_{t+1} - beta_t^2)) over interior t.

    Zero exactly when beta is log-concave, hence single-peaked. The square root is
    taken only where the violation is positive, so its gradient stays finite.
    """
    if weights.shape[-1] < 3:
        return weights.new_zeros(())
    violation = F.relu(weights[..., :-2] * weights[..., 2:] - weights[..., 1:-1] ** 2)
    positive = violation > 0
    root = torch.where(positive, torch.sqrt(violation.clamp_min(1e-30)),
                       torch.zeros_like(violation))
    return root.mean(dim=-1).mean()


def tv_time_loss(masks: torch.Tensor) -> torch.Tensor:
    """sum_t sum_{j,k} |M_{t+1}[j,k] - M_t[j,k]|, averaged over the batch: the mask keeps
    its place unless the evidence moves it, so frames whose weight beta is small (where
    the classifier gives the mask no gradient) inherit the place their neighbours found."""
    return (masks[..., 1:, :, :] - masks[..., :-1, :, :]).abs().sum(dim=(-3, -2, -1)).mean()


def area_loss(masks: torch.Tensor, target: float) -> torch.Tensor:
    """relu(mean(M) - target) per clip, averaged over the batch: a mask may open up to
    `target` of the frame for free, and pays for every cell beyond it."""
    return F.relu(masks.mean(dim=(-3, -2, -1)) - target).mean()


def entropy_loss(weights: torch.Tensor) -> torch.Tensor:
    """H(beta) / log T per clip, averaged over the batch: 1 for uniform weights, 0 for one
    frame. Sharpens beta without reordering frames, so the weight gathers on the frames
    attention already ranks first."""
    t = weights.shape[-1]
    if t < 2:
        return weights.new_zeros(())
    h = -(weights * torch.log(weights.clamp_min(1e-12))).sum(dim=-1)
    return (h / math.log(t)).mean()


def total_loss(logits: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor,
               labels: torch.Tensor, lw: LossWeights) -> dict[str, torch.Tensor]:
    """All loss terms and their weighted sum under key "loss"."""
    terms = {
        "ce": F.cross_entropy(logits.float(), labels),
        "tv": tv_loss(masks.float()),
        "contrast": contrast_loss(masks.float()),
        "unimodal": unimodal_loss(weights.float()),
        "area": area_loss(masks.float(), lw.area_target),
        "tv_time": tv_time_loss(masks.float()),
        "entropy": entropy_loss(weights.float()),
    }
    terms["loss"] = (terms["ce"] + lw.tv * terms["tv"] + lw.contrast * terms["contrast"]
                     + lw.unimodal * terms["unimodal"] + lw.area * terms["area"]
                     + lw.tv_time * terms["tv_time"] + lw.entropy * terms["entropy"])
    return terms
