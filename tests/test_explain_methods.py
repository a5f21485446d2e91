"""Explanation methods: references computed independently, shapes, and a model whose
answer is known (only frame k, only one region matters)."""

import pytest
import torch
from captum.attr import LayerGradCam
from tiny_models import SIZE, FrameK, T, Tiny3d, tiny_stviz

from stviz.errors import StvizError
from stviz.explain import METHODS, as_classifier, from_module, get_method


@pytest.fixture(scope="module")
def model():
    return tiny_stviz(size=96)  # ResNet-18 grid 3x3


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(1)
    return torch.randn(1, T, 3, 96, 96)


def hooked_grad_cam(net: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor,
                    target: int) -> torch.Tensor:
    """Grad-CAM written out with a forward hook and autograd, per frame of a per-frame
    backbone: weights = mean over (h, w) of dScore/dA, cam = relu(sum_c w_c A_c)."""
    saved = {}

    def keep(_module, _inputs, output):
        output.retain_grad()
        saved["a"] = output

    handle = layer.register_forward_hook(keep)
    with torch.enable_grad():
        score = net(x.clone().requires_grad_(True)).logits[0, target]
        score.backward()
    handle.remove()
    a, g = saved["a"], saved["a"].grad  # (T, C, h, w)
    weights = g.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * a).sum(dim=1)).detach()


def test_gradcam_matches_hook_reference_and_captum(model, clip):
    clf = as_classifier(model)
    target = 2
    ours = get_method("gradcam").attribute(clf, clip, target)
    reference = hooked_grad_cam(model.net, model.backbone.last_conv, clip, target)
    assert reference.shape == (T, 3, 3) and reference.abs().sum() > 0
    torch.testing.assert_close(ours.spatial, reference, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours.temporal, reference.sum(dim=(1, 2)), rtol=1e-4, atol=1e-6)
    # For a per-frame 2-D layer Captum's LayerGradCam gives per-frame weights too.
    captum = LayerGradCam(clf, model.backbone.last_conv).attribute(
        clip.clone().requires_grad_(True), target=target, relu_attributions=True)
    torch.testing.assert_close(ours.spatial, captum[:, 0].detach(), rtol=1e-4, atol=1e-6)


def test_gradcam_weights_each_time_slice_of_a_3d_layer():
    module = Tiny3d().eval()
    clf = from_module(module, "NCTHW", classes=["a", "b", "c"], frames=T, input_size=SIZE)
    torch.manual_seed(2)
    x = torch.randn(1, T, 3, SIZE, SIZE)
    info = clf.layer_info()
    assert (info.name, info.frames, info.grid) == ("body", 2, (16, 16))
    ours = get_method("gradcam").attribute(clf, x, 1).spatial

    saved = {}
    handle = module.body.register_forward_hook(lambda _m, _i, out: saved.update(a=out))
    score = module(x.transpose(1, 2))[0, 1]
    handle.remove()
    a = saved["a"][0]  # (C, T'=2, h, w)
    g = torch.autograd.grad(score, saved["a"])[0][0]
    slices = [torch.relu((g[:, s].mean(dim=(1, 2))[:, None, None] * a[:, s]).sum(0))
              for s in range(2)]
    # Linear resampling of 2 slices to 4 frames (slice centres at frames 0.5 and 2.5).
    expected = torch.stack([slices[0], 0.75 * slices[0] + 0.25 * slices[1],
                            0.25 * slices[0] + 0.75 * slices[1], slices[1]]).detach()
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
    shared = g.mean(dim=(1, 2, 3))[:, None, None]  # what one weight set for all time gives
    assert not torch.allclose(slices[0], torch.relu((shared * a[:, 0]).sum(0)))


def test_attention_is_the_networks_masks_and_weights(model, clip):
    out = model.net.eval()(clip)
    attr = get_method("attention").attribute(as_classifier(model), clip)
    assert torch.equal(attr.spatial, out.masks[0]) and torch.equal(attr.temporal, out.weights[0])
    assert torch.equal(attr.logits, out.logits[0])


# attention-rollout needs a transformer: tests/test_video_transformers.py
@pytest.mark.parametrize("name", [m for m in METHODS if m != "attention-rollout"])
def test_every_method_gives_finite_maps_on_the_feature_grid(model, clip, name):
    clf = as_classifier(model)
    params = {"steps": 4} if name == "ig" else {"samples": 2} if name == "smoothgrad" else {}
    attr = get_method(name, **params).attribute(clf, clip, 1)
    assert attr.spatial.shape == (T, 3, 3) and attr.temporal.shape == (T,)
    assert attr.spatial.dtype == attr.temporal.dtype == torch.float32
    assert torch.isfinite(attr.spatial).all() and torch.isfinite(attr.temporal).all()
    assert (attr.spatial >= 0).all()


