"""Softmax cross-entropy from the logits (the training loss and the attacks' loss, eqs. 3-4), in the
three numerics modes of ``nn.numerics``, and the log-softmax it is built on.

``cross_entropy_forward(z, y) -> (C, cache)`` and ``cross_entropy_backward(dC, cache) -> dz`` follow
the layers' contract (``nn.layers``); ``cross_entropy_backward_scaled`` gives the stable mode's
direction and log-magnitude. z: (N, K) logits, y: (N,) integer labels.
"""
from __future__ import annotations

import numpy as np

from .backend import array_module
from .numerics import FORWARD_NUMERICS, check_numerics, exp_flushed

# ``log_normalise`` keeps the unshifted rounding a - (m + L) where it differs from the shift-first
# (a - m) - L by at most this many epsilons of the dtype (2^-16 in float32: always for |m| below
# ~512)
LSE_KEPT_ULPS = 128


def log_normalise(a):
    """a - logsumexp(a) along the last axis, and logsumexp(a):  (..., K) -> ((..., K), (..., 1)).

    logsumexp(a) = m + L with m = max_k a_k and L = log sum_k exp(a_k - m) in [0, log K]. Computed
    shift-first, (a - m) - L, so that a common offset of any size changes nothing: the offset m
    never meets L in one rounding. (a - (m + L) loses L once |m| is large: a = (1e8, 1e8) in float32
    gives (0, 0) for (-log 2, -log 2).) Where the rounding of m + L moves L by at most
    ``LSE_KEPT_ULPS`` epsilons (in float32 always for |m| below ~512), the unshifted a - (m + L) is
    returned instead: the two differ there in the last bits only, and every number recorded before
    (RESULTS.md, tests/golden.json) was computed with it. The second value is m + L, rounded. A
    row's maximum must be finite; its -inf entries give -inf.
    """
    xp = array_module(a)
    m = a.max(axis=-1, keepdims=True)  # (..., 1)
    L = xp.log(xp.exp(a - m).sum(axis=-1, keepdims=True))  # (..., 1), in [0, log K]
    lse = m + L
    # m + L lost (almost) nothing of L
    kept = xp.abs((lse - m) - L) <= LSE_KEPT_ULPS * np.finfo(a.dtype).eps
    return xp.where(kept, a - lse, (a - m) - L), lse


def log_softmax(z):
    """log p_k = z_k - logsumexp(z) (``log_normalise``: a common offset of the logits changes
    nothing).

    z: (N, K) -> (N, K). Stable for any finite logits: no exp ever overflows. In float32 p_y =
    exp(log p_y) rounds to exactly 1 once the other classes' exp(z_j - z_y) vanish next to 1 in
    their sum (one runner-up: a margin of 16.64, ``nn.numerics.P_Y_ONE_MARGIN``), as TensorFlow's
    p_y = 1 / (1 + sum_j e^(z_j - z_y)) does. Where the unshifted rounding is kept, L also vanishes
    in the rounding of z_y + L once it is below half an ulp of the top logit z_y: logits (d, 0) from
    d = 14.44 on, and at top logits of 500 and more from d = 11.09 on (L below 2^-16,
    ``LSE_KEPT_ULPS``).
    """
    return log_normalise(z)[0]


def softmax(z):
    """p = exp(log_softmax(z)), shift-first (``log_normalise``): a common offset of the
    logits, however large, changes nothing.  z: (N, K) -> (N, K)."""
    return array_module(z).exp(log_softmax(z))


def log_softmax_stable(z):
    """log p_k = z_k - m - log1p(s), s = sum_{k != k*} exp(z_k - m), m = z_{k*} = max_k z_k.

    z: (N, K) -> (N, K). The same value as ``log_softmax``, but the largest class's log-probability
    -log1p(s) keeps its tiny size instead of rounding to exactly 0 where 1 + s rounds to 1
    (s <= 2^-24 in float32). Shift-first, (z - m) - log1p(s): a common offset changes nothing.
    """
    xp = array_module(z)
    k = z.argmax(axis=-1)[..., None]
    m = xp.take_along_axis(z, k, axis=-1)
    # the maximum's exp(0) = 1 left out
    e = xp.where(xp.arange(z.shape[-1]) == k, 0.0, xp.exp(z - m))
    return z - m - xp.log1p(e.sum(axis=-1, keepdims=True))


