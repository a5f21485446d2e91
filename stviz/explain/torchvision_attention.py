"""Attention of torchvision's `mvit_v2_s` and `swin3d_t`, read for `attention-rollout`.

torchvision computes their attention in functional code that returns no weights, so a
forward hook on each attention module recomputes softmax(QK^T) from the module's own
input and weights (qkv projection, Q/K/V pooling and relative positions for MViT;
window partition, shift, relative position bias and shift mask for Swin3D), and checks
that the output it recomputes equals the module's.

Neither model mixes tokens with one matrix over a fixed sequence, so each step here is
a token map from the step's input tokens to its output tokens that pulls a row vector
back through itself (`pull`), without building the (large, sparse) matrix:

- MViT v2 block (`PooledAttention`): Q is pooled (the output grid), K and V are pooled
  coarser; the attention output is A V plus the pooled Q (residual pooling), and the
  block adds its input pooled with Q's stride (`pool_skip`). As token maps:
  branch = (A P_kv + P_q) / 2 (the CLS row, which gets no pooled Q: A P_kv),
  block = normalize(branch + P_skip). Every pooling (strided depthwise convolutions for
  Q/K/V, a max pool on the skip path) is taken as the average over its window (kernel,
  stride and padding as configured; padding cells do not count). The CLS token is never
  pooled: it maps to itself.
- Swin3D block (`WindowAttention`): attention within (shifted) windows is
  block-diagonal in the token order after the roll and the window partition; the map is
  normalize(A + I) there, rolled back. Windows shrink to the grid when it is smaller,
  as the model does; the grid is zero-padded to whole windows, and what flows to padding
  cells (constants, not input) is dropped.
- Swin3D patch merging (`PatchMerge`): each output token concatenates 2x2 spatial
  neighbours; as a map, their average (fewer at an odd edge).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stviz.errors import StvizError
from stviz.explain.classifier import AttentionSource, TokenGrid

Triple = tuple[int, int, int]
# Heads fused and the lowest weights discarded: (..., heads, Lq, Lk) -> (..., Lq, Lk).
Fuse = Callable[[torch.Tensor], torch.Tensor]
CHECK_TOLERANCE = 1e-3  # recomputed vs module output, relative to its largest value


# ------------------------------------------------------------------ pooling as token maps


@dataclass(frozen=True)
class Pooling:
    """A pooling window over a (T, H, W) token grid: output o of each dimension averages
    the inputs in [o * stride - padding, o * stride - padding + kernel)."""

    kernel: Triple
    stride: Triple
    padding: Triple

    @classmethod
    def of(cls, module: nn.Module) -> Pooling:
        """The window of a Conv3d, MaxPool3d or AvgPool3d."""
        return cls(*(_triple(getattr(module, k)) for k in ("kernel_size", "stride",
                                                            "padding")))

    def pull(self, row: torch.Tensor, into: Triple, out: Triple) -> torch.Tensor:
        """A row over the `out` grid (flattened) -> the row over the `into` grid."""
        mats = [window_average(n, o, k, s, p, row.device) for n, o, k, s, p in
                zip(into, out, self.kernel, self.stride, self.padding)]
        return torch.einsum("abc,ai,bj,ck->ijk", row.reshape(out), *mats).flatten()


def window_average(n: int, out: int, kernel: int, stride: int, padding: int,
                   device: torch.device | None = None) -> torch.Tensor:
    """(out, n): row o averages the inputs its window covers (padding does not count)."""
    start = torch.arange(out, device=device)[:, None] * stride - padding
    index = torch.arange(n, device=device)[None, :]
    covered = ((index >= start) & (index < start + kernel)).float()
    return covered / covered.sum(dim=1, keepdim=True)


def _pull_tokens(row: torch.Tensor, pool: Pooling | None, into: Triple, out: Triple
                 ) -> torch.Tensor:
    """A row over (CLS, `out` grid) -> over (CLS, `into` grid); no pooling: unchanged."""
    if pool is None:
        return row
    return torch.cat([row[:1], pool.pull(row[1:], into, out)])


def _triple(value: int | tuple[int, ...] | list[int]) -> Triple:
    if isinstance(value, int):
        return (value, value, value)
    a, b, c = (int(v) for v in value)
    return (a, b, c)


def _size(thw: Triple) -> int:
    return thw[0] * thw[1] * thw[2]


# --------------------------------------------------------------------------- MViT


@dataclass
class PooledAttention:
    """One MViT block as a token map (see the module doc); `probs` (heads, Lq, Lk) with
    the CLS token first in both."""

    probs: torch.Tensor
    thw: Triple  # the block's input grid
    q_thw: Triple  # its output grid
    kv_thw: Triple
    q_pool: Pooling | None
    kv_pool: Pooling | None
    skip_pool: Pooling | None
    q_residual: str  # rows that get the pooled Q added: "none", "patches" or "all"

    @property
    def outputs(self) -> int:
        return 1 + _size(self.q_thw)

    def pull(self, row: torch.Tensor, fuse: Fuse) -> torch.Tensor:
        a = fuse(self.probs)
        residual = torch.zeros(len(row), device=row.device)
        if self.q_residual != "none":
            residual[0 if self.q_residual == "all" else 1:] = 1.0
        branch = (a.sum(dim=-1) + residual) / (1 + residual)  # row sums of the branch map
        u = row / (branch + 1)  # the block map's rows renormalized
        w = u / (1 + residual)
        return (_pull_tokens(w @ a, self.kv_pool, self.thw, self.kv_thw)
                + _pull_tokens(w * residual, self.q_pool, self.thw, self.q_thw)
                + _pull_tokens(u, self.skip_pool, self.thw, self.q_thw))


def mvit_attention(attn: nn.Module, x: torch.Tensor, thw: Triple
                   ) -> tuple[torch.Tensor, torch.Tensor, Triple, Triple]:
    """(probabilities (B, heads, Lq, Lk), output, Q's grid, K/V's grid) of a torchvision
    `MultiscaleAttention` on its input `x` (B, L, C): its own computation, step by step."""
    from torchvision.models.video.mvit import _add_rel_pos

    b, n, _ = x.shape
    q, k, v = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).transpose(1, 3
                                                                                    ).unbind(2)
    k, kv_thw = attn.pool_k(k, thw) if attn.pool_k is not None else (k, thw)
    if attn.pool_v is not None:
        v = attn.pool_v(v, thw)[0]
    q, q_thw = attn.pool_q(q, thw) if attn.pool_q is not None else (q, thw)
    logits = torch.matmul(attn.scaler * q, k.transpose(2, 3))
    if attn.rel_pos_h is not None:
        logits = _add_rel_pos(logits, q, q_thw, kv_thw, attn.rel_pos_h, attn.rel_pos_w,
                              attn.rel_pos_t)
    probs = logits.softmax(dim=-1)
    out = torch.matmul(probs, v)
    if attn.residual_pool:
        if attn.residual_with_cls_embed:
            out = out + q
        else:
            out = torch.cat([out[:, :, :1], out[:, :, 1:] + q[:, :, 1:]], dim=2)
    out = attn.project(out.transpose(1, 2).reshape(b, -1, attn.output_dim))
    return probs, out, tuple(q_thw), tuple(kv_thw)


def _mvit_step(block: nn.Module, probs: torch.Tensor, thw: Triple, q_thw: Triple,
               kv_thw: Triple) -> PooledAttention:
    attn = block.attn
    residual = "none" if not attn.residual_pool else (
        "all" if attn.residual_with_cls_embed else "patches")
    return PooledAttention(
        probs, thw, q_thw, kv_thw,
        Pooling.of(attn.pool_q.pool) if attn.pool_q is not None else None,
        Pooling.of(attn.pool_k.pool) if attn.pool_k is not None else None,
        Pooling.of(block.pool_skip.pool) if block.pool_skip is not None else None,
        residual)


# ------------------------------------------------------------------------- Swin3D


@dataclass
class WindowAttention:
    """One Swin3D block as a token map (see the module doc): `probs` (windows, heads, n, n)
    over the `thw` grid padded to whole `window`s and rolled back by `shift`."""

    probs: torch.Tensor
    thw: Triple
    window: Triple
    shift: Triple

    @property
    def outputs(self) -> int:
        return _size(self.thw)

    def pull(self, row: torch.Tensor, fuse: Fuse) -> torch.Tensor:
        a = fuse(self.probs)  # (windows, n, n)
        padded = _padded(self.thw, self.window)
        grid = F.pad(row.reshape(self.thw), _pad_arg(self.thw, padded))
        grid = torch.roll(grid, tuple(-s for s in self.shift), dims=(0, 1, 2))
        u = partition(grid, self.window) / (a.sum(dim=-1) + 1)  # rows of normalize(A + I)
        back = torch.bmm(u[:, None], a)[:, 0] + u
        grid = torch.roll(unpartition(back, padded, self.window), self.shift, dims=(0, 1, 2))
        t, h, w = self.thw
        return grid[:t, :h, :w].flatten()  # what reached the padding cells is dropped


@dataclass
class PatchMerge:
    """Swin3D's patch merging as a token map: each output token the average of the 2x2
    spatial neighbours it concatenates (fewer at an odd edge, where the model pads)."""

    thw: Triple  # the input grid

    @property
    def out_thw(self) -> Triple:
        t, h, w = self.thw
        return (t, math.ceil(h / 2), math.ceil(w / 2))

    @property
    def outputs(self) -> int:
        return _size(self.out_thw)

    def pull(self, row: torch.Tensor, fuse: Fuse) -> torch.Tensor:
        return Pooling((1, 2, 2), (1, 2, 2), (0, 0, 0)).pull(row, self.thw, self.out_thw)


def partition(grid: torch.Tensor, window: Triple) -> torch.Tensor:
    """(T, H, W, ...) -> (windows, n, ...): Swin3D's window order, then token order."""
    t, h, w = grid.shape[:3]
    rest = grid.shape[3:]
    wt, wh, ww = window
    x = grid.reshape(t // wt, wt, h // wh, wh, w // ww, ww, *rest)
    x = x.permute(0, 2, 4, 1, 3, 5, *range(6, 6 + len(rest)))
    return x.reshape((t // wt) * (h // wh) * (w // ww), wt * wh * ww, *rest)


def unpartition(windows: torch.Tensor, thw: Triple, window: Triple) -> torch.Tensor:
    """The inverse of `partition`: (windows, n, ...) -> (T, H, W, ...)."""
    t, h, w = thw
    wt, wh, ww = window
    rest = windows.shape[2:]
    x = windows.reshape(t // wt, h // wh, w // ww, wt, wh, ww, *rest)
    x = x.permute(0, 3, 1, 4, 2, 5, *range(6, 6 + len(rest)))
    return x.reshape(t, h, w, *rest)


def _padded(thw: Triple, window: Triple) -> Triple:
    t, h, w = (math.ceil(n / k) * k for n, k in zip(thw, window))
    return (t, h, w)


def _pad_arg(thw: Triple, padded: Triple) -> tuple[int, ...]:
    """F.pad's argument that pads a (T, H, W) grid at the end to `padded`."""
    return (0, padded[2] - thw[2], 0, padded[1] - thw[1], 0, padded[0] - thw[0])


def swin_attention(attn: nn.Module, x: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, Triple, Triple]:
    """(probabilities (B * windows, heads, n, n), output, window, shift) of a torchvision
    `ShiftedWindowAttention3d` on its input `x` (B, T, H, W, C): its own computation, step
    by step (windows and shifts as the model adapts them to the grid)."""
    from torchvision.models.video.swin_transformer import (
        _compute_attention_mask_3d,
        _get_window_and_shift_size,
    )

    b, t, h, w, c = x.shape
    window, shift = _get_window_and_shift_size(list(attn.shift_size), [t, h, w],
                                               list(attn.window_size))
    window, shift = _triple(window), _triple(shift)
    padded = _padded((t, h, w), window)
    grid = F.pad(x, (0, 0, *_pad_arg((t, h, w), padded)))
    if sum(shift):
        grid = torch.roll(grid, tuple(-s for s in shift), dims=(1, 2, 3))
    windows = torch.cat([partition(g, window) for g in grid])  # (B * nW, n, C)
    heads, n = attn.num_heads, windows.shape[1]
    q, k, v = F.linear(windows, attn.qkv.weight, attn.qkv.bias).reshape(
        -1, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    logits = (q * (c // heads) ** -0.5).matmul(k.transpose(-2, -1))
    logits = logits + attn.get_relative_position_bias(list(window))
    if sum(shift):
        mask = _compute_attention_mask_3d(windows, padded, window, shift)  # (nW, n, n)
        logits = (logits.view(b, -1, heads, n, n) + mask[None, :, None]).view(-1, heads, n, n)
    probs = logits.softmax(dim=-1)
    out = F.linear(probs.matmul(v).transpose(1, 2).reshape(-1, n, c), attn.proj.weight,
                   attn.proj.bias)
    out = torch.stack([unpartition(o, padded, window) for o in out.chunk(b)])
    if sum(shift):
        out = torch.roll(out, shift, dims=(1, 2, 3))
    return probs, out[:, :t, :h, :w], window, shift


# ------------------------------------------------------------------- the source


def attention_source(model: nn.Module, name: str) -> AttentionSource | None:
    """The attention source (see `AttentionSource`) of a torchvision MViT or
    SwinTransformer3d taking (N, C, T, H, W) clips; None for other models."""
    from torchvision.models.video.mvit import MViT
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    if isinstance(model, MViT):
        return _source(model, name, _mvit_hooks(model), "first", prefix=1)
    if isinstance(model, SwinTransformer3d):
        return _source(model, name, _swin_hooks(model), "mean", prefix=0)
    return None


# A hook: (the steps so far, the module's args, its output) -> None; it appends a step.
Hook = Callable[[list, tuple, object], None]


def _source(model: nn.Module, name: str, hooks: list[tuple[nn.Module, Hook]], readout: str,
            prefix: int) -> AttentionSource:
    def source(x: torch.Tensor) -> tuple[torch.Tensor, list, TokenGrid, str]:
        steps: list = []
        handles = [module.register_forward_hook(
            lambda _m, args, out, hook=hook: hook(steps, args, out)) for module, hook in hooks]
        try:
            logits = model(x.transpose(1, 2))[0].float()
        except _Mismatch as exc:
            raise StvizError(f"{name}: this torchvision computes attention differently from "
                             f"what attention-rollout reads ({exc}); use gradcam") from exc
        finally:
            for handle in handles:
                handle.remove()
        t, h, w = steps[0].thw  # relevance ends on the tokens the first block reads
        return logits, steps, TokenGrid(t, (h, w), prefix), readout

    return source


class _Mismatch(Exception):
    """A recomputed attention output differs from the module's."""


def _check(module: nn.Module, mine: torch.Tensor, theirs: torch.Tensor) -> None:
    scale = float(theirs.abs().max()) or 1.0
    if mine.shape != theirs.shape or not torch.allclose(
            mine, theirs, rtol=0, atol=CHECK_TOLERANCE * scale):
        raise _Mismatch(f"{type(module).__name__} output differs")


def _mvit_hooks(model: nn.Module) -> list[tuple[nn.Module, Hook]]:
    def hook(block: nn.Module) -> Hook:
        def step(steps: list, args: tuple, out: object) -> None:
            x, thw = args[0], _triple(args[1])
            probs, mine, q_thw, kv_thw = mvit_attention(block.attn, x, thw)
            _check(block.attn, mine, out[0])
            steps.append(_mvit_step(block, probs[0].detach().float(), thw, q_thw, kv_thw))

        return step

    return [(block.attn, hook(block)) for block in model.blocks]


def _swin_hooks(model: nn.Module) -> list[tuple[nn.Module, Hook]]:
    from torchvision.models.swin_transformer import PatchMerging, PatchMergingV2
    from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

    def attention(module: nn.Module) -> Hook:
        def step(steps: list, args: tuple, out: object) -> None:
            probs, mine, window, shift = swin_attention(module, args[0])
            _check(module, mine, out)
            steps.append(WindowAttention(probs.detach().float(), _triple(args[0].shape[1:4]),
                                         window, shift))

        return step

    def merge(steps: list, args: tuple, out: object) -> None:
        steps.append(PatchMerge(_triple(args[0].shape[1:4])))

    return [(module, attention(module) if isinstance(module, ShiftedWindowAttention3d)
             else merge) for module in model.features.modules()
            if isinstance(module, (ShiftedWindowAttention3d, PatchMerging, PatchMergingV2))]
