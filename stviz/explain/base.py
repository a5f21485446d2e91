"""The one interface every explanation method has, and the plumbing they share.

`Explainer.attribute(clf, x, target)` takes a normalized clip (1, T, 3, H, W) and
returns an `Attribution`: spatial relevance (T, h, w) >= 0 on the classifier's grid
(the stviz backbone's feature grid, or a foreign model's Grad-CAM layer grid), so
maps of all methods can be compared cell by cell, and temporal relevance (T,).
Nothing is normalized per frame: one clip, one scale.

The base class does the plumbing (eval mode, gradients on even under
`torch.inference_mode`, cuDNN off, a fresh float32 input); a method is a small
dataclass whose fields are its parameters and which overrides `_attribute`, or
`_input_attribution` for methods that attribute to pixels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from stviz.errors import StvizError
from stviz.explain.classifier import VideoClassifier

METHODS: dict[str, type[Explainer]] = {}  # by name; `load_methods()` fills in the built-ins
# The module of each built-in method: a method's module (and Captum, for the baselines)
# is imported only when that method is asked for, which keeps `stviz explain` quick.
BUILTIN_MODULES = {"attention": "attention", "gradcam": "gradcam", "guided-gradcam": "gradcam",
                   "saliency": "gradients", "smoothgrad": "gradients", "ig": "gradients",
                   "occlusion": "perturbation", "frame-ablation": "perturbation",
                   "attention-rollout": "rollout"}


@dataclass
class Attribution:
    """What a method says about one clip; tensors on the classifier's device."""

    spatial: torch.Tensor  # (T, h, w) float32, >= 0
    temporal: torch.Tensor  # (T,) float32
    logits: torch.Tensor | None = None  # (K,) when the method's own forward pass gave them

    @classmethod
    def from_maps(cls, spatial: torch.Tensor) -> Attribution:
        """Temporal relevance as each frame's attribution mass (the sum of its map)."""
        return cls(spatial, spatial.sum(dim=(1, 2)))


def register(cls: type[Explainer]) -> type[Explainer]:
    """Class decorator: make a method available by its `name`."""
    METHODS[cls.name] = cls
    return cls


def load_methods() -> dict[str, type[Explainer]]:
    """Register the built-in methods (each file registers itself when imported)."""
    for module in dict.fromkeys(BUILTIN_MODULES.values()):
        importlib.import_module(f"stviz.explain.{module}")
    return METHODS


def get_method(name: str, **params: Any) -> Explainer:
    """A method by registry name with its parameters; unknown ones are user errors."""
    if name not in METHODS and name in BUILTIN_MODULES:
        importlib.import_module(f"stviz.explain.{BUILTIN_MODULES[name]}")
    if name not in METHODS:
        raise StvizError(f"--method {name}: unknown; use one of "
                         f"{', '.join(dict.fromkeys([*BUILTIN_MODULES, *METHODS]))}")
    cls = METHODS[name]
    fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise StvizError(f"method {name} has no parameter {unknown[0]!r}; its parameters: "
                         f"{', '.join(sorted(fields)) or 'none'}")
    for key, value in params.items():
        _check_param(name, key, value, fields[key])
    return cls(**{k: int(v) if v is not None and fields[k].startswith("int") else v
                  for k, v in params.items()})


def _check_param(method: str, key: str, value: Any, kind: str) -> None:
    """Method parameters are counts (int >= 1), random seeds (int >= 0), amounts
    (float >= 0), words (checked by the method) or, where the type allows None,
    "automatic"; anything else is a user error, not a Captum traceback."""
    if value is None:
        if "None" in kind:
            return
        problem = "needs a value"
    elif isinstance(value, str) and kind.startswith(("int", "float")):
        problem = "is not a number"
    elif kind.startswith("int"):
        least = 0 if key == "seed" else 1
        ok = isinstance(value, (int, float)) and float(value).is_integer() and value >= least
        problem = "" if ok else f"must be a whole number >= {least}"
    elif kind.startswith("float"):
        ok = isinstance(value, (int, float)) and value >= 0
        problem = "" if ok else "must be a number >= 0"
    else:
        problem = ""
    if problem:
        raise StvizError(f"method {method}: parameter {key}={value!r} {problem}")


