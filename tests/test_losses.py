"""`cskd_hf.losses`: the EMD (eq. 2), the cosine alignment loss (eq. 1) and the SKD loss (eqs. 3 to 5), against
hand computations and scipy."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from cskd_hf.losses import cosine_alignment_loss, earth_movers_distance, skd_loss


def test_emd_matches_hand_computation_of_eq2():
    predicted = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    target = torch.tensor([[0.0, 0.5, 0.5], [0.2, 0.3, 0.5]])
    # Row 0: CDFs [.5, 1, 1] and [0, .5, 1] differ by [.5, .5, 0]; sqrt((.25 + .25 + 0) / 3).
    expected = torch.tensor([math.sqrt(0.5 / 3), 0.0])
    torch.testing.assert_close(earth_movers_distance(predicted, target), expected, atol=1e-6, rtol=0)
    # r = 1: mean absolute CDF difference; r = 3: cube root of the mean cube.
    torch.testing.assert_close(earth_movers_distance(predicted[:1], target[:1], r=1), torch.tensor([1 / 3]))
    torch.testing.assert_close(
        earth_movers_distance(predicted[:1], target[:1], r=3), torch.tensor([(0.25 / 3) ** (1 / 3)])
    )


def test_emd_with_r1_equals_scipy_wasserstein_on_unit_spaced_bins():
    rng = np.random.default_rng(0)
    predicted = rng.dirichlet(np.ones(10), size=16)
    target = rng.dirichlet(np.ones(10), size=16)
    bins = np.arange(1, 11)
    ours = earth_movers_distance(torch.from_numpy(predicted), torch.from_numpy(target), r=1).numpy()
    # scipy sums |CDF difference| times the bin spacing (1); eq. 2 averages over the d bins.
    reference = [wasserstein_distance(bins, bins, p, q) / len(bins) for p, q in zip(predicted, target)]
    np.testing.assert_allclose(ours, reference, rtol=1e-10)


def test_emd_gradient_is_finite_for_identical_distributions():
    logits = torch.randn(4, 10, requires_grad=True)
    probabilities = logits.softmax(-1)
    earth_movers_distance(probabilities, probabilities.detach()).mean().backward()
    assert torch.isfinite(logits.grad).all()


def test_emd_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        earth_movers_distance(torch.ones(2, 10) / 10, torch.ones(2, 9) / 9)


def test_alignment_loss_matches_eq1():
    teacher = torch.tensor([[1.0, 0.0], [1.0, 0.0], [2.0, 3.0], [0.0, 0.0]])
    student = torch.tensor([[1.0, 1.0], [-3.0, 0.0], [4.0, 6.0], [1.0, 2.0]])
    expected = torch.tensor([1 - 1 / math.sqrt(2), 2.0, 0.0, 1.0])  # 45 degrees, opposite, parallel, zero vector
    torch.testing.assert_close(cosine_alignment_loss(teacher, student), expected, atol=1e-6, rtol=0)


def test_alignment_loss_eps_bounds_the_product_of_norms():
    # Norms 1e-5 each: the product 1e-10 is below eps = 1e-8, so the cosine is dot / eps, not 1.
    teacher = torch.tensor([[1e-5, 0.0]], dtype=torch.float64)
    student = torch.tensor([[1e-5, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(
        cosine_alignment_loss(teacher, student), torch.tensor([1 - 1e-10 / 1e-8], dtype=torch.float64)
    )


def emd_by_hand(p, q, r=2.0):
    """Eq. 2 written out with loops."""
    d = len(p)
    cdf_p = cdf_q = 0.0
    total = 0.0
    for i in range(d):
        cdf_p += p[i]
        cdf_q += q[i]
        total += abs(cdf_p - cdf_q) ** r
    return (total / d) ** (1 / r)


def test_skd_loss_is_eqs_3_to_5():
    rng = np.random.default_rng(0)
    num_labeled, mu, d, beta = 2, 3, 10, 15.0
    student = rng.dirichlet(np.ones(d), size=num_labeled * (1 + mu))
    teacher = rng.dirichlet(np.ones(d), size=num_labeled * (1 + mu))
    labels = rng.dirichlet(np.ones(d), size=num_labeled)

    loss_s = sum(emd_by_hand(student[j], labels[j]) for j in range(num_labeled)) / num_labeled  # eq. 4: labeled only
    loss_kd = sum(emd_by_hand(student[k], teacher[k]) for k in range(len(student))) / len(student)  # eq. 5: all
    expected = loss_s + beta * loss_kd  # eq. 3

    total, supervised, distillation = skd_loss(
        torch.from_numpy(student), torch.from_numpy(labels), torch.from_numpy(teacher), beta=beta
    )
    assert abs(supervised.item() - loss_s) < 1e-12
    assert abs(distillation.item() - loss_kd) < 1e-12
    assert abs(total.item() - expected) < 1e-10
