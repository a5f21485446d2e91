"""`attention-rollout`: how much each patch token flows into a transformer's output through
its attention (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

Every attention step becomes a token-to-token matrix: heads fused (mean or max), the
`discard` fraction of its lowest weights set to zero, the identity added for the
residual connection, rows renormalized. Rolling out multiplies these matrices from the
first step to the last; the row the head reads (the CLS token, or the mean of all tokens
for VideoMAE's mean pooling) gives each patch token's share, laid out on the (T', h, w)
token grid and resampled to the clip's frames like Grad-CAM. Only that row is needed,
so it is propagated backwards through the steps (a vector times each matrix) instead of
multiplying the matrices.

Divided space-time attention (TimeSformer) is two steps per block, each written as a
matrix over the whole sequence before rolling out: the temporal step mixes each patch
location's tokens over the frames (the CLS token passes unchanged); the spatial step
mixes each frame's patch tokens and the CLS token, whose output is the average of its
T per-frame copies, so its row is the mean of their attention rows. The discard ratio
applies to each attention matrix (each frame's, each location's) separately.

torchvision's MViT (pooled attention) and Swin3D (shifted windows, patch merging) give
steps that map their input tokens to fewer output tokens; each pulls the row back
through itself without a dense matrix (`stviz.explain.torchvision_attention`). The
row ends on the first block's token grid (MViT's patch grid, Swin3D's stage-1 grid),
which is summed onto the classifier's map grid (its Grad-CAM layer's, the last stage's)
so that maps compare cell by cell with the other methods.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stviz.errors import StvizError
from stviz.explain.base import Attribution, Explainer, register, to_clip_frames
from stviz.explain.classifier import TokenAttention, TokenGrid, TokenMap, VideoClassifier

HEAD_FUSIONS = ("mean", "max")


@register
@dataclass
class AttentionRollout(Explainer):
    """Attention rollout of a video transformer (Hugging Face VideoMAE, TimeSformer,
    ViViT; torchvision MViT v2, Swin3D); class-independent, one forward pass.
    `head_fusion`: mean or max over heads; `discard`: the fraction of each attention
    matrix's lowest weights dropped (0 keeps all; in [0, 1))."""

    name = "attention-rollout"
    needs_target = False
    needs_grad = False
    head_fusion: str = "mean"
    discard: float = 0.0

    def __post_init__(self) -> None:
        if self.head_fusion not in HEAD_FUSIONS:
            raise StvizError(f"method {self.name}: parameter head_fusion={self.head_fusion!r} "
                             f"must be one of {', '.join(HEAD_FUSIONS)}")
        if not 0 <= float(self.discard) < 1:
            raise StvizError(f"method {self.name}: parameter discard={self.discard!r} must be "
                             "in [0, 1)")

    def _attribute(self, clf: VideoClassifier, x: torch.Tensor, target: int | None
                   ) -> Attribution:
        if clf.attention_source is None:
            raise StvizError(f"{clf.name}: method {self.name} needs a video transformer (a "
                             "Hugging Face VideoMAE, TimeSformer or ViViT folder, or --arch "
                             "mvit_v2_s or swin3d_t); this model has no attention to roll "
                             "out: use gradcam")
        logits, steps, tokens, readout = clf.attention_source(x)
        relevance = rollout(steps, tokens, readout, self.head_fusion, float(self.discard))
        maps = to_clip_frames(sum_to_grid(relevance, clf.grid), x.shape[1])
        return Attribution(maps, maps.sum(dim=(1, 2)), logits)


def rollout(steps: list[TokenAttention | TokenMap], tokens: TokenGrid, readout: str = "first",
            head_fusion: str = "mean", discard: float = 0.0) -> torch.Tensor:
    """The rolled-out relevance of each patch token, (T', h, w), for attention `steps` in
    the order they ran; `readout`: "first" (the head reads token 0) or "mean" (of the
    last step's output tokens)."""
    fuse = functools.partial(fuse_heads, head_fusion=head_fusion, discard=discard)
    t, (h, w) = tokens.frames, tokens.grid
    length = tokens.prefix + t * h * w
    last = steps[-1]
    outputs = length if isinstance(last, TokenAttention) else last.outputs
    device = next(s.probs.device for s in steps if getattr(s, "probs", None) is not None)
    if readout == "mean":
        row = torch.full((outputs,), 1.0 / outputs, device=device)
    else:
        row = torch.zeros(outputs, device=device)
        row[0] = 1.0
    for step in reversed(steps):
        if isinstance(step, TokenAttention):  # a matrix over the whole sequence
            row = row @ step_matrix(step, tokens, head_fusion, discard)
        elif len(row) != step.outputs:
            raise StvizError(f"attention-rollout: a {type(step).__name__} step outputs "
                             f"{step.outputs} tokens, but the next step reads {len(row)}; "
                             "the model mixes tokens in a way rollout does not follow: use "
                             "gradcam")
        else:
            row = step.pull(row, fuse)
    if len(row) != length:
        raise StvizError(f"attention-rollout: the first step reads {len(row)} tokens, not the "
                         f"{length} of the {t}x{h}x{w} token grid; use gradcam")
    patches = row[tokens.prefix:]
    if tokens.order == "hwt":
        return patches.reshape(h, w, t).permute(2, 0, 1)
    return patches.reshape(t, h, w)