@dataclass
class Explainer:
    """Base of all methods: `attribute` does the plumbing, subclasses `_attribute`."""

    name: ClassVar[str] = ""
    needs_target: ClassVar[bool] = True  # False: the result does not depend on the class
    needs_grad: ClassVar[bool] = True
    uses_layer: ClassVar[bool] = False  # reads the classifier's Grad-CAM layer

    def attribute(self, clf: VideoClassifier, x: torch.Tensor,
                  target: int | None = None) -> Attribution:
        """Relevance of clip `x` (1, T, 3, H, W) for class `target`."""
        if x.dim() != 5 or len(x) != 1:
            raise ValueError(f"expected one clip (1, T, 3, H, W), got {tuple(x.shape)}")
        if self.needs_target and target is None:
            raise ValueError(f"method {self.name} needs a target class")
        with _attribution_mode(clf, self.needs_grad):
            # A fresh float32 copy: inference tensors cannot enter autograd.
            x = x.detach().to(clf.device, torch.float32).clone().requires_grad_(self.needs_grad)
            result = self._attribute(clf, x, target)
        return Attribution(*(None if t is None else t.detach().float() for t in
                             (result.spatial, result.temporal, result.logits)))

    def _attribute(self, clf: VideoClassifier, x: torch.Tensor, target: int | None
                   ) -> Attribution:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The parameters to record with the result."""
        return dataclasses.asdict(self)


@contextlib.contextmanager
def _attribution_mode(clf: VideoClassifier, grad: bool) -> Iterator[None]:
    """Eval mode, restored afterwards; gradients on, or inference mode for methods without
    gradients. cuDNN refuses RNN backward in eval mode, so it is turned off for models
    that may hold an RNN; only for those, because it also runs the convolutions fast."""
    was_training = clf.training
    clf.eval()
    try:
        if grad:
            with (torch.inference_mode(False), torch.enable_grad(),
                  torch.backends.cudnn.flags(enabled=not clf.may_have_rnn)):
                yield
        else:
            with torch.inference_mode():
                yield
    finally:
        clf.train(was_training)


def to_clip_frames(maps: torch.Tensor, t: int) -> torch.Tensor:
    """Maps (T', h, w) of a layer that strides in time (3-D convolutions, tubelets) ->
    (t, h, w), resampled linearly in time; unchanged when T' = t."""
    if len(maps) == t:
        return maps
    return F.interpolate(maps[None, None], size=(t, *maps.shape[1:]), mode="trilinear",
                         align_corners=False)[0, 0]


def pool_to_grid(attr: torch.Tensor, grid: tuple[int, int], positive: bool = False
                 ) -> torch.Tensor:
    """Pixel attributions (1, T, C, H, W) -> relevance (T, h, w) >= 0: |attr| (or, with
    `positive`, the positive part) summed over channels, average-pooled to the grid."""
    per_pixel = attr[0].sum(1).clamp(min=0) if positive else attr[0].abs().sum(1)
    return F.adaptive_avg_pool2d(per_pixel.unsqueeze(1), grid).squeeze(1)


@dataclass
class InputAttribution(Explainer):
    """Methods that attribute to pixels; maps pool them to the classifier's grid."""

    positive: ClassVar[bool] = False  # signed attributions: keep the positive evidence only

    def _attribute(self, clf: VideoClassifier, x: torch.Tensor, target: int | None
                   ) -> Attribution:
        attr = self._input_attribution(clf, x, target)
        return Attribution.from_maps(pool_to_grid(attr.float(), clf.grid, self.positive))

    def _input_attribution(self, clf: VideoClassifier, x: torch.Tensor, target: int | None
                           ) -> torch.Tensor:
        """(1, T, 3, H, W) attribution of every input value."""
        raise NotImplementedError
