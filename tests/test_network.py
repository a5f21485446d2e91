"""Shapes, gradients and ablation switches of the attention network."""

import pytest
import torch

from stviz.core.backbones import create_backbone
from stviz.core.network import AttentionHead, NetworkConfig, STAttentionNet


def tiny_config(**kw) -> NetworkConfig:
    return NetworkConfig(num_classes=5, in_channels=32, mask_hidden=(8, 4), reduce_channels=8,
                         lstm_hidden=6, **kw)


@pytest.mark.parametrize("recurrent", ["convlstm", "lstm", "none"])
@pytest.mark.parametrize("pooling", ["attention", "mean"])
def test_head_shapes_and_ranges(recurrent, pooling):
    head = AttentionHead(tiny_config(recurrent=recurrent, pooling=pooling)).eval()
    out = head(torch.randn(2, 7, 32, 5, 6))
    assert out.logits.shape == (2, 5)
    assert out.masks.shape == (2, 7, 5, 6)
    assert out.weights.shape == (2, 7)
    assert ((out.masks >= 0) & (out.masks <= 1)).all()
    assert torch.allclose(out.weights.sum(1), torch.ones(2))
    if pooling == "mean":
        assert torch.allclose(out.weights, torch.full((2, 7), 1 / 7))


def test_no_mask_ablation_gives_all_ones_mask():
    out = AttentionHead(tiny_config(use_mask=False)).eval()(torch.randn(1, 3, 32, 4, 4))
    assert torch.equal(out.masks, torch.ones(1, 3, 4, 4))


def test_reference_widths():
    cfg = NetworkConfig.reference(24)
    assert cfg.mask_hidden == (1024, 512) and cfg.lstm_hidden == 512 and cfg.in_channels == 2048
    head = AttentionHead(cfg)
    assert head.mask.layers[0].out_channels == 1024
    assert head.recurrent.gates.in_channels == 2048 + 512


def test_gradients_reach_head_but_not_frozen_backbone():
    bb = create_backbone("resnet18", "random")
    head = AttentionHead(tiny_config().__class__(num_classes=3, in_channels=bb.channels,
                                                 mask_hidden=(8, 4), reduce_channels=8,
                                                 lstm_hidden=6))
    net = STAttentionNet(bb.module, head).train()
    frames = torch.randn(2, 4, 3, 64, 64, requires_grad=True)
    out = net(frames)
    assert out.masks.shape == (2, 4, 2, 2)
    out.logits.sum().backward()
    assert all(p.grad is not None for p in net.head.parameters() if p.requires_grad)
    assert all(p.grad is None for p in net.backbone.parameters())
    assert frames.grad is not None and frames.grad.abs().sum() > 0  # explanations need this
    assert not net.backbone.training  # frozen BatchNorm statistics stay put


def test_features_and_frames_paths_agree():
    bb = create_backbone("resnet18", "random")
    head = AttentionHead(NetworkConfig(num_classes=3, in_channels=512, mask_hidden=(8, 4),
                                       reduce_channels=8, lstm_hidden=6))
    net = STAttentionNet(bb.module, head).eval()
    frames = torch.randn(1, 3, 3, 64, 64)
    with torch.no_grad():
        a = net(frames)
        b = net.forward_features(net.features(frames))
    assert torch.allclose(a.logits, b.logits)


def test_bad_config_values():
    with pytest.raises(ValueError):
        NetworkConfig(num_classes=2, recurrent="gru")
    with pytest.raises(ValueError):
        NetworkConfig(num_classes=2, pooling="max")