def step_matrix(step: TokenAttention, tokens: TokenGrid, head_fusion: str = "mean",
                discard: float = 0.0) -> torch.Tensor:
    """One attention step as an (L, L) row-stochastic matrix over the whole sequence:
    fused heads, lowest weights discarded, identity added, rows renormalized."""
    fused = fuse_heads(step.probs, head_fusion, discard)
    t, (h, w) = tokens.frames, tokens.grid
    prefix = tokens.prefix
    length = prefix + t * h * w
    if step.kind == "joint":
        if fused.shape[-1] != length:
            raise ValueError(f"attention over {fused.shape[-1]} tokens, expected {length}")
        matrix = fused.clone()
    else:
        position = _positions(tokens, fused.device)  # (h*w, T') sequence index of each patch
        matrix = torch.zeros(length, length, device=fused.device)
        if step.kind == "time":  # (h*w, T', T'): each location over the frames
            matrix[position[:, :, None], position[:, None, :]] = fused
        else:  # "space": (T', prefix + h*w, ...): each frame's patches and its CLS copy
            specials = fused.shape[-1] - h * w
            frame = torch.cat([torch.arange(specials, device=fused.device).expand(t, specials),
                               position.T], dim=1)  # (T', specials + h*w)
            matrix[frame[:, specials:, None], frame[:, None, :]] = fused[:, specials:]
            # The special tokens' outputs average their per-frame copies.
            for s in range(specials):
                matrix[s].index_add_(0, frame.flatten(), fused[:, s].flatten() / t)
    matrix = matrix + torch.eye(length, device=matrix.device)
    return matrix / matrix.sum(dim=-1, keepdim=True)


def fuse_heads(probs: torch.Tensor, head_fusion: str = "mean", discard: float = 0.0
               ) -> torch.Tensor:
    """Attention (..., heads, Lq, Lk) -> (..., Lq, Lk): heads fused, the `discard` fraction
    of each matrix's lowest weights zeroed."""
    fused = probs.mean(dim=-3) if head_fusion == "mean" else probs.amax(dim=-3)
    return _discard_lowest(fused, discard)


def sum_to_grid(maps: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Relevance (T', h, w) -> (T', *grid), each cell the sum of the cells it covers (exact
    when the grid divides h and w; area-weighted otherwise), so shares stay shares."""
    h, w = maps.shape[1:]
    if (h, w) == tuple(grid):
        return maps
    pooled = F.adaptive_avg_pool2d(maps[:, None], grid)[:, 0]
    return pooled * (h * w / (grid[0] * grid[1]))


def _positions(tokens: TokenGrid, device: torch.device) -> torch.Tensor:
    """(h*w, T'): the sequence index of patch (location, frame)."""
    t, (h, w) = tokens.frames, tokens.grid
    loc = torch.arange(h * w, device=device)[:, None]
    frame = torch.arange(t, device=device)[None, :]
    index = loc * t + frame if tokens.order == "hwt" else frame * (h * w) + loc
    return tokens.prefix + index


def _discard_lowest(fused: torch.Tensor, fraction: float) -> torch.Tensor:
    """Zero the `fraction` lowest weights of each matrix (the last two dims); ties are
    broken by position (a stable sort), so the result is deterministic."""
    if fraction <= 0:
        return fused
    flat = fused.flatten(-2)
    k = int(flat.shape[-1] * fraction)
    lowest = flat.argsort(dim=-1, stable=True)[..., :k]
    return flat.scatter(-1, lowest, 0.0).reshape(fused.shape)
