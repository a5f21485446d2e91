"""Video transformers: Hugging Face VideoMAE, TimeSformer and ViViT folders, torchvision
mvit_v2_s and swin3d_t state dicts; token-grid Grad-CAM and attention rollout against
references computed by hand; the CLI end to end; the user errors."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from run_cli import run
from tiny_models import (
    HF_FRAMES,
    HF_SIZE,
    MVIT_FRAMES,
    MVIT_SIZE,
    tiny_hf,
    tiny_mvit,
    tiny_swin3d,
    torchvision_classifier,
)

from stviz.errors import StvizError
from stviz.explain import get_method, load_classifier
from stviz.explain.classifier import TokenGrid
from stviz.video import write_video

KINDS = ("videomae", "timesformer", "vivit")
# (T', h, w, special tokens, token order) of the tiny models
GRIDS = {"videomae": (2, 4, 4, 0, "thw"), "timesformer": (4, 4, 4, 1, "hwt"),
         "vivit": (2, 4, 4, 1, "thw")}
N_VIDEO = 20


@pytest.fixture(scope="module")
def hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hf")
    for kind in KINDS:
        tiny_hf(kind, root / kind)
    return root


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = []
    for i in range(N_VIDEO):
        f = np.full((48, 64, 3), 40, np.uint8)
        f[8:24, 2 * i:2 * i + 16] = (220, 60, 30)
        frames.append(f)
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", frames, 10.0)


def clip(seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(1, HF_FRAMES, 3, HF_SIZE, HF_SIZE)


def to_frames(maps: np.ndarray, t: int) -> np.ndarray:
    """(T', h, w) -> (t, h, w), linear in time at the centres of the t frames."""
    src = len(maps)
    pos = np.clip((np.arange(t) + 0.5) * src / t - 0.5, 0, src - 1)
    lo = np.minimum(np.floor(pos).astype(int), src - 1)
    hi = np.minimum(lo + 1, src - 1)
    w = (pos - lo)[:, None, None]
    return (1 - w) * maps[lo] + w * maps[hi]


def patch_grid(tokens: np.ndarray, kind: str) -> np.ndarray:
    """The patch tokens of the last block's layernorm_before output, as (T', h, w, C)."""
    t, h, w, prefix, order = GRIDS[kind]
    if kind == "timesformer":  # divided attention: one row per frame, a CLS copy first
        return tokens[:, 1:].reshape(t, h, w, -1)
    patches = tokens[0, prefix:]
    if order == "hwt":
        return patches.reshape(h, w, t, -1).transpose(2, 0, 1, 3)
    return patches.reshape(t, h, w, -1)


# ------------------------------------------------------------------------ loading


@pytest.mark.parametrize("kind", KINDS)
def test_a_folder_loads_with_its_own_sizes_classes_and_layer(hf, kind):
    clf = load_classifier(hf / kind, device="cpu")
    t, h, w, prefix, order = GRIDS[kind]
    assert clf.classes == ["run", "jump", "walk"] and clf.layout == "NTCHW"
    assert (clf.frames, clf.size) == (HF_FRAMES, HF_SIZE)
    info = clf.layer_info()
    assert info.name.endswith("1.layernorm_before")  # the last of the two blocks
    assert (info.frames, info.grid) == (t, (h, w))
    assert (clf.tokens.prefix, clf.tokens.order) == (prefix, order)
    x = clip()
    with torch.no_grad():
        expected = clf.module(x).logits
    torch.testing.assert_close(clf.predict(x), expected)


def test_normalization_comes_from_the_preprocessor_config(tmp_path):
    tiny_hf("videomae", tmp_path / "m")
    (tmp_path / "m" / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.25, 0.5],
         "rescale_factor": 1 / 255}))
    clf = load_classifier(tmp_path / "m", device="cpu")
    assert clf.mean == pytest.approx((0.4, 0.5, 0.6)) and clf.std == pytest.approx(
        (0.2, 0.25, 0.5))
    tiny_hf("vivit", tmp_path / "v")  # ViViT's default: x / 127.5 - 1, then (x - 0.5) / 0.5
    vivit = load_classifier(tmp_path / "v", device="cpu")
    assert vivit.mean == pytest.approx((0.75,) * 3) and vivit.std == pytest.approx((0.25,) * 3)


