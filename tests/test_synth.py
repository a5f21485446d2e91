"""The synthetic benchmark: per-class motion, exact boxes, determinism, the files."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stviz.datasets.synth import (
    CLASSES,
    SynthConfig,
    clip_label,
    clip_seed,
    generate,
    render_clip,
)
from stviz.errors import StvizError

CFG = SynthConfig(frames=16, size=64, fps=8)
SEEDS = range(6)


def _geometry(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box centres (T, 2) and sizes (T, 2)."""
    return (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]).astype(float)


@pytest.mark.parametrize("difficulty", ["easy", "standard", "hard"])
def test_segment_and_boxes_stay_in_range(difficulty: str) -> None:
    cfg = SynthConfig(frames=16, size=64, difficulty=difficulty)
    drift = 0.10 * 64 if difficulty == "hard" else 0  # the camera pan moves everything
    for seed in range(30):
        clip = render_clip(seed, seed % len(CLASSES), cfg)
        start, end = clip.segment
        assert clip.frames.shape == (16, 64, 64, 3) and clip.frames.dtype == np.uint8
        assert clip.boxes.shape == (16, 4)
        assert 1 <= start < end <= 16
        assert math.ceil(0.3 * 16) <= end - start <= math.floor(0.6 * 16)
        x1, y1, x2, y2 = clip.boxes.T
        assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= 64).all() and (y2 <= 64).all()
        assert (x2 > x1).all() and (y2 > y1).all()
        centre, _ = _geometry(clip.boxes)
        for rest in (slice(0, start), slice(end, None)):
            assert np.ptp(centre[rest], axis=0).max() <= 2 + drift, (seed, difficulty)


@pytest.mark.parametrize("label", range(len(CLASSES)))
def test_actor_moves_as_its_class_says_and_only_in_the_segment(label: int) -> None:
    name, size = CLASSES[label], CFG.size
    for seed in SEEDS:
        clip = render_clip(seed, label, CFG)
        start, end = clip.segment
        centre, wh = _geometry(clip.boxes)
        # Outside the window the actor rests: its box moves by jitter (±1 px) only.
        for rest in (slice(0, start), slice(end, None)):
            assert np.ptp(centre[rest], axis=0).max() <= 2, (name, seed)
            assert np.ptp(wh[rest], axis=0).max() == 0, (name, seed)
        move = centre[end:].mean(0) - centre[:start].mean(0)
        growth = wh[-1] / wh[0]
        if name in ("grow", "shrink"):
            factor = growth if name == "grow" else 1 / growth
            assert factor.min() >= 1.7 and factor.max() <= 2.3, (name, seed, factor)
            assert np.abs(move).max() <= 2.5, (name, seed, move)
            steps = np.diff(wh.sum(1))[start - 1:end - 1]
            assert ((steps >= 0) if name == "grow" else (steps <= 0)).all()
            continue
        assert (growth == 1).all()
        dx = ("right" in name) - ("left" in name)
        dy = ("down" in name) - ("up" in name)
        unit = np.array([dx, dy]) / math.hypot(dx, dy)
        along = move @ unit
        across = move @ np.array([-unit[1], unit[0]])
        assert 0.35 * size - 3 <= along <= 0.50 * size + 3, (name, seed, along)
        assert abs(across) <= 3, (name, seed, across)
        # Inside the window, every frame advances along the direction (beyond jitter).
        assert (np.diff(centre @ unit)[start - 1:end - 1] > -2).all()


def test_actor_area_at_the_start() -> None:
    size = 128
    cfg = SynthConfig(frames=16, size=size)
    ranges = {"grow": ((0.06, 0.09), (0.19, 0.36)), "shrink": ((0.19, 0.36), (0.06, 0.09))}
    for label, name in enumerate(CLASSES):
        (lo, hi), (end_lo, end_hi) = ranges.get(name, ((0.08, 0.20), (0.08, 0.20)))
        for seed in SEEDS:
            boxes = render_clip(seed, label, cfg).boxes
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / size**2
            # 2% slack: box sides are rounded to whole pixels.
            assert lo * 0.98 <= area[0] <= hi * 1.02, (name, seed, area[0])
            assert end_lo * 0.98 <= area[-1] <= end_hi * 1.02, (name, seed, area[-1])


@pytest.mark.parametrize("difficulty", ["standard", "hard"])
def test_actor_is_where_its_box_says(difficulty: str) -> None:
    """The same seed with another label changes the actor's motion and nothing else,
    so the pixels that differ are the two actors: inside their boxes, filling them."""
    cfg = SynthConfig(frames=16, size=64, difficulty=difficulty)
    disjoint = 0
    for seed in SEEDS:
        a, b = render_clip(seed, 0, cfg), render_clip(seed, 1, cfg)  # move_left, move_right
        assert a.segment == b.segment
        for t in range(cfg.frames):
            diff = (a.frames[t] != b.frames[t]).any(-1)
            inside = np.zeros_like(diff)
            for x1, y1, x2, y2 in (a.boxes[t], b.boxes[t]):
                inside[y1:y2, x1:x2] = True
            assert not (diff & ~inside).any(), (seed, t)
            ax1, ay1, ax2, ay2 = a.boxes[t]
            bx1, by1, bx2, by2 = b.boxes[t]
            if difficulty == "standard" and (ax2 <= bx1 or bx2 <= ax1 or ay2 <= by1 or by2 <= ay1):
                disjoint += 1
                for x1, y1, x2, y2 in (a.boxes[t], b.boxes[t]):
                    ys, xs = np.nonzero(diff[y1:y2, x1:x2])
                    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (
                        0, 0, x2 - x1, y2 - y1), (seed, t)
    assert difficulty == "hard" or disjoint > 0


