import numpy as np
import torch

from cskd_hf.losses import skd_loss


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
