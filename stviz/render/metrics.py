"""The figures of `stviz localize-eval`, drawn from its metrics.json content:
metrics per method as grouped bars, and the mean faithfulness curves per method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from stviz.evaluate.report import metric_label, metric_table
from stviz.evaluate.scoring import CURVES
from stviz.render.figures import new_figure, save_figure

_CURVE_TITLES = {
    "deletion": "deletion (pixels, most relevant first; lower AUC is better)",
    "insertion": "insertion (pixels; higher AUC is better)",
    "temporal_deletion": "temporal deletion (frames; lower AUC is better)",
    "temporal_insertion": "temporal insertion (frames; higher AUC is better)",
}


def _colors(n: int) -> list[tuple[float, ...]]:
    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def render_metric_bars(report: dict[str, Any], out: str | Path, overwrite: bool = True
                       ) -> Path:
    """One group of bars per metric (all lie in [0, 1]), one bar per method; a metric
    undefined on the data (null) has no bar."""
    methods, metrics = metric_table(report)
    fig = new_figure(1280, 560)
    ax = fig.add_axes((0.07, 0.3, 0.78, 0.62))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(metrics))
    for i, (m, color) in enumerate(zip(methods, _colors(len(methods)))):
        values = [report["methods"][m].get(k) for k in metrics]
        heights = [np.nan if v is None else v for v in values]
        ax.bar(x - 0.4 + width * (i + 0.5), heights, width, label=m, color=color)
    ax.set_xticks(x, [metric_label(k) for k in metrics], rotation=40, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("class-balanced mean")
    ax.grid(axis="y", alpha=0.3, lw=0.5)
    ax.set_title(f"{report['model']} on {report['dataset']} ({report['split']}, "
                 f"{report['n_videos']} videos)", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return save_figure(fig, out, overwrite)


def render_faithfulness(report: dict[str, Any], out: str | Path, overwrite: bool = True
                        ) -> Path:
    """Four panels (spatial and temporal deletion and insertion): the mean curve of each
    method over the videos, its AUC in the legend."""
    methods = list(report["methods"])
    fig = new_figure(1280, 900)
    for n, name in enumerate(CURVES):
        ax = fig.add_subplot(2, 2, n + 1)
        top = 0.0
        for m, color in zip(methods, _colors(len(methods))):
            curve = report["curves"].get(m, {}).get(name)
            if curve is None:
                continue
            top = max(top, *(y for y in curve["y"] if y is not None))
            value = report["methods"][m].get(f"{name}_auc")
            ax.plot(curve["x"], curve["y"], "-o", ms=2.5, lw=1.4, color=color,
                    label=m if value is None else f"{m} (AUC {value:.3f})")
        ax.set_title(_CURVE_TITLES[name], fontsize=9)
        ax.set_xlabel("share removed" if "deletion" in name else "share revealed", fontsize=8)
        ax.set_ylabel("probability of the class", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, min(1.0, 1.1 * top) if top > 0 else 1.0)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.93, bottom=0.07, hspace=0.35, wspace=0.2)
    fig.suptitle(f"Faithfulness of {report['model']} on {report['dataset']} (mean over "
                 f"{report['n_videos']} videos)", fontsize=10)
    return save_figure(fig, out, overwrite)