def cross_entropy_forward(z, y, numerics="float32"):
    """Per-example cross-entropy C_n = -log p_{y_n}(x_n) = logsumexp(z_n) - z_{n, y_n}.

    z: (N, K) logits, y: (N,) integer labels  ->  C: (N,); the cache is (log p, y).
    ``numerics`` (``nn.numerics``): "paper" and "float32" use ``log_softmax``, whose cache
    ``cross_entropy_backward`` takes; "stable" uses ``log_softmax_stable``, whose C_n stays nonzero
    (~s) for a confident correct network, and whose cache ``cross_entropy_backward_scaled`` takes.
    """
    xp = array_module(z)
    logp = log_softmax_stable(z) if check_numerics(numerics) == "stable" else log_softmax(z)
    return -xp.take_along_axis(logp, y[:, None], axis=1)[:, 0], (logp, y)


def cross_entropy_backward(dC, cache, numerics="float32"):
    """dL/dz = dC[:, None] * (p - onehot(y)).   dC: (N,) upstream gradient of each C_n.

    ``numerics``: "float32", or "paper", where p is flushed to zero below float32's smallest normal
    number (TensorFlow's flush-to-zero; ``nn.numerics.exp_flushed``, deciding from log p); the
    stable mode's is ``cross_entropy_backward_scaled``.
    float32 facts (``nn.numerics``): p_y rounds to exactly 1 for a confident network (a margin of
    16.64 over a single runner-up, ``log_softmax``), so the true class's entry p_y - 1 is exactly 0;
    the other entries p_j = exp(log p_j) stay tiny but nonzero until they underflow to 0 too and the
    whole gradient vanishes: at log p_j < -103.97 (``EXP_UNDERFLOW``), or already below the smallest
    normal number, log p_j < -87.34, in the paper's mode.
    """
    xp = array_module(dC)
    logp, y = cache
    paper = check_numerics(numerics, FORWARD_NUMERICS,
                           "numerics (cross_entropy_backward)") == "paper"
    g = exp_flushed(logp) if paper else xp.exp(logp)  # p: (N, K); flushed deciding from log p
    g[xp.arange(y.shape[0]), y] -= 1
    return g * dC[:, None]


def cross_entropy_backward_scaled(cache):
    """dC_n/dz_n = p_n - onehot(y_n) in scaled form, for every margin: -> (d (N, K), log_scale (N,))
    with dC_n/dz_n = exp(log_scale_n) d_n and max_k |d_{n,k}| = 1.

    With the cache of ``cross_entropy_forward(..., numerics="stable")``: the entries are p_j
    (j != y) and -(1 - p_y) = -sum_{j != y} p_j. The largest magnitude is 1 - p_y, with
    log(1 - p_y) = logsumexp_{j != y} log p_j; dividing by it gives d_y = -1 and
    d_j = exp(log p_j - log(1 - p_y)), computed shift-first (``log_normalise``), so nothing
    underflows however confident the network is (in float32, p_j itself is 0 once log p_j < -103.97)
    and the log p_j keep their ratios however far below 0 they lie.
    """
    xp = array_module(cache[0])
    logp, y = cache
    true = xp.arange(logp.shape[1]) == y[:, None]  # (N, K)
    other = xp.where(true, -xp.inf, logp)  # log p_j, j != y; a finite maximum for K >= 2
    # log(p_j / (1 - p_y)): (N, K);  log(1 - p_y): (N, 1)
    log_share, log_rest = log_normalise(other)
    d = xp.where(true, -1.0, xp.exp(log_share)).astype(logp.dtype)
    return d, log_rest[:, 0]
