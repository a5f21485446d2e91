"""Frozen-backbone features, computed once and kept on disk in fp16.

An entry's key hashes everything that changes the features: the video's bytes,
the backbone (with its layer, for the I3D) and its weights, the input size and
normalization, and the sampled frame indices. So an edited video, another backbone
or another T gets a new entry, and nothing stale is ever read. An entry holds one
clip's (T', C, h, w) features: T' = T for a per-frame backbone, fewer for a clip
backbone (`Backbone.temporal_stride`), whose features depend on the whole clip.
Entries are written atomically: an interrupted run leaves only complete files
behind, and the next run computes the rest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from stviz.core.backbones import Backbone, encode
from stviz.core.model import preprocess_frames
from stviz.files import atomic_path

DEFAULT_CACHE = Path(".stviz-data") / "features"
_HASH_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """Content hash of a file: a renamed video keeps its entry, an edited one does not."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class FeatureCache:
    """Backbone features of T uniformly sampled frames per video, under `root`.

    Clips are encoded `batch_frames` frames at a time (whole clips, one at least)."""

    def __init__(self, root: str | Path, backbone: Backbone, input_size: int, frames: int,
                 device: torch.device | str = "cpu", batch_frames: int = 64) -> None:
        self.backbone = backbone
        self.input_size = input_size
        self.frames = frames
        self.device = torch.device(device)
        self.batch_frames = batch_frames
        setting = json.dumps({"backbone": backbone.name, "weights": backbone.weights,
                              "size": input_size, "mean": backbone.mean, "std": backbone.std},
                             sort_keys=True)
        self.setting = hashlib.blake2b(setting.encode(), digest_size=8).hexdigest()
        self.root = Path(root) / f"{backbone.name.replace(':', '_')}-{self.setting}"

    def key(self, video: Path, indices: Sequence[int]) -> str:
        sampling = ",".join(map(str, indices))
        return hashlib.blake2b(f"{file_digest(video)}|{sampling}".encode(),
                               digest_size=16).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def load(self, video: Path) -> np.ndarray | None:
        """Cached (T', C, h, w) fp16 features of `video`, or None when absent."""
        from stviz.video import probe, uniform_indices

        indices = uniform_indices(probe(video).frames, self.frames)
        p = self.path(self.key(video, indices))
        return np.load(p) if p.is_file() else None

    @torch.inference_mode()
    def compute(self, videos: Sequence[Path],
                progress: Callable[[int, int], None] | None = None,
                on_error: Callable[[Path, str], None] | None = None) -> list[np.ndarray | None]:
        """Features for every video, from the cache or computed in frame batches.

        A video that cannot be read gives None (reported through `on_error`).
        """
        from stviz.errors import StvizError
        from stviz.video import probe, read_frames, uniform_indices

        results: list[np.ndarray | None] = [None] * len(videos)
        pending: list[tuple[int, Path, torch.Tensor]] = []  # (position, cache path, input)
        module = self.backbone.module.to(self.device).eval()
        stride = self.backbone.temporal_stride
        clips_per_batch = max(1, self.batch_frames // self.frames)

        def flush() -> None:
            x = torch.stack([f for _, _, f in pending])  # (P, T, 3, S, S)
            feats = torch.cat([encode(module, x[i:i + clips_per_batch].to(self.device), stride)
                               .float().cpu() for i in range(0, len(x), clips_per_batch)])
            feats = feats.half().numpy()
            for (pos, cpath, _), f in zip(pending, feats):
                cpath.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(cpath) as tmp:
                    np.save(tmp, f)
                results[pos] = f
            pending.clear()

        for pos, video in enumerate(videos):
            try:
                info = probe(video)
                indices = uniform_indices(info.frames, self.frames)
                cpath = self.path(self.key(video, indices))
                if cpath.is_file():
                    results[pos] = np.load(cpath)
                else:
                    frames = read_frames(video, indices, info=info)
                    pending.append((pos, cpath, preprocess_frames(
                        frames, self.input_size, self.backbone.mean, self.backbone.std)))
            except StvizError as exc:
                if on_error is not None:
                    on_error(video, str(exc))
            if sum(len(f) for _, _, f in pending) >= self.batch_frames:
                flush()
            if progress is not None:
                progress(pos + 1, len(videos))
        if pending:
            flush()
        return results
