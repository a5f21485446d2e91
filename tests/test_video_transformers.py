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
from tiny_models import HF_FRAMES, HF_SIZE, tiny_hf

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
    code, _, err = run(capsys, "explain", video, "--method", "attention-rollout", "--out",
                       tmp_path / "r", *args)
    assert code == 2 and "windowed attention" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_explains_mvit_v2_s(video, tmp_path, capsys):
    """MViT's position embedding fixes 16 frames at 224x224, so this is the slow one."""
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
    assert list(methods) == ["gradcam", "ig"] and methods["gradcam"]["params"]["layer"] == (
        "blocks.15.norm1")
    code, _, err = run(capsys, "explain", video, "--method", "gradcam", "--frames", "8", *args)
    assert code == 2 and "takes exactly 16 frames" in err


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
