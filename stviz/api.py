"""The Python API the CLI is a thin layer over: import these in your own code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stviz.core.checkpoint import find_checkpoints, read_spec
from stviz.core.model import AttentionModel, load_model
from stviz.errors import StvizError, warn

__all__ = ["AttentionModel", "evaluate", "list_models", "load_model", "video_report"]


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


def evaluate(dataset: str | Path, model: str | Path | None = None, split: str = "test",
             out: str | Path | None = None, device: str = "auto",
             cache_dir: str | Path | None = ".stviz-data/features",
             overwrite: bool = False, progress: Any = None) -> tuple[Any, list[Path]]:
    """Accuracy, per-class accuracy and confusion of `model` (default: the bundled one)
    on a data set split; with `out`, write `evaluation.json` and `confusion.png` there."""
    from stviz.evaluate.model_eval import evaluate_model
    from stviz.files import check_writable, write_json
    from stviz.render.confusion import render_confusion

    written: list[Path] = []
    if out is not None:
        targets = [Path(out) / "evaluation.json", Path(out) / "confusion.png"]
        for target in targets:  # refuse before the work, not after
            check_writable(target, overwrite)
    result = evaluate_model(load_model(model, device), dataset, split, cache_dir, progress)
    if out is not None:
        written.append(write_json(targets[0], result.to_dict(), overwrite))
        written.append(render_confusion(result.confusion, result.classes, targets[1],
                                        title=f"{result.model} on {dataset} ({split}): "
                                              f"accuracy {result.accuracy:.3f}",
                                        overwrite=overwrite))
    return result, written
