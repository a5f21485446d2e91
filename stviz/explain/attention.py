"""`attention`: the stviz network's own masks and temporal weights, read from one forward
pass, so the explanation costs no more than inference and is what the classifier used."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from stviz.explain.base import Attribution, Explainer, register
from stviz.explain.classifier import VideoClassifier


@register
@dataclass
class Attention(Explainer):
    """Spatial: the masks M_t in [0, 1]; temporal: beta (sums to 1). Class-independent."""

    name = "attention"
    needs_target = False
    needs_grad = False

    def _attribute(self, clf: VideoClassifier, x: torch.Tensor, target: int | None
                   ) -> Attribution:
        out = clf.attention(x)
        return Attribution(out.masks[0], out.weights[0], out.logits[0])
