"""Explanations: one result type, one classifier view, methods behind one interface.

    clf = load_classifier("actions10-lite0")    # or from_module(...), load_classifier(f, arch)
    expl = explain_video(clf, "clip.mp4", method="gradcam")
    expls = compare_methods(clf, "clip.mp4", ["gradcam", "ig"])
    table = agreement_table(expls)

Exports load on first use, so renderers that only need `Explanation` do not import
torch, and a method's module (Captum for the baselines) loads when the method is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stviz.explain.agreement import agreement_table, spearman, top_region_iou
    from stviz.explain.base import METHODS, Attribution, Explainer, get_method, register
    from stviz.explain.classifier import (
        VideoClassifier,
        as_classifier,
        from_module,
        from_stviz,
        load_classifier,
        read_classes,
    )
    from stviz.explain.explanation import Explanation
    from stviz.explain.pipeline import compare_methods, explain_video, resolve_target, sample_clip

_EXPORTS = {
    "agreement": ("agreement_table", "spearman", "top_region_iou"),
    "base": ("METHODS", "Attribution", "Explainer", "get_method", "register"),
    "classifier": ("VideoClassifier", "as_classifier", "from_module", "from_stviz",
                   "load_classifier", "read_classes"),
    "explanation": ("Explanation",),
    "pipeline": ("compare_methods", "explain_video", "resolve_target", "sample_clip"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [
    "METHODS",
    "Attribution",
    "Explainer",
    "Explanation",
    "VideoClassifier",
    "agreement_table",
    "as_classifier",
    "compare_methods",
    "explain_video",
    "from_module",
    "from_stviz",
    "get_method",
    "load_classifier",
    "read_classes",
    "register",
    "resolve_target",
    "sample_clip",
    "spearman",
    "top_region_iou",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_WHERE[name]}")
    if name == "METHODS":  # the full registry: import every built-in method
        module.load_methods()
    value = getattr(module, name)
    globals()[name] = value
    return value
