"""Gradient methods on pixels, via Captum: `saliency`, `smoothgrad`, `ig`.

Maps are |attribution| summed over colour channels and average-pooled to the
classifier's grid; temporal relevance is each frame's mass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from captum import attr as captum

from stviz.explain.base import InputAttribution, register
from stviz.explain.classifier import VideoClassifier


@register
@dataclass
class Saliency(InputAttribution):
    """|dScore/dx| (Simonyan et al. 2014): one forward and one backward pass."""

    name = "saliency"

    def _input_attribution(self, clf: VideoClassifier, x: torch.Tensor, target: int | None
                           ) -> torch.Tensor:
        return captum.Saliency(clf).attribute(x, target=target, abs=True)


@register
@dataclass
class SmoothGrad(InputAttribution):
    """Saliency averaged over `samples` noisy copies (Smilkov et al. 2017).

    `noise` is SmoothGrad's noise level: the Gaussian's std is `noise` times the clip's
    value range (max - min of the normalized input), so it means the same whatever the
    normalization; 0.15 is in the paper's recommended 10-20%. `seed` draws the noise:
    the same seed gives the same map, run after run (the caller's random state is left
    as it was).
    """

    name = "smoothgrad"
    samples: int = 8
    noise: float = 0.15
    batch: int = 2  # noisy clips per forward pass: bounds memory
    seed: int = 0

    def _input_attribution(self, clf: VideoClassifier, x: torch.Tensor, target: int | None
                           ) -> torch.Tensor:
        sigma = self.noise * float(x.detach().max() - x.detach().min())
        # Captum draws the noise from torch's global generator: seed a forked copy of it
        cuda = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(self.seed)
            return captum.NoiseTunnel(captum.Saliency(clf)).attribute(
                x, nt_type="smoothgrad", nt_samples=self.samples,
                nt_samples_batch_size=self.batch, stdevs=sigma, target=target, abs=True)


@register
@dataclass
class IntegratedGradients(InputAttribution):
    """Integrated Gradients (Sundararajan et al. 2017) from a baseline of zeros in normalized
    units, i.e. every frame replaced by the dataset-mean colour (not black)."""

    name = "ig"
    steps: int = 32
    batch: int = 2  # interpolation steps per forward/backward pass: bounds memory

    def _input_attribution(self, clf: VideoClassifier, x: torch.Tensor, target: int | None
                           ) -> torch.Tensor:
        return captum.IntegratedGradients(clf).attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=self.steps,
            internal_batch_size=self.batch)