def test_render_is_deterministic_and_seeds_differ() -> None:
    a, b, c = render_clip(3, 5, CFG), render_clip(3, 5, CFG), render_clip(4, 5, CFG)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.frames, c.frames)
    seq = np.random.SeedSequence(7)
    assert np.array_equal(render_clip(seq, 2, CFG).frames,
                          render_clip(np.random.default_rng(np.random.SeedSequence(7)), 2,
                                      CFG).frames)


def test_labels_are_balanced_and_prefix_stable() -> None:
    for n in (7, 25, 40):
        counts = Counter(clip_label(0, "train", i) for i in range(n))
        assert len(counts) == min(n, len(CLASSES))
        assert max(counts.values()) - min(counts.values()) <= 1
    first = [clip_label(0, "test", i) for i in range(30)]
    assert first != [clip_label(1, "test", i) for i in range(30)]
    assert first != [clip_label(0, "train", i) for i in range(30)]


def test_bad_config_is_a_user_error() -> None:
    with pytest.raises(StvizError, match="difficulty"):
        SynthConfig(difficulty="brutal")
    with pytest.raises(StvizError, match="frames"):
        SynthConfig(frames=4)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_writes_a_deterministic_balanced_dataset(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    ann = generate(tmp_path / "a", 12, 5, seed=0, cfg=CFG, workers=1,
                   progress=lambda done, total: seen.append((done, total)))
    assert ann == tmp_path / "a" / "annotations.json"
    assert seen[-1] == (17, 17) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    generate(tmp_path / "b", 12, 5, seed=0, cfg=CFG, workers=2)
    generate(tmp_path / "c", 12, 5, seed=1, cfg=CFG, workers=1)
    a, b, c = (_files(tmp_path / d) for d in "abc")
    assert a == b  # same seed, any worker count: identical bytes, videos included
    assert a["annotations.json"] != c["annotations.json"]
    assert a["videos/test_00000.mp4"] != c["videos/test_00000.mp4"]

    data = json.loads(a["annotations.json"])
    assert {k: data[k] for k in ("format", "version", "seed", "difficulty", "frames", "size",
                                 "fps")} == {"format": "stviz-synth", "version": 1, "seed": 0,
                                             "difficulty": "standard", "frames": 16,
                                             "size": 64, "fps": 8}
    assert data["classes"] == list(CLASSES)
    videos = data["videos"]
    assert [v["id"] for v in videos] == [f"train_{i:05d}" for i in range(12)] + [
        f"test_{i:05d}" for i in range(5)]
    for v in videos:
        assert set(v) == {"id", "path", "split", "label", "class", "frames", "fps", "width",
                          "height", "segment", "boxes"}
        assert v["path"] == f"videos/{v['id']}.mp4" and v["id"].startswith(v["split"])
        assert v["class"] == CLASSES[v["label"]]
        assert len(v["boxes"]) == 16 and all(len(box) == 4 for box in v["boxes"])
        clip = render_clip(clip_seed(0, v["split"], int(v["id"][-5:])), v["label"], CFG)
        assert v["boxes"] == clip.boxes.tolist() and v["segment"] == list(clip.segment)
    train = Counter(v["label"] for v in videos if v["split"] == "train")
    assert len(train) == len(CLASSES) and max(train.values()) - min(train.values()) <= 1


def test_generated_video_holds_the_rendered_frames(tmp_path: Path) -> None:
    from stviz.video import probe, read_frames

    generate(tmp_path, 1, 0, seed=3, cfg=CFG, workers=1)
    path = tmp_path / "videos" / "train_00000.mp4"
    info = probe(path)
    assert (info.frames, info.width, info.height) == (16, 64, 64)
    clip = render_clip(clip_seed(3, "train", 0), clip_label(3, "train", 0), CFG)
    decoded = np.asarray(read_frames(path, list(range(16))), np.float32)
    assert np.abs(decoded - clip.frames).mean() < 12  # lossy H.264, but the same pictures


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    generate(tmp_path, 2, 1, seed=0, cfg=CFG, workers=1)
    before = (tmp_path / "annotations.json").read_bytes()
    with pytest.raises(StvizError, match="--overwrite"):
        generate(tmp_path, 2, 1, seed=5, cfg=CFG, workers=1)
    assert (tmp_path / "annotations.json").read_bytes() == before
    generate(tmp_path, 2, 1, seed=5, cfg=CFG, workers=1, overwrite=True)
    assert json.loads((tmp_path / "annotations.json").read_text())["seed"] == 5
    with pytest.raises(StvizError, match="at least one clip"):
        generate(tmp_path / "empty", 0, 0, seed=0, cfg=CFG)
