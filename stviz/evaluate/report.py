"""The files of a `localize-eval` run, from its metrics.json content.

metrics.csv (one row per method), metrics.md (metrics x methods, best in bold),
metrics.png (grouped bars) and faithfulness.png (mean deletion/insertion curves, when
measured), then metrics.json last: its presence marks a finished run.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stviz.evaluate.scoring import LOWER_IS_BETTER, METRICS, best_methods
from stviz.files import write_json, write_text


def metric_table(report: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(methods, metrics) of a report, metrics in `METRICS` order."""
    methods = list(report["methods"])
    present = {k for row in report["methods"].values() for k in row}
    return methods, [m for m in METRICS if m in present]


def metric_label(metric: str) -> str:
    """The metric's name with the direction that is better (higher unless marked)."""
    return f"{metric} {'↓' if metric in LOWER_IS_BETTER else '↑'}"


def metric_cells(report: dict[str, Any]
                 ) -> tuple[list[str], list[tuple[str, list[tuple[float | None, bool]]]]]:
    """(methods, one row per metric: its label, then each method's (value, is the best));
    what every table of the metrics shows (terminal, Markdown, HTML)."""
    methods, metrics = metric_table(report)
    best = best_methods(report["methods"])
    return methods, [(metric_label(k), [(report["methods"][m].get(k), m in best.get(k, ()))
                                        for m in methods]) for k in metrics]


def table_rows(report: dict[str, Any], bold: Callable[[str], str]
               ) -> tuple[list[str], list[list[str]]]:
    """(methods, one row per metric: its label, then each method's value to 3 digits with
    `bold` applied to the best); what both the Markdown file and the terminal table show."""
    methods, rows = metric_cells(report)
    texts = []
    for label, cells in rows:
        values = ["-" if v is None else f"{v:.3f}" for v, _ in cells]
        texts.append([label, *(bold(t) if best else t for t, (_, best) in zip(values, cells))])
    return methods, texts


def to_csv(report: dict[str, Any]) -> str:
    methods, metrics = metric_table(report)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["method", *metrics])
    for m in methods:
        writer.writerow([m, *("" if (v := report["methods"][m].get(k)) is None else f"{v:.6f}"
                              for k in metrics)])
    return buf.getvalue()


def to_markdown(report: dict[str, Any]) -> str:
    methods, rows = table_rows(report, lambda text: f"**{text}**")
    lines = [f"# Localization of {report['model']} on {report['dataset']}", "",
             f"Split `{report['split']}`: {report['n_videos']} videos, {report['n_frames']} "
             f"annotated sampled frames (T={report['frames']}). Class-balanced means; "
             "↑ higher is better, ↓ lower is better; best in bold.", "",
             "| metric | " + " | ".join(methods) + " |",
             "|---|" + "---:|" * len(methods)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    for key, what in (("missing_videos", "not found"), ("skipped_videos", "unreadable")):
        if report.get(key):
            lines += ["", f"{len(report[key])} videos {what}: " + ", ".join(report[key])]
    return "\n".join(lines) + "\n"


def write_reports(report: dict[str, Any], out: str | Path, overwrite: bool = False
                  ) -> list[Path]:
    """Every report file in `out`; metrics.json is written last and only replaced with
    `overwrite` (the others are replaced freely: without metrics.json they are the
    leftovers of an interrupted run)."""
    from stviz.render.metrics import render_faithfulness, render_metric_bars

    out = Path(out)
    written = [write_text(out / "metrics.csv", to_csv(report)),
               write_text(out / "metrics.md", to_markdown(report)),
               render_metric_bars(report, out / "metrics.png")]
    if any(report["curves"].values()):
        written.append(render_faithfulness(report, out / "faithfulness.png"))
    else:  # a run without faithfulness leaves no figure of an earlier one behind
        (out / "faithfulness.png").unlink(missing_ok=True)
    written.append(write_json(out / "metrics.json", report, overwrite))
    return written