def test_frame_ablation_is_the_score_drop(model, clip):
    clf = as_classifier(model)
    attr = get_method("frame-ablation").attribute(clf, clip, 0)
    ablated = clip.clone()
    ablated[:, 2] = 0  # the mean frame in normalized units
    with torch.no_grad():
        drop = model.net(clip).logits[0, 0] - model.net(ablated).logits[0, 0]
    torch.testing.assert_close(attr.temporal[2], drop, rtol=1e-4, atol=1e-6)
    assert torch.equal(attr.spatial[2], attr.temporal[2].clamp(min=0).expand(3, 3))


@pytest.mark.parametrize("name", ["saliency", "ig", "smoothgrad", "gradcam", "guided-gradcam",
                                  "occlusion", "frame-ablation"])
def test_known_answer_only_frame_k_and_one_region_matter(name):
    k, rows, cols = 2, slice(1, 3), slice(5, 7)
    clf = from_module(FrameK(k, rows, cols).eval(), "NTCHW", classes=["x", "y"], frames=T,
                      input_size=SIZE)
    torch.manual_seed(3)
    x = torch.rand(1, T, 3, SIZE, SIZE)  # positive pixels: the region's evidence is positive
    attr = get_method(name).attribute(clf, x, 0)
    assert attr.spatial.shape == (T, 8, 8)
    assert int(attr.temporal.argmax()) == k
    assert attr.temporal[[i for i in range(T) if i != k]].abs().max() < 1e-6
    # Frame-ablation's maps are uniform by definition; Grad-CAM weighs whole channels,
    # so it lights up wherever those channels fire, not only where the gradient is.
    if name not in ("frame-ablation", "gradcam"):
        peak = divmod(int(attr.spatial[k].argmax()), 8)
        assert rows.start <= peak[0] < rows.stop and cols.start <= peak[1] < cols.stop
        near = attr.spatial[k, rows.start - 1:rows.stop + 1, cols.start - 1:cols.stop + 1]
        # Occlusion's 2-cell boxes spread the drop one cell around the region.
        inside = near if name == "occlusion" else attr.spatial[k, rows, cols]
        assert inside.sum() > 0.9 * attr.spatial.sum()


def test_gradients_work_under_inference_mode_and_keep_training_flag(model):
    clf = as_classifier(model)
    clf.train()
    with torch.inference_mode():
        x = torch.randn(1, T, 3, 96, 96)  # an inference tensor
        attr = get_method("saliency").attribute(clf, x, 0)
    assert attr.spatial.sum() > 0 and clf.training
    clf.eval()


def test_user_errors():
    with pytest.raises(StvizError, match="unknown; use one of attention"):
        get_method("lime")
    with pytest.raises(StvizError, match="no parameter 'n_steps'; its parameters: batch, steps"):
        get_method("ig", n_steps=3)
    clf = from_module(Tiny3d(), "NCTHW", classes=["a", "b", "c"], frames=T, input_size=SIZE)
    with pytest.raises(StvizError, match="needs a stviz attention model"):
        get_method("attention").attribute(clf, torch.zeros(1, T, 3, SIZE, SIZE))


def test_smoothgrad_noise_scales_with_the_value_range(model, clip):
    clf = as_classifier(model)
    torch.manual_seed(0)
    a = get_method("smoothgrad", samples=2, noise=0.0).attribute(clf, clip, 1)
    b = get_method("saliency").attribute(clf, clip, 1)
    torch.testing.assert_close(a.spatial, b.spatial)  # no noise: plain saliency


def test_smoothgrad_is_seeded_two_runs_equal(model, clip):
    """Same seed: the same map, whatever the global random state; another seed: another."""
    clf = as_classifier(model)
    torch.manual_seed(123)
    first = get_method("smoothgrad", samples=3).attribute(clf, clip, 1)
    torch.manual_seed(456)
    state = torch.random.get_rng_state()
    second = get_method("smoothgrad", samples=3).attribute(clf, clip, 1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's state untouched
    torch.testing.assert_close(first.spatial, second.spatial, rtol=0, atol=0)
    torch.testing.assert_close(first.temporal, second.temporal, rtol=0, atol=0)
    other = get_method("smoothgrad", samples=3, seed=7).attribute(clf, clip, 1)
    assert not torch.equal(first.spatial, other.spatial)
    get_method("smoothgrad", seed=0)  # 0 is a seed, not a count
    with pytest.raises(StvizError, match="seed=-1 must be a whole number >= 0"):
        get_method("smoothgrad", seed=-1)


def test_occlusion_windows_are_in_grid_cells(model, clip):
    clf = as_classifier(model)
    clf.layer_info()  # the probe's forward pass is not occlusion's
    calls = []
    handle = clf.register_forward_pre_hook(lambda _m, args: calls.append(len(args[0])))
    get_method("occlusion", window_frames=2, stride_frames=2, batch=1).attribute(clf, clip, 0)
    handle.remove()
    # 96 px and a 3x3 grid: 64 px box by 32 px steps = 2x2 positions, x 2 frame blocks + 1.
    assert len(calls) == 2 * 2 * 2 + 1
