"""Where a model's own attention goes on a synth test set: the model card's figures.

Prints the mask's mean and share above 0.5, its mean 7x7 pattern, the cells that hold
its argmax most often, the mean temporal weights, and where the weight peak falls
relative to the action window.

    .venv/bin/python benchmarks/attention_stats.py models/actions10-lite0 \
        [--data .stviz-data/actions10-test] [--cache-dir .stviz-data/features]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from stviz.core.model import load_model
from stviz.datasets.annotations import load_annotations
from stviz.datasets.feature_cache import FeatureCache
from stviz.datasets.readers import open_dataset
from stviz.video import uniform_indices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", default=".stviz-data/actions10-test")
    parser.add_argument("--split", default="test")
    parser.add_argument("--cache-dir", default=".stviz-data/features")
    args = parser.parse_args()

    model = load_model(args.model, device="cpu")
    items = open_dataset(args.data).split(args.split)
    truth = load_annotations(args.data).videos
    cache = FeatureCache(args.cache_dir, model.backbone, model.spec.input_size,
                         model.spec.frames, model.device)
    feats = cache.compute([it.path for it in items])
    model.net.eval()
    masks, weights = [], []
    with torch.inference_mode():
        for s in range(0, len(feats), 20):
            x = torch.from_numpy(np.stack(feats[s:s + 20])).float()
            out = model.net.forward_features(x, model.spec.frames)
            masks.append(out.masks.numpy())
            weights.append(out.weights.numpy())
    masks, weights = np.concatenate(masks), np.concatenate(weights)  # (V, T, h, w), (V, T)

    print(f"{len(items)} videos of {args.data}, model {args.model}")
    print(f"mask mean {masks.mean():.2f}, share of cells > 0.5: {(masks > 0.5).mean():.2f}")
    print("mean mask over videos and frames:")
    print(np.array2string(masks.mean((0, 1)), precision=2))
    w = masks.shape[3]
    argmax = masks.reshape(*masks.shape[:2], -1).argmax(-1).ravel()
    cells, counts = np.unique(argmax, return_counts=True)
    top = sorted(zip(counts / argmax.size, cells), reverse=True)[:5]
    print("mask argmax cells (row, col): " +
          ", ".join(f"({c // w}, {c % w}) {share:.2f}" for share, c in top))
    mean_beta = np.array2string(weights.mean(0), precision=3, suppress_small=True)
    print("mean temporal weights:", mean_beta)

    past, late, inside_peak, in_box, box_mass, before, during, after = ([] for _ in range(8))
    for item, beta, mask in zip(items, weights, masks):
        gt = truth[item.id]
        start, end = gt.segments[0]
        sampled = uniform_indices(gt.frames, model.spec.frames)
        peak = sampled[int(beta.argmax())]
        past.append((peak - end) / (end - start))
        late.append(peak >= end - 0.1 * (end - start))
        inside_peak.append(start <= peak < end)
        before.extend(beta[sampled < start])
        during.extend(beta[(sampled >= start) & (sampled < end)])
        after.extend(beta[sampled >= end])
        # Where the mask goes, by cell: is the argmax cell's centre in the actor's box,
        # and what share of the mask lies on cells whose centre is?
        h, w = mask.shape[1:]
        cy = (np.arange(h) + 0.5) * gt.height / h
        cx = (np.arange(w) + 0.5) * gt.width / w
        for m, box in zip(mask, gt.boxes_at(sampled)):
            x1, y1, x2, y2 = box[0]
            cells = ((cy >= y1) & (cy < y2))[:, None] & ((cx >= x1) & (cx < x2))[None]
            in_box.append(cells.ravel()[m.argmax()])
            box_mass.append(m[cells].sum() / max(m.sum(), 1e-9))
    print(f"weight peak: median {np.median(past):+.2f} window lengths after the window's end; "
          f"in its last tenth or later: {np.mean(late):.2f}; inside the window: "
          f"{np.mean(inside_peak):.2f}")
    print(f"mean weight of a sampled frame before / inside / after the window: "
          f"{np.mean(before):.3f} / {np.mean(during):.3f} / {np.mean(after):.3f}")
    print(f"mask argmax cell inside the actor's box: {np.mean(in_box):.2f} of sampled frames; "
          f"mask mass on cells inside the box: {np.mean(box_mass):.2f}")


if __name__ == "__main__":
    main()
