"""The Python API the CLI is a thin layer over: import these in your own code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stviz.core.checkpoint import find_checkpoints, read_spec
from stviz.core.model import AttentionModel, load_model
from stviz.errors import StvizError, warn

__all__ = ["AttentionModel", "list_models", "load_model", "video_report"]


def video_report(path: str | Path, t: int = 16) -> dict[str, Any]:
    """Metadata of a video plus the frame indices a T-frame clip samples."""
    from stviz.video import probe, uniform_indices

    meta = probe(path)
    if meta.frames < t:
        warn(f"{path}: {meta.frames} frames < T={t}; the clip repeats its nearest frames")
    report = meta.to_dict()
    report["path"] = str(path)
    report["sampled_frames"] = [int(i) for i in uniform_indices(meta.frames, t)]
    return report


def list_models() -> list[dict[str, Any]]:
    """Every checkpoint on the search path, with its classes and recorded metrics."""
    rows = []
    for ckpt in find_checkpoints():
        try:
            spec = read_spec(ckpt)
        except StvizError as exc:
            warn(str(exc))
            continue
        rows.append({"name": ckpt.name, "path": str(ckpt), "backbone": spec.backbone,
                     "frames": spec.frames, "input_size": spec.input_size,
                     "classes": spec.classes, "metrics": spec.metrics})
    return rows
