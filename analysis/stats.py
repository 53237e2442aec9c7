"""Section 5: weight and activation statistics.

* ``excess_kurtosis``: gamma_2 = m_4 / m_2^2 - 3 (0 for a Gaussian, 3 for a Laplace distribution).
* ``histogram``: counts on shared bin edges, so vanilla and saturated layers can be overlaid.
* ``saturated_fraction`` (re-exported from ``nn.penalty``): the threshold that says a unit is
  saturated; sigmoid: |h| > 15.9, where sigma'(h) < 2^-23 (float32 resolution at 1); ReLU: h <= 0.
"""
from __future__ import annotations

import numpy as np

from nn.backend import to_host
from nn.penalty import saturated_fraction  # noqa: F401  (the definition used in the reports)


def excess_kurtosis(w):
    """gamma_2 = m_4 / m_2^2 - 3 with central moments m_k = mean (w - mean w)^k (the population,
    i.e. biased, estimator; its bias is O(1/n), negligible for a layer's ~10^5-10^6 weights).

    w: any shape, numpy or cupy  ->  float. Computed in float64 on the host.
    """
    w = to_host(w, np.float64).ravel()
    if w.size < 2:
        raise ValueError(f"kurtosis needs at least 2 values, got {w.size}")
    d = w - w.mean()
    m2 = (d ** 2).mean()
    if m2 == 0:
        raise ValueError("kurtosis of constant values is undefined")
    return float((d ** 4).mean() / m2 ** 2 - 3.0)


def histogram(values, edges):
    """Counts of ``values`` (any shape, numpy or cupy) in the bins ``edges`` (B + 1,); values
    outside the range are clipped into the end bins so that every value is counted.  -> (B,)
    int64."""
    v = np.clip(to_host(values, np.float64).ravel(), edges[0], edges[-1])
    return np.histogram(v, bins=edges)[0]


def weight_layers(model):
    """The weight arrays W^l of the weight layers, in order: list of (layer index, W)."""
    return [(i, p["W"]) for i, p in enumerate(model.params) if "W" in p]