def test_token_grid_reads_the_three_token_layouts():
    t, h, w, c = 3, 2, 4, 5
    grid = torch.randn(1, c, t, h, w)  # what every layout must come back as
    cls = torch.randn(1, 1, c)
    time_major = TokenGrid(t, (h, w), prefix=1, order="thw")
    seq = torch.cat([cls, grid.permute(0, 2, 3, 4, 1).reshape(1, t * h * w, c)], 1)
    assert torch.equal(time_major.to_map(seq, 1), grid)
    time_minor = TokenGrid(t, (h, w), prefix=1, order="hwt")
    seq = torch.cat([cls, grid.permute(0, 3, 4, 2, 1).reshape(1, h * w * t, c)], 1)
    assert torch.equal(time_minor.to_map(seq, 1), grid)
    per_frame = torch.cat([cls.expand(t, 1, c),  # TimeSformer's spatial step: CLS per frame
                           grid[0].permute(1, 2, 3, 0).reshape(t, h * w, c)], 1)
    assert torch.equal(time_minor.to_map(per_frame, 1), grid)
    per_patch = grid[0].permute(2, 3, 1, 0).reshape(h * w, t, c)  # its temporal step
    assert torch.equal(time_minor.to_map(per_patch, 1), grid)
    pooled = TokenGrid(t, (8, 8), prefix=1).layout(1 + t * 2 * 2)  # MViT's deeper stages
    assert (pooled.frames, pooled.grid) == (t, (2, 2))
    assert time_major.to_map(torch.randn(1, 7, c), 1) is None


# ------------------------------------------------------------- token-grid Grad-CAM


@pytest.mark.parametrize("kind", KINDS)
def test_token_gradcam_matches_a_hand_computed_reference(hf, kind):
    clf = load_classifier(hf / kind, device="cpu")
    x, target = clip(1), 2
    layer = clf.layer_info().module
    kept = []
    handle = layer.register_forward_hook(lambda _m, _i, out: kept.append(out))
    try:
        score = clf.module(x.clone()).logits[0, target]
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(score, kept[0])
    acts = patch_grid(kept[0].detach().numpy().astype(np.float64), kind)
    grads = patch_grid(grad.numpy().astype(np.float64), kind)
    weights = grads.mean(axis=(1, 2), keepdims=True)  # per time slice, per channel
    reference = to_frames(np.maximum((weights * acts).sum(-1), 0), HF_FRAMES)
    cam = get_method("gradcam").attribute(clf, x, target).spatial.numpy()
    assert cam.shape == (HF_FRAMES, 4, 4) and reference.max() > 0
    np.testing.assert_allclose(cam, reference, rtol=1e-5, atol=1e-5 * reference.max())


def test_gradcam_reads_timesformers_temporal_attention_tokens(hf):
    clf = load_classifier(hf / "timesformer", layer="encoder.layer.1.temporal_layernorm",
                          device="cpu")
    info = clf.layer_info()
    assert (info.frames, info.grid) == (HF_FRAMES, (4, 4))
    cam = get_method("guided-gradcam").attribute(clf, clip(), 0)
    assert cam.spatial.shape == (HF_FRAMES, 4, 4) and torch.isfinite(cam.spatial).all()


# ---------------------------------------------------------------- attention rollout


def attention_numpy(model: torch.nn.Module, x: torch.Tensor, kind: str
                    ) -> list[tuple[str, np.ndarray]]:
    """(step kind, probabilities) in the order they run, from the public
    `output_attentions` (and, for TimeSformer's temporal steps, its attn_drop input)."""
    temporal = []
    handles = [block.temporal_attention.attention.attn_drop.register_forward_hook(
        lambda _m, args, _o: temporal.append(args[0].detach().numpy()))
        for block in model.timesformer.encoder.layer] if kind == "timesformer" else []
    with torch.no_grad():
        spatial = [a.numpy() for a in model(x, output_attentions=True).attentions]
    for handle in handles:
        handle.remove()
    if kind != "timesformer":
        return [("joint", a[0]) for a in spatial]
    return [step for pair in zip(temporal, spatial) for step in
            (("time", pair[0]), ("space", pair[1]))]


