"""The confusion-matrix picture written by `stviz evaluate`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stviz.render.figures import new_figure, save_figure


def render_confusion(confusion: np.ndarray, classes: list[str], out: Path,
                     title: str = "", overwrite: bool = True) -> Path:
    """Row-normalized confusion matrix (colour) with the counts written in the cells."""
    k = len(classes)
    share = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    side = int(max(480, 48 * k + 220))
    fig = new_figure(side + 140, side)
    ax = fig.add_axes((0.2, 0.2, 0.58, 0.72))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, j in zip(*np.nonzero(confusion)):
        ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7,
                color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(im, cax=fig.add_axes((0.81, 0.2, 0.03, 0.72)), label="share of the true class")
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, out, overwrite)
