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
from .numerics import FORWARD_NUMERICS, check_numerics, flush_subnormals, log_sigmoid_prime

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
# Conv2D: stride 1, "same" zero padding, through im2col


def _same_pad(kh, kw):
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"'same' padding needs odd kernel sizes, got {kh}x{kw}")
    return (kh - 1) // 2, (kw - 1) // 2


def im2col(x, kh, kw):
    """Patches of a zero-padded image batch, one column per output pixel.

    x: (N, C, H, W)  ->  cols: (C*kh*kw, H*W*N), row index (c, i, j), column index (y, x, n):
    cols[(c, i, j), (y, x, n)] = x_pad[n, c, y + i, x + j].

    Filled with kh*kw strided-slice copies (as Chainer does), identical on numpy and cupy. The batch
    is the *innermost* axis so that every copied run is W*N values long rather than W: on the CPU
    this makes im2col and col2im several times faster.
    """
    xp = array_module(x)
    N, C, H, W = x.shape
    ph, pw = _same_pad(kh, kw)
    xt = xp.zeros((C, H + 2 * ph, W + 2 * pw, N), dtype=x.dtype)  # (C, Hp, Wp, N)
    xt[:, ph:ph + H, pw:pw + W, :] = x.transpose(1, 2, 3, 0)
    cols = xp.empty((C, kh, kw, H, W, N), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xt[:, i:i + H, j:j + W, :]
    return cols.reshape(C * kh * kw, H * W * N)


def col2im(cols, x_shape, kh, kw):
    """Adjoint of ``im2col``: add every column entry back onto the pixel it was copied from.

    cols: (C*kh*kw, H*W*N)  ->  dx: (N, C, H, W) (a view of (C, H, W, N) memory).
    kh*kw strided ``+=`` on slices, no scatter.
    """
    xp = array_module(cols)
    N, C, H, W = x_shape
    ph, pw = _same_pad(kh, kw)
    cols = cols.reshape(C, kh, kw, H, W, N)
    dxt = xp.zeros((C, H + 2 * ph, W + 2 * pw, N), dtype=cols.dtype)  # (C, Hp, Wp, N)
    for i in range(kh):
        for j in range(kw):
            dxt[:, i:i + H, j:j + W, :] += cols[:, i, j]
    return dxt[:, ph:ph + H, pw:pw + W, :].transpose(3, 0, 1, 2)


def conv2d_forward(x, W, b):
    """h[n, o, y, x] = b[o] + sum_{c,i,j} W[o, c, i, j] x_pad[n, c, y+i, x+j]  (stride 1, 'same').

    x: (N, C, H, W)  W: (O, C, kh, kw)  b: (O,)  ->  h: (N, O, H, W).
    Computed as one matrix product with the im2col patches: h = W_mat @ cols. h is returned as a
    view of (O, H, W, N) memory; the layers after it keep that layout, so the next im2col and the
    backward's matrix products need no transposing copy.
    """
    N, C, H, Wd = x.shape
    O, Cw, kh, kw = W.shape
    if C != Cw:
        raise ValueError(f"conv2d: input has {C} channels, kernel expects {Cw}")
    cols = im2col(x, kh, kw)  # (C*kh*kw, H*W*N)
    h = W.reshape(O, -1) @ cols  # (O, H*W*N)
    h += b[:, None]
    return h.reshape(O, H, Wd, N).transpose(3, 0, 1, 2), (cols, x.shape, W)


def _channel_major(dh):
    """dh: (M, O, H, W) -> the matrix (O, H*W*M) (a free reshape when dh has our layout)."""
    return dh.transpose(1, 2, 3, 0).reshape(dh.shape[1], -1)


def conv2d_vjp(dh, cache):
    """dL/dx = col2im(W_mat^T dh_mat).   dh: (..., N, O, H, W) -> dx: (..., N, C, H, W).

    Leading cotangent axes are folded into the batch, M = prod(...) * N: a free reshape when dh is
    laid out (O, H, W, ..., N) in memory, as ``maxpool2d_backward`` and ReLU leave it; dx comes back
    laid out (C, H, W, ..., N).
    """
    _, x_shape, W = cache
    O, C, kh, kw = W.shape
    lead = dh.shape[:-4]
    dh = dh.reshape((-1,) + dh.shape[-3:])  # (M, O, H, W)
    M, _, H, Wd = dh.shape
    dcols = W.reshape(O, -1).T @ _channel_major(dh)  # (C*kh*kw, H*W*M)
    dx = col2im(dcols, (M, C, H, Wd), kh, kw)
    return dx.reshape(lead + tuple(x_shape))


def conv2d_param_grads(dh, cache):
    """dL/dW = dh_mat cols^T reshaped to (O, C, kh, kw);  dL/db = sum over n, y, x of dh."""
    cols, _, W = cache
    dh_mat = _channel_major(dh)  # (O, H*W*N)
    return {"W": (dh_mat @ cols.T).reshape(W.shape), "b": dh_mat.sum(axis=1)}


def conv2d_backward(dh, cache):
    """(dx, {'W': dW, 'b': db}) of ``conv2d_forward``."""
    return conv2d_vjp(dh, cache), conv2d_param_grads(dh, cache)


# ---------------------------------------------------------------------------------------------
# MaxPool2D: 2x2 windows, stride 2


_WINDOW = ((0, 0), (0, 1), (1, 0), (1, 1))  # row-major order within a 2x2 window


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
    a, b, c, d = (x[..., i::2, j::2] for i, j in _WINDOW)
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
    dx = xp.empty((C, 2 * h, 2 * w, *lead, N), dtype=dy.dtype).transpose(to_logical)  # (..., N, C, H, W)
    for (i, j), m in zip(_WINDOW, masks):
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
    ``maxpool2d_backward`` (a window whose maximum is <= 0 passes nothing back: every relu(h) in it is
    0 with derivative 0, as ``relu_forward`` decides at 0).  dy: (..., N, C, H/2, W/2) -> (..., N, C, H, W).
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


def sigmoid(h):
    """sigma(h) = 1 / (1 + exp(-h)), computed from e = exp(-|h|) so it never overflows:
    sigma(h) = 1 / (1 + e) for h >= 0 and e / (1 + e) for h < 0.

    float32 facts central to the paper (``nn.numerics``): sigma(h) is exactly 1.0 once 1 + e rounds
    to 1, e <= 2^-24, i.e. from h = 24 ln 2 ~ 16.64 on (``SIGMOID_ONE``), while for negative h it
    stays a tiny positive number (~exp(h)) until h < -103.97 (``EXP_UNDERFLOW``).
    """
    xp = array_module(h)
    e = xp.exp(-xp.abs(h))
    return xp.where(h >= 0, 1.0, e) / (1.0 + e)


def sigmoid_forward(h, numerics="float32"):
    """y = sigma(h) (eq. 2).  h: any shape -> y: same shape; the cache is (h, y).

    ``numerics``: "float32" or "paper" (``nn.numerics``). "paper" flushes subnormals to zero, as
    TensorFlow computed it: y = e^h is subnormal in float32 for -103.97 < h < -87.34 and becomes
    exactly 0 there, and so does the backward's y (1 - y).
    """
    y = sigmoid(h)
    if check_numerics(numerics, FORWARD_NUMERICS) == "paper":
        y = flush_subnormals(y)
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
    """The sigmoid's backward in scaled form: dL/dh = exp(log_scale) * d with no factor underflowing.

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