def rollout_numpy(steps: list[tuple[str, np.ndarray]], kind: str, fusion: str,
                  discard: float) -> np.ndarray:
    """Abnar & Zuidema's rollout with full matrices: R = A_L ... A_1, read at the row the
    head uses; TimeSformer's steps written out token by token."""
    t, h, w, prefix, order = GRIDS[kind]
    n = prefix + t * h * w

    def index(loc: int, frame: int) -> int:
        return prefix + (loc * t + frame if order == "hwt" else frame * h * w + loc)

    def fuse(a: np.ndarray) -> np.ndarray:
        a = a.mean(-3) if fusion == "mean" else a.max(-3)
        flat = a.reshape(*a.shape[:-2], -1).copy()
        k = int(flat.shape[-1] * discard)
        for row in flat.reshape(-1, flat.shape[-1]):
            row[np.argsort(row, kind="stable")[:k]] = 0
        return flat.reshape(a.shape)

    rolled = np.eye(n)
    for step_kind, probs in steps:
        a = fuse(probs.astype(np.float64))
        m = np.zeros((n, n))
        if step_kind == "joint":
            m = a
        elif step_kind == "time":
            for loc in range(h * w):
                for f1 in range(t):
                    for f2 in range(t):
                        m[index(loc, f1), index(loc, f2)] = a[loc, f1, f2]
        else:
            for f in range(t):
                cols = [0] + [index(loc, f) for loc in range(h * w)]
                for i, row in enumerate(cols):
                    if i == 0:
                        m[0, cols] += a[f, 0] / t
                    else:
                        m[row, cols] = a[f, i]
        m = m + np.eye(n)
        m = m / m.sum(-1, keepdims=True)
        rolled = m @ rolled
    row = rolled.mean(0) if kind == "videomae" else rolled[0]  # mean pooling / CLS
    patches = row[prefix:]
    if order == "hwt":
        return patches.reshape(h, w, t).transpose(2, 0, 1)
    return patches.reshape(t, h, w)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("fusion", "discard"), [("mean", 0.0), ("max", 0.5)])
