"""The model card's ablation: what each piece beyond the paper buys, on one test set.

Each row is a `stviz train` run on the same training set and cached features, then
`stviz evaluate` (accuracy) and `stviz localize-eval --methods attention,gradcam`
(the model's own attention and Grad-CAM on the same model, with faithfulness) on the
same test clips. Every command is printed before it runs; finished steps are reused,
so an interrupted ablation resumes. The table goes to stdout and OUT/ablation.md.

    .venv/bin/python benchmarks/attention_ablation.py \\
        --train .stviz-data/actions10-train --test .stviz-data/actions10-test \\
        --out .stviz-data/ablation --epochs 20 --limit 40 [--rows paper,all]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

# The first default model's recipe: mask pooling, attention on the state's change, an area prior.
V1 = ["--spatial-pooling", "mask", "--temporal-input", "delta", "--lambda-area", "0.3",
      "--area-target", "0.15"]
# The second default model's recipe: attention on the input's change, sharpened, with a
# uniform floor and a strong entropy penalty.
V2 = ["--spatial-pooling", "mask", "--temporal-input", "rectified",
      "--attention-source", "input-change", "--attention-temperature", "0.25",
      "--attention-floor", "0.2", "--classifier-hidden", "128", "--lambda-area", "1.0",
      "--area-target", "0.15", "--lambda-contrast", "0.003", "--lambda-entropy", "0.6"]
# What `make model` adds to the paper's network now (Makefile, LOCALIZING): v2 with a
# tempered floor (the order of every frame kept) and half the entropy penalty.
ALL = [*V2[:-1], "0.3", "--attention-floor-temperature", "1.0"]
ROWS: dict[str, list[str]] = {
    "paper": [],
    "mask-pooling": ["--spatial-pooling", "mask"],
    "delta": ["--temporal-input", "delta"],
    "area": ["--lambda-area", "0.3", "--area-target", "0.15"],
    "v1": V1,
    "v1-rectified": [*V1, "--temporal-input", "rectified"],
    "v1-window": [*V1, "--attention-window", "3"],
    "v1-coords": [*V1, "--coords"],
    "v2": V2,
    "all": ALL,
    "all-uniform-floor": [*V2[:-1], "0.3"],
    "all-recurrent-attention": [*ALL, "--attention-source", "recurrent"],
    "all-linear-classifier": [*ALL, "--classifier-hidden", "0"],
}
COLUMNS = [("accuracy", None), ("pointing_game", "↑"), ("max_box_acc_v2", "↑"),
           ("mass_in_segment", "↑"), ("temporal_ap", "↑"), ("deletion_auc", "↓")]


def run(cmd: list[str]) -> None:
    print("$ " + shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _epochs_done(run_dir: Path) -> int:
    """Epochs a finished or interrupted run recorded (0 when there is none)."""
    metrics = run_dir / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.is_file() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--out", default=".stviz-data/ablation")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--limit", type=int, default=40, help="test clips for localize-eval")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--cache-dir", default=".stviz-data/features")
    args = parser.parse_args()
    stviz = str(Path(sys.executable).with_name("stviz"))
    out = Path(args.out)
    table = []
    for name in args.rows.split(","):
        run_dir = out / name
        if _epochs_done(run_dir) < args.epochs:  # early stopping is off: all epochs or none
            run([stviz, "train", args.train, "--out", str(run_dir), "--overwrite", "--quiet",
                 "--lr", "1e-3", "--epochs", str(args.epochs), "--patience", str(args.epochs),
                 "--seed", "0", "--cache-dir", args.cache_dir, *ROWS[name]])
        evaluation = run_dir / "evaluation" / "evaluation.json"
        if not evaluation.is_file():
            run([stviz, "evaluate", args.test, "--model", str(run_dir), "--quiet", "--out",
                 str(evaluation.parent), "--overwrite", "--cache-dir", args.cache_dir])
        localized = run_dir / "localize" / "metrics.json"
        if not localized.is_file():
            run([stviz, "localize-eval", args.test, "--model", str(run_dir), "--quiet",
                 "--methods", "attention,gradcam", "--limit", str(args.limit),
                 "--out", str(localized.parent), "--overwrite"])
        accuracy = json.loads(evaluation.read_text())["accuracy"]
        methods = json.loads(localized.read_text())["methods"]
        for method in ("attention", "gradcam"):
            label = name if method == "attention" else f"{name}: Grad-CAM"
            table.append([label, f"{accuracy:.3f}" if method == "attention" else ""] +
                         [f"{methods[method][m]:.3f}" for m, _ in COLUMNS[1:]])
    head = ["model", *(f"{m} {arrow or ''}".strip() for m, arrow in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table]
    text = "\n".join(lines) + "\n"
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.md").write_text(text)


if __name__ == "__main__":
    main()
