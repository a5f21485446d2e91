"""`gradcam` and `guided-gradcam` at the classifier's Grad-CAM layer.

Channel weights are the gradient averaged over space, separately for every time
slice: Captum's LayerGradCam averages over all dims >= 2, which for a 3-D layer
(N, C, T', h, w) would share one set of weights across time (MODEL.md). For a
per-frame 2-D layer (N*T, C, h, w) both agree. A 3-D layer's T' slices are then
resampled linearly to the clip's T frames. A transformer layer's tokens are first
laid out on their (T', h, w) grid (`TokenGrid`: special tokens dropped, tubelets and
TimeSformer's divided space-time views handled), so a token is a grid cell.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop

from stviz.explain.base import (
    Attribution,
    Explainer,
    InputAttribution,
    register,
    to_clip_frames,
)
from stviz.explain.classifier import VideoClassifier


def grad_cam(clf: VideoClassifier, x: torch.Tensor, target: int) -> torch.Tensor:
    """relu(sum_c w_c,t A_c,t) with w_c,t = mean over (h, w) of dScore/dA: (T, h, w).

    Needs gradients enabled (the caller is an `Explainer.attribute`).
    """
    info = clf.layer_info()
    t = x.shape[1]
    with clf.capture(info.module) as outputs:
        score = clf(x)[0, target]
    grads = torch.autograd.grad(score, outputs)
    acts = clf.clip_view([a.float() for a in outputs], 1, t, info.tokens)  # (1, C, T', h, w)
    grad = clf.clip_view([g.float() for g in grads], 1, t, info.tokens)
    weights = grad.mean(dim=(3, 4), keepdim=True)
    cam = F.relu((weights * acts).sum(dim=1))  # (1, T', h, w)
    return to_clip_frames(cam[0], t)


@register
@dataclass
class GradCam(Explainer):
    """Grad-CAM maps on the layer's grid; temporal = per-frame mass."""

    name = "gradcam"
    uses_layer = True

    def _attribute(self, clf: VideoClassifier, x: torch.Tensor, target: int | None
                   ) -> Attribution:
        return Attribution.from_maps(grad_cam(clf, x, target))


@register
@dataclass
class GuidedGradCam(InputAttribution):
    """Guided Backprop times the Grad-CAM map upsampled (bilinear) to the frame.

    Captum's GuidedBackprop rewrites the backward pass of nn.ReLU modules only; other
    activations (ReLU6, SiLU) pass plain gradients.
    """

    name = "guided-gradcam"
    uses_layer = True

    def _input_attribution(self, clf: VideoClassifier, x: torch.Tensor, target: int | None
                           ) -> torch.Tensor:
        cam = grad_cam(clf, x, target)
        with warnings.catch_warnings():  # Captum announces its temporary ReLU hooks
            warnings.filterwarnings("ignore", "Setting backward hooks", UserWarning)
            guided = GuidedBackprop(clf).attribute(x, target=target)
        up = F.interpolate(cam.unsqueeze(1), size=x.shape[-2:], mode="bilinear",
                           align_corners=False)  # (T, 1, H, W)
        return guided * up.unsqueeze(0)