def test_rollout_matches_a_numpy_implementation(hf, kind, fusion, discard):
    clf = load_classifier(hf / kind, device="cpu")
    x = clip(2)
    reference = to_frames(rollout_numpy(attention_numpy(clf.module, x, kind), kind, fusion,
                                        discard), HF_FRAMES)
    method = get_method("attention-rollout", head_fusion=fusion, discard=discard)
    attr = method.attribute(clf, x)
    assert attr.spatial.shape == (HF_FRAMES, 4, 4)
    np.testing.assert_allclose(attr.spatial.numpy(), reference, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(attr.temporal, attr.spatial.sum(dim=(1, 2)))
    torch.testing.assert_close(attr.logits, clf.predict(x)[0])


def test_rollout_parameters_and_models_it_needs(hf):
    with pytest.raises(StvizError, match="head_fusion='min' must be one of mean, max"):
        get_method("attention-rollout", head_fusion="min")
    with pytest.raises(StvizError, match=r"discard=1\.0 must be in \[0, 1\)"):
        get_method("attention-rollout", discard=1.0)


# ------------------------------------------------------------------ end to end (CLI)


@pytest.mark.parametrize("kind", KINDS)
def test_cli_explains_and_compares_hf_models(hf, kind, video, tmp_path, capsys):
    args = ["--model", hf / kind, "--device", "cpu", "--format", "json", "--quiet"]
    for method in ("gradcam", "attention-rollout"):
        out = tmp_path / method
        code, _, err = run(capsys, "explain", video, "--method", method, "--out", out, *args)
        assert code == 0, err
        arrays = np.load(out / "explanation.npz")
        assert arrays["spatial"].shape == (HF_FRAMES, 4, 4)  # the clip's frames, 4x4 patches
        assert np.isfinite(arrays["spatial"]).all() and arrays["spatial"].max() > 0
    code, _, err = run(capsys, "compare", video, "-b", "ig", "-p", "ig.steps=2", "--out",
                       tmp_path / "compare", *args)
    assert code == 0, err
    summary = json.loads((tmp_path / "compare" / "compare.json").read_text())
    assert list(summary["methods"]) == ["attention-rollout", "ig"]


@pytest.mark.parametrize("name", ["saliency", "smoothgrad", "ig", "occlusion",
                                  "frame-ablation"])
def test_pixel_methods_work_unchanged_on_transformers(hf, name):
    clf = load_classifier(hf / "timesformer", device="cpu")
    params = {"steps": 2} if name == "ig" else {"samples": 2} if name == "smoothgrad" else {}
    attr = get_method(name, **params).attribute(clf, clip(3), 1)
    assert attr.spatial.shape == (HF_FRAMES, 4, 4) and torch.isfinite(attr.spatial).all()
    assert attr.temporal.abs().sum() > 0


@pytest.fixture(scope="module")
def swin_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from torchvision.models import video as tv

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("swin") / "swin3d_t.pth"
    torch.save(tv.swin3d_t(num_classes=3).state_dict(), path)
    return path


@pytest.mark.slow
def test_cli_explains_swin3d(swin_file, video, tmp_path, capsys):
    args = ["--model", swin_file, "--arch", "swin3d_t", "--frames", "8", "--input-size", "64",
            "--device", "cpu", "--format", "json", "--quiet"]
    code, _, err = run(capsys, "explain", video, "--method", "gradcam", "--out",
                       tmp_path / "e", *args)
    assert code == 0, err
    spatial = np.load(tmp_path / "e" / "explanation.npz")["spatial"]
    assert spatial.shape == (8, 2, 2) and spatial.max() > 0  # 64 px / 32: Swin3D's last stage
    code, _, err = run(capsys, "compare", video, "-b", "gradcam,ig", "-p", "ig.steps=2",
                       "--out", tmp_path / "c", *args)
    assert code == 0, err
    methods = json.loads((tmp_path / "c" / "compare.json").read_text())["methods"]
    assert list(methods) == ["attention-rollout", "gradcam", "ig"]  # its own attention first
    code, _, err = run(capsys, "explain", video, "--method", "attention-rollout", "--out",
                       tmp_path / "r", *args)
    assert code == 0, err
    spatial = np.load(tmp_path / "r" / "explanation.npz")["spatial"]
    assert spatial.shape == (8, 2, 2) and spatial.min() >= 0 and spatial.max() > 0


@pytest.mark.slow
def test_cli_explains_mvit_v2_s(video, tmp_path, capsys):
    """MViT's token grid is fixed at 16 frames of 224x224, so this is the slow one."""
    from torchvision.models import video as tv

    torch.manual_seed(0)
    path = tmp_path / "mvit.pth"
    torch.save(tv.mvit_v2_s(num_classes=3).state_dict(), path)
    args = ["--model", path, "--arch", "mvit_v2_s", "--device", "cpu", "--format", "json",
            "--quiet"]
    code, _, err = run(capsys, "compare", video, "-b", "gradcam,ig", "-p", "ig.steps=1", "-p",
                       "ig.batch=1", "--out", tmp_path / "c", *args)
    assert code == 0, err
    methods = json.loads((tmp_path / "c" / "compare.json").read_text())["methods"]
    assert list(methods) == ["attention-rollout", "gradcam", "ig"]
    assert methods["gradcam"]["params"]["layer"] == "blocks.15.norm1"
    code, _, err = run(capsys, "explain", video, "--method", "attention-rollout", "--out",
                       tmp_path / "r", *args)
    assert code == 0, err
    spatial = np.load(tmp_path / "r" / "explanation.npz")["spatial"]
    assert spatial.shape == (16, 7, 7) and spatial.max() > 0  # 8x56x56 tokens summed to 7x7
    code, _, err = run(capsys, "explain", video, "--method", "gradcam", "--frames", "8", *args)
    assert code == 2 and "takes exactly 16 frames" in err


# ------------------------------------- torchvision MViT and Swin3D: rollout through pooling


def tv_models() -> dict[str, tuple[torch.nn.Module, int, int]]:
    """(model, frames, input size) of the small torchvision transformers; at these sizes
    Swin3D pads its grids to whole windows, merges an odd grid and shrinks its windows."""
    return {"mvit": (tiny_mvit(), MVIT_FRAMES, MVIT_SIZE), "swin": (tiny_swin3d(), 6, 40)}


def capture_attention(model: torch.nn.Module, x: torch.Tensor) -> list[tuple]:
    """(module, args, output) of every attention module in one forward pass."""
    from torchvision.models.video.mvit import MultiscaleAttention
    from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

    calls = []
    handles = [m.register_forward_hook(lambda m, args, out: calls.append((m, args, out)))
               for m in model.modules()
               if isinstance(m, (MultiscaleAttention, ShiftedWindowAttention3d))]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return calls


@pytest.mark.parametrize("kind", ["mvit", "swin", "swin3d_t",
                                  pytest.param("mvit_v2_s", marks=pytest.mark.slow)])
def test_recomputed_attention_gives_the_modules_own_output(kind):
    """The weights rollout reads come from a recomputation of each attention module; it
    must reproduce the module's output (here also the real swin3d_t, whose 8x7x7 windows
    shrink to a 4-frame grid and pad 16x16 to 21x21, and the real mvit_v2_s)."""
    from torchvision.models import video as tv

    from stviz.explain.torchvision_attention import mvit_attention, swin_attention

    torch.manual_seed(0)
    model, t, size = {**tv_models(), "swin3d_t": (tv.swin3d_t(num_classes=3).eval(), 8, 64),
                      "mvit_v2_s": (tv.mvit_v2_s(num_classes=3).eval(), 16, 224)}[kind]
    calls = capture_attention(model, torch.randn(1, 3, t, size, size))
    assert len(calls) == len([m for m in model.modules() if hasattr(m, "qkv")])
    with torch.no_grad():
        for module, args, out in calls:
            if kind.startswith("mvit"):
                probs, mine, _, _ = mvit_attention(module, *args)
                out = out[0]
            else:
                probs, mine, _, _ = swin_attention(module, *args)
            torch.testing.assert_close(mine, out, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))


