"""Section 8, Figure 6: how heavy-tailed (kurtotic) weights protect even a linear classifier.

A linear two-class read-out with templates w1, w2 (unit norm, D entries) scores the prototype
x = w1 with margin (w1 - w2) . w1 ~ ||w1||^2 (random templates are nearly orthogonal). The FGSM
perturbation eps sign(w2 - w1) lowers the margin by eps ||w2 - w1||_1, so the smallest eps that
flips the decision, in units of the typical input entry mean|w1|, is

    R = ||w1||^2 / (||w2 - w1||_1 * mean_i |w1_i|).

(The paper says "scaled by the mean |w1|"; we read it as this division, which makes R
dimensionless.) For Gaussian entries R -> pi / (2 sqrt 2) ~ 1.11 as D grows; heavier tails at the
same variance lower the mean absolute entry and raise R.

Pearson type VII entries with excess kurtosis gamma_2 > 0 are a scaled Student-t with
nu = 4 + 6 / gamma_2 degrees of freedom (density ~ (1 + x^2 / (nu s^2))^(-(nu + 1) / 2));
gamma_2 = 0 is the Gaussian limit.
"""
from __future__ import annotations

import numpy as np

from nn.backend import to_host


def pearson7_nu(gamma2):
    """Degrees of freedom nu = 4 + 6 / gamma_2 of the Student-t with excess kurtosis
    gamma_2 = 6 / (nu - 4)."""
    if gamma2 <= 0:
        raise ValueError(f"Pearson VII needs excess kurtosis > 0, got {gamma2} (0 is the Gaussian)")
    return 4.0 + 6.0 / gamma2


def sample_pearson7(gamma2, size, rng):
    """Exact samples with unit variance and excess kurtosis gamma_2: t_nu * sqrt((nu - 2) / nu),
    nu = 4 + 6 / gamma_2 (variance of t_nu is nu / (nu - 2)); standard normal for gamma_2 = 0."""
    if gamma2 == 0:
        return rng.standard_normal(size)
    nu = pearson7_nu(gamma2)
    return rng.standard_t(nu, size) * np.sqrt((nu - 2.0) / nu)


def empirical_sampler(weights):
    """Inverse-transform sampling from the empirical distribution of ``weights`` (e.g. a layer's W):
    u ~ U(0, 1) mapped through the linearly interpolated quantile function of the sorted weights.
    -> sample(size, rng)."""
    w = np.sort(to_host(weights, np.float64).ravel())
    levels = (np.arange(w.size) + 0.5) / w.size

    def sample(size, rng):
        return np.interp(rng.uniform(0.0, 1.0, size), levels, w)
    return sample


def unit_rows(w):
    """Each row scaled to unit L2 norm.  (M, D) -> (M, D)."""
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def robustness_ratio(w1, w2):
    """R = ||w1||^2 / (||w2 - w1||_1 * mean|w1|) per row (see the module docstring).
    (M, D) -> (M,)."""
    return (w1 ** 2).sum(axis=1) / (np.abs(w2 - w1).sum(axis=1) * np.abs(w1).mean(axis=1))


def ratio_statistics(sample, dim=20000, draws=100, seed=0):
    """R for ``draws`` pairs of independent unit-norm vectors with entries from
    ``sample(size, rng)``. -> (mean, standard deviation) over the draws."""
    rng = np.random.default_rng(seed)
    w1 = unit_rows(sample((draws, dim), rng))
    w2 = unit_rows(sample((draws, dim), rng))
    r = robustness_ratio(w1, w2)
    return float(r.mean()), float(r.std(ddof=1))
