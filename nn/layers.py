"""Layers as forward/backward pairs (no autodiff).

Each ``*_forward`` returns ``(out, cache)``: its output and exactly what the backward needs. Layers
with parameters have two backward halves:

* ``*_vjp(dout, cache) -> dx``: the input gradient (a vector-Jacobian product). ``dout`` may carry
  extra *leading* axes ``(K, ..., N, ...)``: the model's Jacobian pushes K cotangents through the
  network in one pass this way (``nn.model.jacobian``).
* ``*_param_grads(dout, cache) -> dict``: the parameter gradients, for ``dout`` of the forward's
  output shape only.

``*_backward`` returns both, as in cs231n's ``affine_backward``. Parameter-free layers have a single
``*_backward(dout, cache) -> dx`` that also accepts leading cotangent axes.

Conventions (external tools read our weights): Dense ``W`` is ``(n_out, n_in)`` as the paper's
``W^l``; Conv2D ``W`` is ``(out_ch, in_ch, kh, kw)``; images are NCHW; Flatten orders features
``(C, H, W)``.

Ties and kinks, decided on purpose:

* ReLU at exactly 0 has derivative 0 (the unit is treated as off).
* MaxPool2D sends a window's gradient to one maximum only: the *first* in row-major order within
  the 2x2 window (top-left, top-right, bottom-left, bottom-right), the same rule as ``argmax`` on
  numpy and cupy. MNIST's flat zero background makes such ties common.
"""
from __future__ import annotations

import math

import numpy as np

from .backend import array_module
from .numerics import FORWARD_NUMERICS, check_numerics, exp_flushed, log_sigmoid_prime
from .conv import (conv2d_backward, conv2d_forward, conv2d_param_grads, conv2d_vjp,  # noqa: F401
                   col2im, im2col)

# ---------------------------------------------------------------------------------------------
# Dense


def dense_forward(x, W, b):
    """h = W x + b  (eq. 1, the paper's pre-activation h^l).

    x: (N, n_in)  W: (n_out, n_in)  b: (n_out,)  ->  h: (N, n_out)
    """
    h = x @ W.T
    h += b
    return h, (x, W)


def dense_vjp(dh, cache):
    """dL/dx = dh W.   dh: (..., N, n_out) -> dx: (..., N, n_in)."""
    _, W = cache
    return dh @ W


def dense_param_grads(dh, cache):
    """dL/dW = dh^T x  (n_out, n_in),  dL/db = sum_n dh  (n_out,)."""
    x, _ = cache
    return {"W": dh.T @ x, "b": dh.sum(axis=0)}


def dense_backward(dh, cache):
    """(dx, {'W': dW, 'b': db}) of ``dense_forward``."""
    return dense_vjp(dh, cache), dense_param_grads(dh, cache)


# ---------------------------------------------------------------------------------------------
# MaxPool2D: 2x2 windows, stride 2


WINDOW = ((0, 0), (0, 1), (1, 0), (1, 1))  # row-major order within a 2x2 window


def maxpool2d_forward(x):
    """y[n, c, p, q] = max over the 2x2 window (2p..2p+1, 2q..2q+1) of x[n, c].

    x: (N, C, H, W) with H, W even  ->  y: (N, C, H/2, W/2).
    The four window positions are strided views x[..., i::2, j::2] (no copy). The cache is four
    boolean masks of y's shape, one per position, true where that position is the window's *first*
    maximum in row-major order (see the module docstring for why ties need a rule).
    """
    xp = array_module(x)
    H, W = x.shape[-2:]
    if H % 2 or W % 2:
        raise ValueError(f"maxpool2d needs even spatial sizes, got {H}x{W}")
    a, b, c, d = (x[..., i::2, j::2] for i, j in WINDOW)
    y = xp.maximum(xp.maximum(a, b), xp.maximum(c, d))
    ka = a == y
    kb = (b == y) & ~ka
    kc = (c == y) & ~(ka | kb)
    kd = ~(ka | kb | kc)
    return y, (ka, kb, kc, kd)


def maxpool2d_backward(dy, masks):
    """dL/dx[..., 2p+i, 2q+j] = dy[..., p, q] * mask_ij[p, q].

    dy: (..., N, C, H/2, W/2) -> dx: (..., N, C, H, W). The windows tile x, so each entry of dx is
    written exactly once. dx is laid out batch-innermost in memory, (C, H, W, ..., N), like the
    convolution's output, with any leading cotangent axes beside the batch: the next convolution's
    gradient then folds (..., N) into one batch axis and reaches its matrix layout by free reshapes.
    """
    xp = array_module(dy)
    *lead, N, C, h, w = dy.shape
    k = len(lead)
    to_memory = (k + 1, k + 2, k + 3, *range(k), k)  # (..., N, C, h, w) -> (C, h, w, ..., N)
    to_logical = (*range(3, 3 + k), 3 + k, 0, 1, 2)  # and back
    dy = xp.ascontiguousarray(dy.transpose(to_memory)).transpose(to_logical)
    # (..., N, C, H, W)
    dx = xp.empty((C, 2 * h, 2 * w, *lead, N), dtype=dy.dtype).transpose(to_logical)
    for (i, j), m in zip(WINDOW, masks):
        xp.multiply(dy, m, out=dx[..., i::2, j::2])
    return dx


