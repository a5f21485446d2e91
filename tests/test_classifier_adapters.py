"""`VideoClassifier` adapters: layouts, torchvision video models, TorchScript, stviz."""

import warnings

import pytest
import torch
import torchvision
from tiny_models import SIZE, T, Tiny3d, tiny_stviz
from torch import nn

from stviz.core.checkpoint import save_checkpoint
from stviz.errors import StvizError
from stviz.explain import from_module, from_stviz, get_method, load_classifier
from stviz.explain.classifier import DEFAULT_GRID, KINETICS_MEAN


class TimeFirst(nn.Module):
    """The same network taking (N, T, C, H, W)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.transpose(1, 2))


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return torch.randn(1, T, 3, SIZE, SIZE)


@pytest.mark.parametrize("name", ["saliency", "gradcam"])
def test_layouts_give_the_same_result(clip, name):
    inner = Tiny3d().eval()
    ncthw = from_module(inner, "NCTHW", classes=["a", "b", "c"], frames=T, input_size=SIZE)
    ntchw = from_module(TimeFirst(inner), "NTCHW", classes=["a", "b", "c"], frames=T,
                        input_size=SIZE)
    assert ntchw.layer_info().name == "inner.body"
    a = get_method(name).attribute(ncthw, clip, 1)
    b = get_method(name).attribute(ntchw, clip, 1)
    torch.testing.assert_close(a.spatial, b.spatial)
    torch.testing.assert_close(a.temporal, b.temporal)


@pytest.fixture(scope="module")
def r3d_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("r3d") / "r3d_18.pth"
    torch.save(torchvision.models.video.r3d_18(weights=None).state_dict(), path)
    return path


def test_r3d_18_from_a_state_dict(r3d_file):
    clf = load_classifier(r3d_file, "r3d_18", frames=16, input_size=48, device="cpu")
    assert len(clf.classes) == 400 and clf.classes[0] == "abseiling"
    assert clf.mean == KINETICS_MEAN and clf.layout == "NCTHW"
    info = clf.layer_info()
    assert (info.name, info.frames, info.grid) == ("layer4", 2, (3, 3))  # 16 frames / 8
    torch.manual_seed(1)
    x = torch.randn(1, 16, 3, 48, 48)
    cam = get_method("gradcam").attribute(clf, x, 7)
    assert cam.spatial.shape == (16, 3, 3) and torch.isfinite(cam.spatial).all()
    # Two time slices resampled to 16 frames: the first and last frames are the slices.
    assert not torch.allclose(cam.spatial[0], cam.spatial[-1])
    drops = get_method("frame-ablation").attribute(clf, x[:, :8], 7)
    assert drops.temporal.shape == (8,) and drops.spatial.shape == (8, 3, 3)


def test_torchvision_errors(r3d_file, tmp_path):
    with pytest.raises(StvizError, match="not mc3_18 weights"):
        load_classifier(r3d_file, "mc3_18", device="cpu")
    with pytest.raises(StvizError, match="not s3d weights"):
        load_classifier(r3d_file, "s3d", device="cpu")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(StvizError, match=r"garbage\.pth: cannot read r3d_18 weights"):
        load_classifier(garbage, "r3d_18", device="cpu")
    with pytest.raises(StvizError, match="--arch i3d: unknown"):
        load_classifier(r3d_file, "i3d", device="cpu")
    with pytest.raises(StvizError, match="2 class names for a model with 400 outputs"):
        load_classifier(r3d_file, "r3d_18", classes=["a", "b"], device="cpu")


@pytest.fixture
def script_file(tmp_path):
    path = tmp_path / "tiny3d.pt"
    with warnings.catch_warnings():  # recent torch deprecates TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(Tiny3d().eval(), torch.zeros(1, 3, T, SIZE, SIZE))
    traced.save(str(path))
    return path


def test_torchscript_works_without_hooks(script_file, clip):
    (script_file.with_suffix(".classes.txt")).write_text("run\njump\n\nwalk\n")
    clf = load_classifier(script_file, frames=T, input_size=SIZE, device="cpu")
    assert clf.classes == ["run", "jump", "walk"]
    attr = get_method("saliency").attribute(clf, clip, 2)
    assert attr.spatial.shape == (T, *DEFAULT_GRID) and attr.spatial.sum() > 0
    with pytest.raises(StvizError, match=r"tiny3d\.pt: no Grad-CAM layer: its layers cannot be "
                                         r"hooked.*saliency"):
        get_method("gradcam").attribute(clf, clip, 2)


def test_torchscript_errors(script_file, tmp_path):
    numbered = load_classifier(script_file, frames=T, input_size=SIZE, device="cpu")
    assert numbered.classes == ["class_0", "class_1", "class_2"]
    with pytest.raises(StvizError, match="check --layout"):
        load_classifier(script_file, layout="NTCHW", frames=T, input_size=SIZE, device="cpu")
    other = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(2)}, other)
    with pytest.raises(StvizError, match=r"weights\.pth: not a TorchScript file.*--arch"):
        load_classifier(other, device="cpu")


def test_stviz_checkpoint_and_layer_names(tmp_path, clip):
    model = tiny_stviz()
    save_checkpoint(model.net, model.spec, tmp_path / "ckpt")
    clf = load_classifier(tmp_path / "ckpt", device="cpu")
    assert clf.is_stviz and clf.classes == ["a", "b", "c"] and clf.grid == (2, 2)
    assert clf.layer_info().name.startswith("backbone")  # the backbone's last conv map
    layer3 = from_stviz(model, layer="backbone.6")  # ResNet's layer3: stride 16
    assert layer3.grid == (4, 4)
    assert get_method("gradcam").attribute(layer3, clip, 0).spatial.shape == (T, 4, 4)
    with pytest.raises(StvizError, match=r"--layer layer9: not found.*pass a full module name"):
        from_stviz(model, layer="layer9")


def test_auto_layer_is_the_last_spatial_map():
    clf = from_module(Tiny3d(), "NCTHW", classes=["a", "b", "c"], frames=T, input_size=SIZE)
    assert clf.layer_info().name == "body"
    flat = from_module(nn.Sequential(nn.Flatten(), nn.Linear(3 * T * SIZE * SIZE, 2)), "NCTHW",
                       classes=["a", "b"], frames=T, input_size=SIZE)
    assert flat.grid == DEFAULT_GRID
    with pytest.raises(StvizError, match="no module outputs a spatial feature map"):
        flat.layer_info()
