"""Perturbation methods via Captum: `occlusion` and `frame-ablation`.

Both replace content with zeros in normalized units, i.e. the dataset-mean colour,
and measure how much the target's logit drops. They need no gradients, so they
also explain models whose backward pass is unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from captum import attr as captum

from stviz.explain.base import Attribution, Explainer, InputAttribution, register
from stviz.explain.classifier import VideoClassifier


@register
@dataclass
class Occlusion(InputAttribution):
    """Occlude spatio-temporal boxes and record the logit drop (Zeiler & Fergus 2014).

    Box and stride are in frames and in grid cells (a cell is 32x32 pixels for a stviz
    model at 224x224). The defaults slide a 2x2-cell box by one cell over blocks of a
    quarter of the clip: for 16 frames at 224, 36 positions x 4 blocks = 144 forward
    passes. Maps keep the positive drops (evidence for the class).
    """

    name = "occlusion"
    needs_grad = False
    positive = True
    window_frames: int | None = None  # None: a quarter of the clip (at least 1)
    stride_frames: int | None = None  # None: the window, so blocks do not overlap
    window_cells: int = 2
    stride_cells: int = 1
    batch: int = 4  # occluded clips per forward pass

    def _input_attribution(self, clf: VideoClassifier, x: torch.Tensor, target: int | None
                           ) -> torch.Tensor:
        t, _, height, width = x.shape[1:]
        cell_h, cell_w = height / clf.grid[0], width / clf.grid[1]
        frames = min(t, self.window_frames or max(1, t // 4))

        def px(cells: int, cell: float, size: int) -> int:
            return min(size, max(1, round(cells * cell)))

        window = (frames, 3, px(self.window_cells, cell_h, height),
                  px(self.window_cells, cell_w, width))
        strides = (min(t, self.stride_frames or frames), 3, px(self.stride_cells, cell_h, height),
                   px(self.stride_cells, cell_w, width))
        return captum.Occlusion(clf).attribute(
            x, sliding_window_shapes=window, strides=strides, baselines=0.0, target=target,
            perturbations_per_eval=self.batch)


@register
@dataclass
class FrameAblation(Explainer):
    """Replace one frame at a time by the mean frame: temporal = the logit drop (signed).

    It says nothing about where within a frame, so each frame's map is uniform, equal
    to its drop where positive and 0 otherwise.
    """

    name = "frame-ablation"
    needs_grad = False
    batch: int = 4  # ablated clips per forward pass

    def _attribute(self, clf: VideoClassifier, x: torch.Tensor, target: int | None
                   ) -> Attribution:
        t = x.shape[1]
        frame_of = torch.arange(t, device=x.device).reshape(1, t, 1, 1, 1)
        drops = captum.FeatureAblation(clf).attribute(
            x, baselines=0.0, target=target, feature_mask=frame_of,
            perturbations_per_eval=self.batch)[0, :, 0, 0, 0]
        spatial = drops.clamp(min=0).reshape(t, 1, 1).expand(t, *clf.grid).clone()
        return Attribution(spatial, drops)