def relu_maxpool2d_forward(h):
    """y = maxpool(relu(h)) computed as relu(maxpool(h)) on a quarter of the values.

    h: (N, C, H, W) -> y: (N, C, H/2, W/2). Both are monotone, so they commute: the window's maximum
    of relu(h) is relu of its maximum of h. The cache is ``maxpool2d_forward``'s four masks, each
    and-ed with (max > 0), for ``relu_maxpool2d_backward``. ``nn.model`` runs every ReLU that a
    max-pool follows as this one layer.
    """
    y, masks = maxpool2d_forward(h)
    on = y > 0  # (N, C, H/2, W/2)
    return y * on, tuple(m & on for m in masks)


def relu_maxpool2d_backward(dy, masks):
    """dL/dh of ``relu_maxpool2d_forward``: ``maxpool2d_backward`` with its masks, which hold the
    ReLU's 1[max > 0] too. The same gradient, tie for tie, as ``relu_backward`` after
    ``maxpool2d_backward`` (a window whose maximum is <= 0 passes nothing back: every relu(h) in it
    is 0 with derivative 0, as ``relu_forward`` decides at 0).  dy: (..., N, C, H/2, W/2) -> (...,
    N, C, H, W).
    """
    return maxpool2d_backward(dy, masks)


# ---------------------------------------------------------------------------------------------
# Flatten


def flatten_forward(x):
    """(N, C, H, W) -> (N, C*H*W), features ordered (C, H, W)."""
    return x.reshape(x.shape[0], math.prod(x.shape[1:])), x.shape  # not -1: N may be 0


def flatten_backward(dy, x_shape):
    """(..., N, C*H*W) -> (..., N, C, H, W)."""
    return dy.reshape(dy.shape[:-1] + tuple(x_shape[1:]))


# ---------------------------------------------------------------------------------------------
# Activations


def sigmoid(h, numerics="float32"):
    """sigma(h) = 1 / (1 + exp(-h)), computed from e = exp(-|h|) so it never overflows:
    sigma(h) = 1 / (1 + e) for h >= 0 and e / (1 + e) for h < 0.

    float32 facts central to the paper (``nn.numerics``): sigma(h) is exactly 1.0 once 1 + e rounds
    to 1, e <= 2^-24, i.e. from h = 24 ln 2 ~ 16.64 on (``SIGMOID_ONE``), while for negative h it
    stays a tiny positive number (~exp(h)) until h < -103.97 (``EXP_UNDERFLOW``).

    ``numerics="paper"``: sigma(h) flushed to zero, e = ``exp_flushed(-|h|)``, never asking exp for
    a subnormal. The same bits as ``flush_subnormals(sigmoid(h))``: where e would be subnormal,
    1 + e is 1 either way, and y = e / (1 + e) is that subnormal (flushed: 0) or 0 / 1 = 0; where e
    is normal, y = e / (1 + e) is normal too (it is e itself once 1 + e rounds to 1).
    """
    xp = array_module(h)
    a = -xp.abs(h)
    e = exp_flushed(a) if numerics == "paper" else xp.exp(a)
    return xp.where(h >= 0, 1.0, e) / (1.0 + e)


def sigmoid_forward(h, numerics="float32"):
    """y = sigma(h) (eq. 2).  h: any shape -> y: same shape; the cache is (h, y).

    ``numerics``: "float32" or "paper" (``nn.numerics``). "paper" flushes subnormals to zero, as
    TensorFlow computed it: y = e^h is subnormal in float32 for -103.97 < h < -87.34 and becomes
    exactly 0 there (``sigmoid(h, "paper")``, deciding from h), and so does the backward's y
    (1 - y).
    """
    y = sigmoid(h, check_numerics(numerics, FORWARD_NUMERICS))
    return y, (h, y)


def sigmoid_backward(dy, cache):
    """dL/dh = dy * sigma'(h) with sigma'(h) = y (1 - y), from the cached output as TensorFlow did.

    In float32 this is exactly 0 from h = 16.64 on (``nn.numerics.SIGMOID_ONE``: y rounds to 1, so
    1 - y = 0): the gradient vanishes numerically although the true derivative exp(-h) is still
    ~6e-8. That rounding is what makes saturated sigmoid networks look robust to gradient attacks
    (Brendel & Bethge 2017).
    """
    _, y = cache
    return dy * (y * (1 - y))


def sigmoid_backward_scaled(dy, cache, log_scale):
    """The sigmoid's backward in scaled form: dL/dh = exp(log_scale) * d with no factor
    underflowing.

    dy: (..., N, n) direction of the upstream gradient, log_scale: (..., N) its log-magnitude
    (dL/dy = exp(log_scale) dy). Each entry's log-magnitude log|dy| + log sigma'(h)
    (``nn.numerics.log_sigmoid_prime``) is shifted by its example's maximum M before exponentiating:
    -> (d, log_scale + M) with max |d| = 1 per example (0 where dy is all 0). Exact in direction for
    units at any |h|, in float32 as in float64.
    """
    h, _ = cache
    xp = array_module(h)
    with np.errstate(divide="ignore"):  # numpy's warning switch; cupy has none and does not warn
        a = xp.log(xp.abs(dy)) + log_sigmoid_prime(h)  # (..., N, n), -inf where dy == 0
    M = a.max(axis=-1)  # (..., N)
    M = xp.where(xp.isfinite(M), M, 0)
    return xp.sign(dy) * xp.exp(a - M[..., None]), log_scale + M


def relu_forward(h):
    """y = max(0, h).  The cache is the mask h > 0 (so relu'(0) = 0)."""
    mask = h > 0
    return h * mask, mask


def relu_backward(dy, mask):
    """dL/dh = dy * 1[h > 0]."""
    return dy * mask
