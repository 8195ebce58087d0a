import math

import pytest
import torch
import torch.nn.functional as F

from beyondgloss.losses import masked_l2_loss, masked_mean, soft_target_contrastive_loss, symmetric_contrastive_loss
from beyondgloss.testing import assert_same_math

# Each loss against its direct formula: the same math, in float64 on both sides (see assert_same_math).


def reference_kl_loss(logits, target_scale=10.0):
    """The reference's KLLoss: B * KLDivLoss(mean)(log_softmax(S), softmax(10 * I)), written out directly."""
    batch = logits.shape[0]
    targets = F.softmax(target_scale * torch.eye(batch, dtype=logits.dtype), dim=1)
    # reduction="mean" (element-wise over B x B) is what the reference's legacy size_average=True means.
    return batch * F.kl_div(F.log_softmax(logits, dim=1), targets, reduction="sum") / (batch * batch)


def kl_terms_scale(logits) -> float:
    """The size of the terms the KL loss sums, against which its round-off is measured: each row sums target
    probabilities (1 in all) times log-probabilities and log-targets, which are at most 2 max |logit| + log B and
    10 + log B in size. The loss itself can be far smaller (about 1e-6 when the logits nearly match the targets), so
    a bound relative to it alone fails on such draws."""
    batch = logits.shape[-1]
    return 2 * logits.detach().abs().max().item() + 10 + math.log(batch)


@pytest.mark.parametrize("batch", [1, 2, 5, 16])
def test_soft_target_loss_equals_reference_kl(batch):
    logits = torch.randn(batch, batch, dtype=torch.float64) * 5
    ours = soft_target_contrastive_loss(logits)
    assert_same_math(ours, reference_kl_loss(logits), scale=kl_terms_scale(logits), msg="loss")


def test_soft_target_loss_gradient_matches_reference():
    """Each gradient entry is a difference of two probabilities over the batch, so 1 / B is its terms' size."""
    logits = torch.randn(6, 6, dtype=torch.float64, requires_grad=True)
    soft_target_contrastive_loss(logits).backward()
    ours = logits.grad.clone()
    logits.grad = None
    reference_kl_loss(logits).backward()
    assert_same_math(ours, logits.grad, scale=1 / 6, msg="gradient")


def test_soft_target_loss_with_gathered_columns_matches_full_matrix():
    # Rows 2..3 of a 6x6 problem, seen by the process that holds those two samples.
    logits = torch.randn(6, 6, dtype=torch.float64)
    full_rows = torch.stack([soft_target_contrastive_loss(logits[i:i + 1], torch.tensor([i])) for i in range(6)])
    local = soft_target_contrastive_loss(logits[2:4], torch.tensor([2, 3]))
    assert_same_math(local, full_rows[2:4].mean(), scale=kl_terms_scale(logits), msg="local rows")
    assert_same_math(full_rows.mean(), soft_target_contrastive_loss(logits), scale=kl_terms_scale(logits),
                     msg="all rows")


def test_symmetric_loss_is_mean_of_both_directions():
    q = F.normalize(torch.randn(4, 8, dtype=torch.float64), dim=-1)
    k = F.normalize(torch.randn(4, 8, dtype=torch.float64), dim=-1)
    scale = torch.tensor(2.0, dtype=torch.float64)
    loss, logits = symmetric_contrastive_loss(q, k, scale)
    direct = 0.5 * (reference_kl_loss(scale.exp() * q @ k.t()) + reference_kl_loss(scale.exp() * k @ q.t()))
    assert_same_math(loss, direct, scale=kl_terms_scale(scale.exp() * q @ k.t()), msg="loss")
    assert_same_math(logits, scale.exp() * q @ k.t(), msg="logits")


def test_masked_l2_equals_formula():
    predictions, targets = torch.randn(2, 5, 3, dtype=torch.float64), torch.randn(2, 5, 3, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]])
    expected = sum(
        ((predictions[b, t] - targets[b, t]) ** 2).sum() for b in range(2) for t in range(5) if mask[b, t]
    ) / (3 * mask.sum())
    assert_same_math(masked_l2_loss(predictions, targets, mask), expected, msg="masked L2")
    assert masked_l2_loss(predictions, targets, torch.zeros(2, 5)).item() == 0.0


def test_masked_mean_ignores_padding():
    states = torch.randn(2, 4, 3, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = masked_mean(states, mask)
    assert_same_math(pooled[0], states[0, :2].mean(0), msg="padded row")
    assert_same_math(pooled[1], states[1].mean(0), msg="full row")