def window_matrix(n: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """(out, n) averaging matrix of a pooling window along one dimension, written out."""
    out = (n + 2 * padding - kernel) // stride + 1
    m = np.zeros((out, n))
    for o in range(out):
        cells = [i for i in range(n) if o * stride - padding <= i < o * stride - padding + kernel]
        m[o, cells] = 1 / len(cells)
    return m


def pooling_numpy(thw, pool) -> tuple[np.ndarray, tuple]:
    """(dense token map (1 + out, 1 + in) with the CLS token kept, output grid) of a
    Conv3d/MaxPool3d window; no pool: the identity."""
    n = 1 + int(np.prod(thw))
    if pool is None:
        return np.eye(n), thw
    triple = [(v,) * 3 if isinstance(v, int) else tuple(v) for v in
              (pool.kernel_size, pool.stride, pool.padding)]
    mats = [window_matrix(d, k, s, p) for d, k, s, p in zip(thw, *triple)]
    out = tuple(m.shape[0] for m in mats)
    dense = np.zeros((1 + int(np.prod(out)), n))
    dense[0, 0] = 1
    dense[1:, 1:] = np.kron(np.kron(mats[0], mats[1]), mats[2])
    return dense, out


def fuse_numpy(probs: np.ndarray, fusion: str, discard: float) -> np.ndarray:
    a = probs.mean(-3) if fusion == "mean" else probs.max(-3)
    flat = a.reshape(-1, a.shape[-2] * a.shape[-1]).copy()
    k = int(flat.shape[-1] * discard)
    for row in flat:
        row[np.argsort(row, kind="stable")[:k]] = 0
    return flat.reshape(a.shape)


def mvit_matrices(model, probs: list[np.ndarray], fusion: str, discard: float):
    """Each MViT block as a dense (outputs, inputs) matrix: normalize((A P_kv + P_q) / 2 +
    P_skip), the CLS row without P_q; grids from the pooling windows' own sizes."""
    enc = model.pos_encoding
    thw = (enc.temporal_size, *enc.spatial_size)
    for block, p in zip(model.blocks, probs, strict=True):
        attn = block.attn
        p_q, q_thw = pooling_numpy(thw, attn.pool_q and attn.pool_q.pool)
        p_kv, _ = pooling_numpy(thw, attn.pool_k and attn.pool_k.pool)
        p_skip, _ = pooling_numpy(thw, block.pool_skip and block.pool_skip.pool)
        a = fuse_numpy(p, fusion, discard)
        r = np.ones(len(a))
        r[0] = 0  # residual pooling skips the CLS token in mvit_v2_s's design
        m = (a @ p_kv + r[:, None] * p_q) / (1 + r)[:, None] + p_skip
        yield m / m.sum(-1, keepdims=True)
        thw = q_thw


def swin_matrices(model, steps, fusion: str, discard: float, thw: tuple):
    """Swin3D's window attention and patch merging as dense matrices over the real tokens,
    the windows found token by token from rolled coordinates."""
    from torchvision.models.swin_transformer import PatchMerging
    from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

    probs = iter(s.probs.numpy().astype(np.float64) for s in steps if hasattr(s, "probs"))
    for module in model.features.modules():
        if isinstance(module, PatchMerging):
            m = np.kron(np.eye(thw[0]), np.kron(merge_matrix(thw[1]), merge_matrix(thw[2])))
            yield m
            thw = (thw[0], -(-thw[1] // 2), -(-thw[2] // 2))
        elif isinstance(module, ShiftedWindowAttention3d):
            window = [min(w, n) for w, n in zip(module.window_size, thw)]
            shift = [0 if n <= w else s for w, n, s in zip(module.window_size, thw,
                                                              module.shift_size)]
            padded = [-(-n // w) * w for n, w in zip(thw, window)]
            a = fuse_numpy(next(probs), fusion, discard)
            cells = list(np.ndindex(*padded))
            where = []  # (window index, position in the window) of every padded cell
            for c in cells:
                rolled = [(ci - s) % n for ci, s, n in zip(c, shift, padded)]
                where.append((np.ravel_multi_index([r // w for r, w in zip(rolled, window)],
                                                   [n // w for n, w in zip(padded, window)]),
                              np.ravel_multi_index([r % w for r, w in zip(rolled, window)],
                                                   window)))
            m = np.eye(len(cells))
            for i, (wi, pi) in enumerate(where):
                for j, (wj, pj) in enumerate(where):
                    if wi == wj:
                        m[i, j] += a[wi, pi, pj]
            m /= m.sum(-1, keepdims=True)
            real = [i for i, c in enumerate(cells) if all(ci < n for ci, n in zip(c, thw))]
            yield m[np.ix_(real, real)]  # flow into padding cells is dropped


def merge_matrix(n: int) -> np.ndarray:
    """Patch merging along one dimension: pairs of cells averaged, an odd last cell alone."""
    m = np.zeros((-(-n // 2), n))
    for o in range(len(m)):
        cells = [i for i in (2 * o, 2 * o + 1) if i < n]
        m[o, cells] = 1 / len(cells)
    return m


@pytest.mark.parametrize(("fusion", "discard"), [("mean", 0.0), ("max", 0.5)])
@pytest.mark.parametrize("kind", ["mvit", "swin"])
def test_vector_rollout_matches_dense_matrices(kind, fusion, discard):
    """The row pulled back step by step equals the product of the dense token maps."""
    from stviz.explain.rollout import rollout

    model, t, size = tv_models()[kind]
    clf = torchvision_classifier(model, t, size)
    torch.manual_seed(1)
    with torch.no_grad():
        _, steps, tokens, readout = clf.attention_source(torch.randn(1, t, 3, size, size))
    grid = (tokens.frames, *tokens.grid)
    if kind == "mvit":
        matrices = list(mvit_matrices(model, [s.probs.numpy().astype(np.float64)
                                              for s in steps], fusion, discard))
    else:
        matrices = list(swin_matrices(model, steps, fusion, discard, grid))
    rolled = np.eye(matrices[0].shape[1])
    for m in matrices:
        rolled = m @ rolled  # (outputs of this step, first step's inputs)
    row = rolled[0] if kind == "mvit" else rolled.mean(0)  # the CLS token / mean pooling
    reference = row[tokens.prefix:].reshape(grid)
    mine = rollout(steps, tokens, readout, fusion, discard).numpy()
    assert mine.shape == grid == ((4, 10, 10) if kind == "mvit" else (3, 10, 10))
    np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-8)
    assert (mine > 0).all()


def test_swin_rollout_keeps_all_shares_without_padding():
    """On grids that windows tile exactly (8 frames at 48x48: 4x12x12, 4x6x6, 4x3x3), every
    step is row-stochastic, so the tokens' shares sum to 1; padding loses some."""
    from stviz.explain.rollout import rollout

    model = tiny_swin3d()
    for frames, size, whole in ((8, 48, True), (6, 40, False)):
        clf = torchvision_classifier(model, frames, size)
        with torch.no_grad():
            _, steps, tokens, readout = clf.attention_source(
                torch.randn(1, frames, 3, size, size))
        total = float(rollout(steps, tokens, readout).sum())
        assert total == pytest.approx(1.0, abs=1e-5) if whole else 0.5 < total < 1.0


@pytest.fixture
def tv_files(tmp_path, monkeypatch) -> dict[str, Path]:
    """State dicts of the small models, loaded by `--arch mvit_v2_s` / `--arch swin3d_t`
    (their torchvision builders stand in for the full-size ones)."""
    from torchvision.models import video as tv

    monkeypatch.setattr(tv, "mvit_v2_s", tiny_mvit)
    monkeypatch.setattr(tv, "swin3d_t", tiny_swin3d)
    files = {}
    for arch, build in (("mvit_v2_s", tiny_mvit), ("swin3d_t", tiny_swin3d)):
        files[arch] = tmp_path / f"{arch}.pth"
        torch.save(build().state_dict(), files[arch])
    return files


@pytest.mark.parametrize(("arch", "extra", "shape"), [
    ("mvit_v2_s", [], (MVIT_FRAMES, 5, 5)),  # 4x10x10 tokens summed to block 3's 5x5
    ("swin3d_t", ["--frames", "6", "--input-size", "40"], (6, 3, 3))])  # stage 1: 3x10x10
def test_cli_rolls_out_mvit_and_swin3d(tv_files, arch, extra, shape, video, tmp_path, capsys):
    args = ["--model", tv_files[arch], "--arch", arch, *extra, "--device", "cpu", "--format",
            "json", "--quiet"]
    code, _, err = run(capsys, "explain", video, "--method", "attention-rollout", "-p",
                       "discard=0.5", "--out", tmp_path / "r", *args)
    assert code == 0, err
    arrays = np.load(tmp_path / "r" / "explanation.npz")
    assert arrays["spatial"].shape == shape and arrays["temporal"].shape == shape[:1]
    assert np.isfinite(arrays["spatial"]).all() and arrays["spatial"].min() >= 0
    assert arrays["temporal"].min() > 0  # every frame holds some of the shares
    code, _, err = run(capsys, "compare", video, "-b", "gradcam", "--out", tmp_path / "c",
                       *args)
    assert code == 0, err
    summary = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert list(summary["methods"]) == ["attention-rollout", "gradcam"]


def test_rollout_needs_a_transformer(tmp_path, video, capsys):
    from torchvision.models import video as tv

    path = tmp_path / "r3d.pth"
    torch.save(tv.r3d_18(num_classes=3).state_dict(), path)
    code, _, err = run(capsys, "explain", video, "--model", path, "--arch", "r3d_18",
                       "--method", "attention-rollout", "--device", "cpu", "--out",
                       tmp_path / "o")
    assert code == 2 and "needs a video transformer" in err and "no attention" in err
    assert len(err.strip().splitlines()) == 1


def test_localize_eval_loads_state_dicts_with_arch(tv_files, tmp_path, capsys):
    """localize-eval takes explain's loading options: --arch (and --layer, --input-size)."""
    from stviz.datasets.synth import SynthConfig, generate

    data = tmp_path / "data"
    generate(data, 0, 2, seed=1, cfg=SynthConfig(frames=8, size=64), workers=1)
    args = ["localize-eval", data, "--model", tv_files["swin3d_t"], "--arch", "swin3d_t",
            "--frames", "6", "--input-size", "40", "--methods", "attention-rollout,gradcam",
            "--no-faithfulness", "--device", "cpu", "--quiet"]
    out = tmp_path / "eval"
    code, _, err = run(capsys, *args, "--out", out)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"].startswith("swin3d_t:") and metrics["n_videos"] == 2
    assert {"attention-rollout", "gradcam"} <= set(json.dumps(metrics).split('"'))
    # Another Grad-CAM layer is another result: nothing cached under the first is reused.
    code, _, err = run(capsys, *args, "--layer", "features.2", "--out", out, "--overwrite")
    assert code == 0, err
    layers = [json.loads(p.read_text())["params"]["layer"]
              for p in (out / "cache" / "gradcam").glob("*.explanation/explanation.json")]
    assert sorted(layers) == ["features.2", "features.2", "norm", "norm"]
    assert len(list((out / "cache" / "attention-rollout").glob("*.npz"))) == 4


# ------------------------------------------------------------------------- errors


def test_folders_that_are_not_such_models_are_one_line_errors(hf, video, tmp_path, capsys):
    broken = tmp_path / "broken"
    tiny_hf("videomae", broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "hidden_size": 15}))
    truncated = tmp_path / "truncated"
    tiny_hf("vivit", truncated)
    (truncated / "config.json").write_text('{"model_type": "vivit", ')
    other_weights = tmp_path / "other-weights"  # a VideoMAE config over ViViT weights
    tiny_hf("videomae", other_weights)
    (other_weights / "model.safetensors").write_bytes((hf / "vivit" /
                                                       "model.safetensors").read_bytes())
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert",
                                                  "architectures": ["BertModel"]}))
    pretraining = tmp_path / "pretraining"
    tiny_hf("videomae", pretraining)
    config = json.loads((pretraining / "config.json").read_text())
    (pretraining / "config.json").write_text(json.dumps(
        {**config, "architectures": ["VideoMAEForPreTraining"]}))
    no_weights = tmp_path / "no-weights"
    tiny_hf("timesformer", no_weights)
    (no_weights / "model.safetensors").unlink()
    cases = [(["--model", broken], r"broken: cannot load a VideoMAEForVideoClassification"),
             (["--model", truncated], r"config\.json: unreadable config"),
             (["--model", other_weights], r"model\.safetensors: not the weights of the "
                                          r"VideoMAEForVideoClassification"),
             (["--model", bert], r"a Hugging Face 'bert' model, not a video classifier"),
             (["--model", pretraining], r"a VideoMAEForPreTraining, not a "
                                        r"VideoMAEForVideoClassification"),
             (["--model", no_weights], r"no-weights: no model\.safetensors"),
             (["--model", hf / "vivit", "--frames", "8"], r"--frames 8: vivit takes exactly 4"),
             (["--model", hf / "vivit", "--input-size", "64"], r"--input-size 64")]
    for extra, says in cases:
        code, _, err = run(capsys, "explain", video, "--device", "cpu", "--out",
                           tmp_path / "out", *extra)
        assert code == 2 and re.search(says, err), (extra, err)
        assert len(err.strip().splitlines()) == 1, err


def test_an_mvit_file_is_not_swin3d_weights(swin_file, video, tmp_path, capsys):
    code, _, err = run(capsys, "explain", video, "--model", swin_file, "--arch", "mvit_v2_s",
                       "--device", "cpu", "--out", tmp_path / "out")
    assert code == 2 and "not mvit_v2_s weights (no 'head.1.weight')" in err


def test_without_transformers_the_error_names_the_extra(hf, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers fails
    with pytest.raises(StvizError, match=r"pip install stviz\[transformers\]"):
        load_classifier(hf / "videomae", device="cpu")


def test_localize_eval_scores_a_transformer(hf, tmp_path, capsys):
    from stviz.datasets.synth import SynthConfig, generate

    data = tmp_path / "data"
    generate(data, 0, 2, seed=1, cfg=SynthConfig(frames=8, size=64), workers=1)
    code, _, err = run(capsys, "localize-eval", data, "--model", hf / "timesformer",
                       "--methods", "attention-rollout,gradcam", "--faithfulness-steps", "2",
                       "--device", "cpu", "--out", tmp_path / "eval", "--quiet")
    assert code == 0, err
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {"attention-rollout", "gradcam"} <= set(json.dumps(metrics).split('"'))
