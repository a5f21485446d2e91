"""The paper's regularizers against values computed by hand."""

import math

import pytest
import torch

from stviz.core.losses import LossWeights, contrast_loss, total_loss, tv_loss, unimodal_loss


def test_tv_of_constant_mask_is_zero():
    assert tv_loss(torch.full((2, 3, 4, 4), 0.7)).item() == 0.0


def test_tv_hand_computed():
    # one clip, one frame [[0, 1], [0, 1]]: horizontal steps 1 + 1, vertical steps 0 + 0
    m = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    assert tv_loss(m).item() == pytest.approx(2.0)
    # batch mean: a second, constant clip halves it
    assert tv_loss(torch.cat([m, torch.zeros_like(m)])).item() == pytest.approx(1.0)


def test_contrast_is_the_model_md_formula():
    # M = [0.2, 0.8]: 0.5 * 0.2 (below 0.5) - 0.5 * 0.8 (above) = -0.3
    m = torch.tensor([[[[0.2, 0.8]]]])
    assert contrast_loss(m).item() == pytest.approx(-0.3)
    # exactly 0.5 counts as "not above": +0.25
    assert contrast_loss(torch.tensor([[[[0.5]]]])).item() == pytest.approx(0.25)


def test_unimodal_beta_gives_zero():
    beta = torch.tensor([[0.1, 0.2, 0.4, 0.2, 0.1]])
    assert unimodal_loss(beta).item() == 0.0


def test_bimodal_beta_gives_hand_computed_positive_loss():
    # interior t=1: beta0*beta2 - beta1^2 = 0.16 - 0.01 = 0.15 -> sqrt(0.15)
    beta = torch.tensor([[0.4, 0.1, 0.4]])
    assert unimodal_loss(beta).item() == pytest.approx(math.sqrt(0.15), rel=1e-5)
    # two peaks in five steps: only t=2 violates: (0.3*0.3 - 0.05^2) -> sqrt / 3 interior steps
    beta = torch.tensor([[0.15, 0.3, 0.05, 0.3, 0.2]])
    expected = math.sqrt(0.3 * 0.3 - 0.05**2) / 3
    assert unimodal_loss(beta).item() == pytest.approx(expected, rel=1e-5)


def test_unimodal_gradient_is_finite_at_zero_violation():
    beta = torch.tensor([[0.2, 0.2, 0.2, 0.2, 0.2]], requires_grad=True)
    unimodal_loss(beta).backward()
    assert torch.isfinite(beta.grad).all()


def test_total_loss_combines_terms_with_reference_weights():
    logits = torch.tensor([[2.0, 0.0]])
    masks = torch.tensor([[[[0.2, 0.8]]]])
    beta = torch.tensor([[0.4, 0.1, 0.4]])
    terms = total_loss(logits, masks, beta, torch.tensor([0]), LossWeights())
    ce = math.log(1 + math.exp(-2.0))
    expected = ce + 1e-5 * 0.6 + 1e-4 * -0.3 + 1.0 * math.sqrt(0.15)
    assert terms["loss"].item() == pytest.approx(expected, rel=1e-5)


def test_area_prior_charges_only_above_its_target():
    from stviz.core.losses import area_loss

    masks = torch.zeros(2, 2, 2, 2)
    masks[0, :, 0, :] = 1.0  # clip 0 covers half its cells
    masks[1, 0, 0, 0] = 1.0  # clip 1 covers 1/8
    assert torch.isclose(area_loss(masks, 0.25), torch.tensor((0.5 - 0.25 + 0.0) / 2))
    assert area_loss(masks, 0.5) == 0
    lw = LossWeights(tv=0, contrast=0, unimodal=0, area=2.0, area_target=0.25)
    terms = total_loss(torch.zeros(2, 3), masks, torch.full((2, 4), 0.25),
                       torch.tensor([0, 1]), lw)
    assert torch.isclose(terms["loss"], terms["ce"] + 2.0 * 0.125)


def test_tv_time_is_the_hand_computed_change_between_frames():
    from stviz.core.losses import tv_time_loss

    masks = torch.zeros(1, 3, 2, 2)
    masks[0, 0, 0, 0] = 1.0  # the open cell moves: (0,0) -> (1,1) -> (1,1)
    masks[0, 1, 1, 1] = 1.0
    masks[0, 2, 1, 1] = 0.5
    assert torch.isclose(tv_time_loss(masks), torch.tensor(2.0 + 0.5))
    assert tv_time_loss(torch.ones(2, 4, 3, 3)) == 0


def test_entropy_is_one_for_uniform_weights_and_zero_for_one_frame():
    from stviz.core.losses import entropy_loss

    assert torch.isclose(entropy_loss(torch.full((3, 8), 1 / 8)), torch.tensor(1.0))
    assert entropy_loss(torch.eye(4)) == 0
    two = torch.tensor([[0.5, 0.5, 0.0, 0.0]])  # log 2 / log 4, by hand
    assert torch.isclose(entropy_loss(two), torch.tensor(0.5))
