"""When is a saturated network's float32 input gradient exactly zero? A prediction from depths and
margins, to check against the gradient itself (beyond the paper; the mechanism of Brendel & Bethge).

The paper's backward pass for an MLP multiplies, layer by layer, dC/dz = p - onehot(y), the weights,
and the activations' derivatives. In float32 a factor is exactly 0 where

* p_y rounds to 1 (a logit margin of 16.64 over a single runner-up, ``nn.softmax.log_softmax``), for
  the true class's entry p_y - 1;
* the paper's sigma'(h) = y (1 - y) has y rounded to 1 (from h = 16.64 on), or a ReLU unit is off
  (h <= 0);
* a product falls below the smallest representable number: 2^-149 (log -103.28), or the smallest
  normal 2^-126 (log -87.34) under TensorFlow's flush-to-zero (the paper's numerics). The thresholds
  are ``nn.numerics``'s.

``log_path_bound`` follows the backward pass in the max-plus algebra: instead of sum_j a_j W_ji it
keeps max_j (log|a_j| + log|W_ji|), the log-magnitude of the largest single path term, and it
applies the float32 rules above at every stage (a stage's entries below the floor become -inf, i.e.
exactly 0). An example whose bound is -inf at the input is *predicted* to have an exactly-zero
gradient. The prediction ignores sums of many sub-floor terms that reach the floor together and
cancellations; comparing it with the measured zero gradients says how far the two mechanisms
(margin, depth) explain them.
"""
from __future__ import annotations

import math

import numpy as np

from nn.architectures import mlp
from nn.backend import to_device, to_host
from nn.layers import sigmoid
from nn.model import Sequential
from nn.softmax import log_softmax_stable
from nn.numerics import (FORWARD_NUMERICS, LOG_SMALLEST_NORMAL, LOG_SMALLEST_SUBNORMAL,
                         check_numerics)
from nn.validate import InputError, check_batch


def _floor(a, floor):
    return np.where(a < floor, -np.inf, a)


def _maxplus(a, logW):
    """out[n, i] = max_j (a[n, j] + logW[j, i]) (the max-plus product).  a: (N, J), logW: (J, I).
    Computed over chunks of examples, each (chunk, J, I) at most ~2M values."""
    out = np.empty((a.shape[0], logW.shape[1]))
    chunk = max(1, 2_000_000 // logW.size)
    for s in range(0, a.shape[0], chunk):
        out[s:s + chunk] = (a[s:s + chunk, :, None] + logW[None]).max(axis=1)  # (n, J, I) -> (n, I)
    return out


def log_path_bound(model, x, y, numerics="paper", dtype=np.float32):
    """Per example, the log-magnitude of the largest single path term of the paper's float32 input
    gradient dC/dx, with every float32 zero applied (see the module docstring).

    model: an MLP (flatten, dense, sigmoid / relu, ..., dense); x: (N, 1, 28, 28), y: (N,) (host or
    device). numerics: "paper" (the floor is the smallest normal number, TensorFlow's flush-to-zero)
    or "float32" (the smallest subnormal). -> (N,) float64: -inf where the gradient is predicted to
    be exactly 0.
    """
    check_numerics(numerics, FORWARD_NUMERICS)
    layers = model.spec["layers"]
    if any(layer["type"] not in ("flatten", "dense", "sigmoid", "relu") for layer in layers):
        raise InputError("log_path_bound handles MLPs (flatten, dense, sigmoid, relu) only")
    check_batch(model, x, to_device(y, model.xp), unit_range=False)
    floor = LOG_SMALLEST_NORMAL if numerics == "paper" else LOG_SMALLEST_SUBNORMAL
    logits, _, hs = model.forward(x)
    z = to_host(logits, np.float64)
    y = to_host(y)
    hs = [to_host(h, np.float64) for h in hs]
    # dC/dz: log p_j for j != y; the true class's entry is exactly 0 once p_y rounds to 1
    logp = log_softmax_stable(z)
    rows = np.arange(len(z))
    a = logp.copy()
    one_minus = np.log(-np.expm1(logp[rows, y]))  # log(1 - p_y)
    p_y = np.exp(logp[rows, y]).astype(dtype)
    a[rows, y] = np.where(p_y == 1, -np.inf, one_minus)
    a = _floor(a, floor)
    dense = [i for i, layer in enumerate(layers) if layer["type"] == "dense"]
    h_of = dict(zip(dense, hs))  # layer index -> its pre-activation
    with np.errstate(divide="ignore"):
        for i in range(len(layers) - 1, -1, -1):
            t = layers[i]["type"]
            if t == "dense":
                W = to_host(model.params[i]["W"], np.float64)  # (out, in)
                a = _floor(_maxplus(a, np.log(np.abs(W))), floor)
            elif t == "sigmoid":
                # the paper's rounded sigma
                s = sigmoid(h_of[i - 1].astype(dtype)).astype(np.float64)
                a = _floor(a + np.log(s) + np.log1p(-s), floor)  # log y (1 - y): -inf where y = 1
            elif t == "relu":
                a = np.where(h_of[i - 1] > 0, a, -np.inf)
    return a.max(axis=1)


def margin_predicts_zero(model, x, y, numerics="paper"):
    """The one-number prediction: the gradient is exactly 0 when every p_j (j != y) is below the
    floor, i.e. log p_j < log(2^-126) ("paper", flush-to-zero) or log(2^-149) ("float32") for every
    j != y. -> (N,) bool."""
    check_numerics(numerics, FORWARD_NUMERICS)
    check_batch(model, x, to_device(y, model.xp), unit_range=False)
    logits = to_host(model.logits(x), np.float64)
    logp = log_softmax_stable(logits)
    y = to_host(y)
    other = np.where(np.arange(logp.shape[1]) == y[:, None], -np.inf, logp)
    return other.max(axis=1) < (LOG_SMALLEST_NORMAL if numerics == "paper"
                                else LOG_SMALLEST_SUBNORMAL)


def saturated_sigmoid_mlp(x, hidden=200, lo=60.0, hi=1000.0, seed=0):
    """A synthetic 784-H-H-10 sigmoid MLP deep in saturation, for timing and testing the float32
    zeros without training one: each unit's weights and bias (a ``Sequential.init`` draw) scaled so
    that the median of its |h| over the images x (N, 1, 28, 28) is log-uniform in [lo, hi]. Its
    sigma'(h) = y (1 - y) is then exactly 0 in float32 wherever |h| > 16.64 (y rounds to 1) or
    y (1 - y) < 2^-149. -> Sequential (float32)."""
    model, rng, a = (Sequential.init(mlp("sigmoid", hidden=hidden), seed=seed),
                     np.random.default_rng(seed), x)
    for p in model.params[1::2]:  # the dense layers
        h = a.reshape(len(a), -1) @ p["W"].T + p["b"]  # (N, n_out)
        c = (np.exp(rng.uniform(math.log(lo), math.log(hi), h.shape[1])).astype(np.float32)
             / np.median(abs(h), 0))
        p["W"] *= c[:, None]
        p["b"] *= c
        a = sigmoid(h * c)
    return model
