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
    with pytest.raises(ValueError, match="spatial_pooling"):
        NetworkConfig(num_classes=2, spatial_pooling="max")
    with pytest.raises(ValueError, match="temporal_input"):
        NetworkConfig(num_classes=2, temporal_input="flow")


# ---------------------------------------------------------------- beyond the paper

def test_defaults_are_the_papers_network():
    cfg = tiny_config()
    assert cfg.is_paper and not cfg.coords
    assert (cfg.spatial_pooling, cfg.temporal_input) == ("mean", "state")
    for switch in ({"coords": True}, {"spatial_pooling": "mask"}, {"temporal_input": "delta"},
                   {"temporal_input": "rectified"}, {"attention_window": 3},
                   {"attention_floor": 0.1}, {"attention_source": "input-change"},
                   {"classifier_hidden": 16}, {"attention_temperature": 0.5},
                   {"attention_floor_temperature": 1.0}):
        other = tiny_config(**switch)
        assert not other.is_paper
        assert NetworkConfig(**other.to_dict()) == other  # what a checkpoint records


def test_coordinate_channels_reach_mask_head_and_convlstm():
    head = AttentionHead(tiny_config(coords=True))
    assert head.mask.layers[0].in_channels == 8 + 2
    assert head.recurrent.gates.in_channels == 8 + 2 + 6
    from stviz.core.network import _coordinates

    grid = _coordinates(torch.zeros(1, 3, 2, 3))
    assert torch.equal(grid[0, 0], torch.tensor([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]))
    assert torch.equal(grid[0, 1], torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    # Position is visible: one feature vector copied everywhere gives a mask that varies.
    torch.manual_seed(0)
    out = head.eval()(torch.randn(1, 1, 32, 1, 1).expand(1, 2, 32, 5, 5).contiguous())
    assert out.masks[0, 0, 2].std() > 1e-4


def test_mask_weighted_pooling_is_hand_computed():
    head = AttentionHead(tiny_config(spatial_pooling="mask"))
    x = torch.arange(8.0).reshape(1, 1, 2, 2, 2)  # channel 0: 0 1 2 3, channel 1: 4 5 6 7
    m = torch.tensor([1.0, 0.0, 0.5, 0.0]).reshape(1, 1, 1, 2, 2)
    pooled = head._pool(x, m)
    assert torch.allclose(pooled, torch.tensor([[[(0 + 0.5 * 2) / 1.6, (4 + 0.5 * 6) / 1.6]]]))
    assert torch.allclose(AttentionHead(tiny_config())._pool(x, m), torch.tensor([[[1.5, 5.5]]]))


def test_mask_weighted_pooling_ignores_what_the_mask_closes():
    """Without a recurrence (whose 3x3 kernel would look at neighbours), features where
    M = 0 cannot change the prediction: only what the mask selects is classified."""
    torch.manual_seed(0)
    head = AttentionHead(tiny_config(spatial_pooling="mask", recurrent="none")).eval()
    last = head.mask.layers[-1]
    torch.nn.init.zeros_(last.weight)
    with torch.no_grad():
        last.bias.fill_(-60.0)  # closed everywhere ...
    open_cell = torch.full((1, 1, 4, 4), -60.0)
    open_cell[..., 1, 2] = 60.0  # ... but one cell
    head.mask.forward = lambda x: open_cell.expand(x.shape[0], 1, 4, 4)
    x = torch.randn(1, 3, 32, 4, 4)
    y = x.clone()
    y[..., 0, :] += 5.0  # change every cell of the first row
    a, b = head(x), head(y)
    assert torch.allclose(a.logits, b.logits, atol=1e-5)
    c = x.clone()
    c[..., 1, 2] += 5.0
    assert not torch.allclose(a.logits, head(c).logits, atol=1e-3)


def test_delta_attention_sees_change_not_state():
    from stviz.core.network import _change

    seq = torch.tensor([[1.0, 3.0, 3.0, 7.0]]).unsqueeze(-1)
    assert torch.equal(_change(seq).squeeze(-1), torch.tensor([[0.0, 2.0, 0.0, 4.0]]))
    # A clip that never changes gives no change to attend to: uniform weights.
    head = AttentionHead(tiny_config(temporal_input="delta", recurrent="none")).eval()
    still = torch.randn(1, 1, 32, 3, 3).expand(2, 5, 32, 3, 3)
    out = head(still)
    assert torch.allclose(out.weights, torch.full((2, 5), 0.2))
    assert torch.allclose(out.logits, head.classifier.bias.expand(2, -1))


@pytest.mark.parametrize("switches", [{"coords": True}, {"spatial_pooling": "mask"},
                                      {"temporal_input": "delta"},
                                      {"coords": True, "spatial_pooling": "mask",
                                       "temporal_input": "delta"},
                                      {"spatial_pooling": "mask", "temporal_input": "rectified",
                                       "attention_source": "input-change",
                                       "classifier_hidden": 16}])
def test_switched_heads_train(switches):
    torch.manual_seed(0)
    head = AttentionHead(tiny_config(**switches))
    out = head(torch.randn(2, 4, 32, 3, 3))
    assert torch.allclose(out.weights.sum(1), torch.ones(2)) and torch.isfinite(out.logits).all()
    out.logits.sum().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_window_scorer_sees_only_its_window_and_a_still_clip_is_uniform():
    torch.manual_seed(0)
    head = AttentionHead(tiny_config(attention_window=3, spatial_pooling="mask",
                                     recurrent="none", temporal_input="delta")).eval()
    assert head.attention is not None and head.scorer is not None
    still = torch.randn(1, 1, 32, 3, 3).expand(1, 7, 32, 3, 3).contiguous()
    assert torch.allclose(head(still).weights, torch.full((1, 7), 1 / 7), atol=1e-6)
    pooled = torch.randn(1, 9, 8)
    moved = pooled.clone()
    moved[0, 4] += 3.0 * torch.randn(8)  # not a constant shift, which LayerNorm removes
    changed = (head.scorer(pooled) - head.scorer(moved)).abs()[0] > 1e-6
    assert changed.tolist() == [False, False, False, True, True, True, False, False, False]
    with pytest.raises(ValueError, match="odd"):
        tiny_config(attention_window=2)
    with pytest.raises(ValueError, match="pooling='attention'"):
        tiny_config(attention_window=3, pooling="mean")
    assert not tiny_config(attention_window=3).is_paper


def paired_weights(features: torch.Tensor, **switch) -> tuple[torch.Tensor, torch.Tensor]:
    """beta of the paper's head and of the same weights with `switch` on."""
    plain = AttentionHead(tiny_config()).eval()
    switched = AttentionHead(tiny_config(**switch)).eval()
    switched.load_state_dict(plain.state_dict())
    return plain(features).weights, switched(features).weights


def test_attention_floor_mixes_in_the_uniform_weight_and_keeps_the_ranking():
    torch.manual_seed(0)
    a, b = paired_weights(torch.randn(2, 6, 32, 3, 3), attention_floor=0.25)
    assert torch.allclose(b, 0.75 * a + 0.25 / 6, atol=1e-6)
    assert torch.equal(a.argsort(1), b.argsort(1)) and (b >= 0.25 / 6 - 1e-7).all()
    with pytest.raises(ValueError, match="attention_floor"):
        tiny_config(attention_floor=1.0)


def test_tempered_floor_keeps_the_order_of_frames_a_uniform_floor_ties():
    torch.manual_seed(0)
    features = torch.randn(2, 6, 32, 3, 3)
    a, b = paired_weights(features, attention_floor=0.25, attention_floor_temperature=2.0)
    # the floor is beta at a 2x softer temperature: beta(tau=1) ** 0.5, renormalized
    soft = a.sqrt() / a.sqrt().sum(1, keepdim=True)
    assert torch.allclose(b, 0.75 * a + 0.25 * soft, atol=1e-6)
    assert torch.allclose(b.sum(1), torch.ones(2))
    # scores 40 apart: the uniform floor drops the lower frames' softmax share (ties them),
    # a tempered floor keeps them apart
    head = AttentionHead(tiny_config(attention_floor=0.2, attention_floor_temperature=8.0))
    uniform = AttentionHead(tiny_config(attention_floor=0.2))
    scores = torch.tensor([[0.0, 40.0, 10.0, 20.0, 5.0, 30.0]])
    for h in (head, uniform):
        h.attention.register_forward_hook(lambda m, i, o: scores.unsqueeze(-1))
    ranked = head.eval()(features[:1]).weights[0]
    tied = uniform.eval()(features[:1]).weights[0]
    assert torch.equal(ranked.argsort(), scores[0].argsort())
    assert len(set(tied.tolist())) < 6
    assert not tiny_config(attention_floor_temperature=1.0).is_paper
    with pytest.raises(ValueError, match="attention_floor_temperature"):
        tiny_config(attention_floor_temperature=-1.0)


def test_rectified_change_keeps_an_action_that_returns_to_rest():
    from stviz.core.network import _change

    pulse = torch.tensor([[0.0, 1.0, 3.0, 1.0, 0.0]]).reshape(1, 5, 1)  # (B, T, C)
    signed = _change(pulse)
    rect = _change(pulse, rectified=True)
    assert signed.sum() == 0  # up and down cancel ...
    assert torch.equal(rect[0, :, 0], torch.tensor([0.0, 1.0, 2.0, 0.0, 0.0]))
    assert torch.equal(rect[0, :, 1], torch.tensor([0.0, 0.0, 0.0, 2.0, 1.0]))
    assert rect.sum() == 6  # ... their rectified parts do not
    head = AttentionHead(tiny_config(temporal_input="rectified"))
    assert head.classifier.in_features == 2 * 6 and head.attention.in_features == 2 * 6
    out = head(torch.randn(2, 4, 32, 3, 3))
    assert out.logits.shape == (2, 5) and torch.allclose(out.weights.sum(1), torch.ones(2))


def test_input_change_attention_is_hand_computed_and_has_no_memory():
    """beta's score is w . pool_M_t([relu(x_t - x_{t-1}), relu(x_{t-1} - x_t)]) + b on the
    reduced input: frames that repeat their predecessor score alike, wherever they are."""
    head = AttentionHead(tiny_config(spatial_pooling="mask", attention_source="input-change"))
    head.eval()
    assert head.attention.in_features == 2 * 8
    assert not head.attention.weight.any()  # starts uniform; give it a score to check
    torch.nn.init.normal_(head.attention.weight)
    features = torch.randn(1, 6, 32, 3, 3)
    features[0, 3:] = features[0, 2]  # the clip stands still from frame 2 on
    out = head(features)
    x = head.reduce(features[0])  # (T, 8, 3, 3)
    m = out.masks[0].unsqueeze(1)  # (T, 1, 3, 3)
    d = x - torch.cat([x[:1], x[:-1]])
    rect = torch.cat([d.clamp_min(0), (-d).clamp_min(0)], 1)
    pooled = (rect * m).sum((2, 3)) / (m.sum((2, 3)) + 0.1)
    expected = torch.softmax(head.attention(pooled).squeeze(-1), 0)
    assert torch.allclose(out.weights[0], expected, atol=1e-6)
    still = out.weights[0, [0, 3, 4, 5]]
    assert torch.allclose(still, still[:1].expand(4), atol=1e-7)
    with pytest.raises(ValueError, match="attention_source"):
        tiny_config(attention_source="future")
    with pytest.raises(ValueError, match="pooling"):
        tiny_config(attention_source="input-change", pooling="mean")


def test_classifier_hidden_puts_a_nonlinearity_between_summary_and_logits():
    head = AttentionHead(tiny_config(classifier_hidden=16)).eval()
    assert [type(m).__name__ for m in head.classifier] == ["LayerNorm", "Linear", "GELU", "Linear"]
    assert head.classifier[1].in_features == 6 and head.classifier[3].out_features == 5
    out = head(torch.randn(2, 4, 32, 3, 3))
    assert out.logits.shape == (2, 5)
    with pytest.raises(ValueError, match="classifier_hidden"):
        tiny_config(classifier_hidden=-1)


def test_attention_temperature_sharpens_beta_and_keeps_the_ranking():
    torch.manual_seed(0)
    p, s = paired_weights(torch.randn(2, 5, 32, 3, 3), attention_temperature=0.25)
    logits = torch.log(p)  # softmax(z / tau) = softmax(log softmax(z) / tau), by hand
    assert torch.allclose(s, torch.softmax(logits / 0.25, dim=1), atol=1e-6)
    assert torch.equal(p.argsort(1), s.argsort(1))
    assert (s.max(1).values > p.max(1).values).all()
    with pytest.raises(ValueError, match="attention_temperature"):
        tiny_config(attention_temperature=0.0)
