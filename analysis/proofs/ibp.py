"""Interval bound propagation (IBP): a proof that no input in the eps-ball changes the prediction
(Gowal et al. 2018, "On the effectiveness of interval bound propagation").

Every attack gives an upper bound on robust accuracy; a verified example is a lower bound. For an
image x with label y the set of inputs is the L-inf ball intersected with the pixel box,
B = {x' : |x' - x|_inf <= eps} and [0, 1]^D, itself a box [l^0, u^0] = [max(x - eps, 0),
min(x + eps, 1)] (``attacks.ball``: the same set the attacks project onto).
Each layer maps a box [l, u] to a box that contains the image of every point of it:

* weight layer h = W a + b (dense, eq. 1, or conv2d): with centre m = (l + u) / 2 and radius
  r = (u - l) / 2, h lies in [W m + b - |W| r, W m + b + |W| r] (|W| elementwise; for a box this is
  the exact range of each unit);
* ReLU, sigmoid (monotone, elementwise) and 2x2 max-pool (monotone in every input): [f(l), f(u)];
* flatten: the same entries, reshaped.

The readout is not bounded and then subtracted: z_y - z_j = (W_y - W_j) a + b_y - b_j is bounded
directly from the last hidden box (tighter, since the two logits share a),
lower(z_y - z_j) = (W_y - W_j) m + b_y - b_j - |W_y - W_j| r. The example is verified when this is
positive for every j != y: then the prediction is y everywhere in B.

Soundness in floating point. The bounds are computed in float64 from the model's float32 weights,
and must contain what the *float32* network computes, whose results differ from the exact ones. A
dot product of n terms computed in floating point with unit roundoff u, in any order of summation
(so also in any BLAS blocking), is within gamma_n sum_j |w_j a_j| of the exact value, with gamma_n
= n u / (1 - n u) (Higham, "Accuracy and stability of numerical algorithms", section 3.1). Each
weight layer's box is therefore widened by
delta = gamma^32_{n+1} (|W| max(|l|, |u|) + |b|) + gamma^64_{n+1} (|W| (|m| + r) + |b|)
(n inputs per unit: n_in for dense, C kh kw for conv; the first term covers the float32 network, u
= 2^-24, and, by induction, the float32 activations it was given lie in [l, u]; the second covers
the float64 arithmetic of the bounds themselves). Higham's bound assumes no underflow: a product or
a sum below float32's smallest normal number 2^-126 may be flushed to 0 or rounded to a subnormal,
an absolute error below 2^-126 each, so the float32 term gets 2 (n + 1) 2^-126 more (``TINY32``;
nothing at the paper's scales, but sound for a network whose values fall that low). The float32
sigmoid is within a few ulp of the exact one: its box is widened by 8 u relative and by 2^-126
below (flush-to-zero sets values under that to 0); ReLU and max-pool are exact. The logit
difference is widened by both logits' delta.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from attacks.ball import box
from nn import layers as L
from nn.backend import array_module, to_device
from nn.validate import InputError, check_batch, check_eps, check_number

U32, U64 = 2.0 ** -24, 2.0 ** -53  # unit roundoff of float32 and float64
# float32 sigmoid's relative error bound, with room (exp, add, divide: ~3 ulp)
SIGMOID_REL = 8 * U32
TINY32 = 2.0 ** -126  # float32's smallest normal number: flush-to-zero sets values below it to 0


def gamma(n, u):
    """gamma_n = n u / (1 - n u): the relative error bound of an n-term floating-point dot
    product."""
    return n * u / (1 - n * u)


@dataclasses.dataclass
class IntervalBounds:
    """IBP's result for N examples (device arrays, float64).

    pre: list of (lower, upper), one pair per weight layer's pre-activation h^l except the readout,
    each (N, ...) like h^l. diff_lower: (N, K) lower bounds of z_y - z_j (+inf at j = y).
    verified: (N,) bool, diff_lower > 0 for every j != y.
    """
    pre: list
    diff_lower: object
    verified: object


def _affine(t, a, W, b):
    """W a + b for a dense (t = 'dense') or conv2d layer, float64."""
    if t == "dense":
        return L.dense_forward(a, W, b)[0]
    return L.conv2d_forward(a, W, b)[0]


def float32_error(t, lo, hi, W, b):
    """delta = gamma^32_{n+1} (|W| max(|lo|, |hi|) + |b|) + 2 (n + 1) 2^-126: how far the float32
    layer h = W a + b (t = 'dense' or 'conv2d') can be from the exact one for a in [lo, hi], its
    rounding and its underflow (module docstring)."""
    xp = array_module(lo)
    reach = _affine(t, xp.maximum(xp.abs(lo), xp.abs(hi)), xp.abs(W), xp.abs(b))  # |W| max|a| + |b|
    n = math.prod(W.shape[1:]) + 1
    return gamma(n, U32) * reach + 2 * n * TINY32


def _weight_box(t, lo, hi, W, b):
    """The widened box of h = W a + b over a in [lo, hi] (see the module
    docstring). -> (lower, upper)."""
    xp = array_module(lo)
    m, r = (lo + hi) / 2, (hi - lo) / 2
    absW, zero = xp.abs(W), xp.zeros_like(b)
    n = math.prod(W.shape[1:]) + 1  # terms per unit: the inputs and the bias
    centre = _affine(t, m, W, b)
    radius = _affine(t, r, absW, zero)
    delta = (float32_error(t, lo, hi, W, b)
             + gamma(n, U64) * (_affine(t, xp.abs(m) + r, absW, xp.abs(b))))
    return centre - radius - delta, centre + radius + delta


def _monotone_box(t, lo, hi):
    """[f(lo), f(hi)] for a monotone layer f (relu, sigmoid, maxpool2d, flatten), widened for
    sigmoid."""
    if t == "relu":
        xp = array_module(lo)
        return xp.maximum(lo, 0.0), xp.maximum(hi, 0.0)
    if t == "sigmoid":
        xp = array_module(lo)
        s_lo, s_hi = L.sigmoid(lo), L.sigmoid(hi)
        return (xp.maximum(s_lo * (1 - SIGMOID_REL) - TINY32, 0.0),
                xp.minimum(s_hi * (1 + SIGMOID_REL), 1.0))
    if t == "maxpool2d":
        return L.maxpool2d_forward(lo)[0], L.maxpool2d_forward(hi)[0]
    return L.flatten_forward(lo)[0], L.flatten_forward(hi)[0]


def interval_bounds(model, x, y, eps):
    """IBP for the images x (N, *input_shape) in [0, 1] with labels y (N,), at L-inf radius eps.
    -> IntervalBounds (see the module docstring for the formulas and the floating-point margin)."""
    check_batch(model, x, y)
    check_eps(eps)
    xp = model.xp
    layers = model.spec["layers"]
    if layers[-1]["type"] != "dense":
        raise InputError("interval_bounds needs a dense readout")
    lo, hi = box(x, eps)  # the ball the attacks project onto, as a float64 box rounded outward
    pre = []
    for layer, p in zip(layers[:-1], model.params[:-1]):
        t = layer["type"]
        if t in ("dense", "conv2d"):
            lo, hi = _weight_box(t, lo, hi, p["W"].astype(np.float64), p["b"].astype(np.float64))
            pre.append((lo, hi))
        else:
            lo, hi = _monotone_box(t, lo, hi)
    # (K, n), (K,)
    W, b = model.params[-1]["W"].astype(np.float64), model.params[-1]["b"].astype(np.float64)
    Wy, by = W[y], b[y]  # (N, n), (N,)
    dW = Wy[:, None, :] - W[None]  # (N, K, n): rows W_y - W_j
    m, r = (lo + hi) / 2, (hi - lo) / 2  # (N, n)
    n = W.shape[1] + 1
    amax = xp.maximum(xp.abs(lo), xp.abs(hi))
    reach = xp.abs(W) @ amax.T  # (K, N): |W_k| max|a|
    reach = reach.T + xp.abs(b)  # (N, K)
    # float32 error of z_y and of z_j (each one dot product: ``float32_error``'s two terms), and
    # float64 error of the bound itself
    f32 = gamma(n, U32) * (reach[xp.arange(len(y)), y][:, None] + reach) + 4 * n * TINY32
    f64 = gamma(n + 1, U64) * (xp.einsum("nkd,nd->nk", xp.abs(dW), xp.abs(m) + r)
                               + xp.abs(by)[:, None] + xp.abs(b)[None])
    lower = (xp.einsum("nkd,nd->nk", dW, m) + (by[:, None] - b[None])
             - xp.einsum("nkd,nd->nk", xp.abs(dW), r)) - f32 - f64
    lower[xp.arange(len(y)), y] = xp.inf
    return IntervalBounds(pre, lower, (lower > 0).all(axis=1))


def share_verified(bounds, model, x, y, eps, batch):
    """The share of examples that ``bounds(model, xb, yb, eps)`` (an IntervalBounds or
    LinearBounds with ``verified``) proves robust, ``batch`` examples at a time. x, y on the host or
    the model's device. -> float in [0, 1]. Raises InputError for a bad batch or an empty x."""
    check_number("batch", batch, minimum=1, integer=True)
    if len(x) == 0:
        raise InputError("x is an empty batch (N = 0); a verified fraction is a mean over examples")
    xp = model.xp
    n = 0
    for i in range(0, len(x), batch):
        xb, yb = to_device(x[i:i + batch], xp, model.dtype), to_device(y[i:i + batch], xp)
        n += int(bounds(model, xb, yb, eps).verified.sum())
    return n / len(x)


def verified_fraction(model, x, y, eps, batch=500):
    """The share of examples IBP proves robust at radius eps, in batches. x, y on the host or the
    model's device. -> float in [0, 1]."""
    return share_verified(interval_bounds, model, x, y, eps, batch)
